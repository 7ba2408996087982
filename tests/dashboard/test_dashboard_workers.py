"""Several dashboard processes on one database (``--workers N``) share form tokens and the
login rate limit: nothing of either lives in one process."""

from __future__ import annotations

import signal
from typing import Any

from starlette.testclient import TestClient

from host_tools.dashboard.app import create_app
from host_tools.dashboard.sessions import COOKIE
from tests.dashboard.conftest import PASSWORDS, Clock, HttpUser, serve_dashboard, token
from tests.gateway.helpers import free_port


def test_two_processes_share_forms_and_login_failures(sqlite_url: str) -> None:
    """Two ``hydrolink dashboard`` processes on one database, as two workers are; a browser
    whose requests go now to one, now to the other."""
    ports = [free_port(), free_port()]
    procs = [serve_dashboard(sqlite_url, p) for p in ports]
    a, b = ports
    try:
        user = HttpUser()
        assert user.login(a, b, "vic") == 303  # the login form itself: from a, posted to b
        _, page = user.request(a, "GET", "/station/1001")
        form = {"csrf_token": token(page), "lang": "en", "next": "/"}
        assert user.request(b, "POST", "/lang", form)[0] == 303  # rendered by a, accepted by b
        status, text = user.request(a, "POST", "/lang", form)  # the same form again, to a
        assert status == 403 and "replay" in text

        guesser = HttpUser()
        for i in range(5):  # wrong passwords, spread over both processes
            assert guesser.login(a, ports[i % 2], "olga", "wrong-password") == 401
        # five failures in all: over the limit on either process, the right password too
        assert guesser.login(a, a, "olga") == 429
        assert guesser.login(b, b, "olga") == 429
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.communicate(timeout=30)


def test_two_apps_share_them_on_both_databases(db_url: str) -> None:
    """The same on SQLite and PostgreSQL, with two apps in this process (what each worker
    process builds) and one cookie carried between them."""
    clock = Clock(1_780_000_030)
    apps = [create_app(db_url, clock=clock, overview_ttl_s=0.0) for _ in range(2)]
    cookie: dict[str, str] = {}

    def send(c: TestClient, method: str, path: str, form: dict[str, str] | None = None) -> Any:
        """One request with the one browser's cookie, to whichever app ``c`` is."""
        c.cookies.clear()  # the header below is the only cookie sent
        headers = {"cookie": f"{COOKIE}={cookie[COOKIE]}"} if cookie else {}
        r = c.request(method, path, data=form, headers=headers, follow_redirects=False)
        if COOKIE in r.cookies:
            cookie[COOKIE] = r.cookies[COOKIE]
        return r

    def login(c: TestClient, other: TestClient, password: str) -> int:
        page = send(other, "GET", "/login")
        return send(c, "POST", "/login", {"csrf_token": token(page.text), "user": "olga",
                                          "password": password, "next": "/"}).status_code

    with TestClient(apps[0], base_url="http://127.0.0.1:8080") as c0, \
            TestClient(apps[1], base_url="http://127.0.0.1:8080") as c1:
        assert login(c1, c0, PASSWORDS["olga"]) == 303
        form = {"csrf_token": token(send(c0, "GET", "/alarms").text), "lang": "en", "next": "/"}
        assert send(c1, "POST", "/lang", form).status_code == 303
        r = send(c0, "POST", "/lang", form)
        assert r.status_code == 403 and "replay" in r.text

        cookie.clear()  # another browser guesses
        for i in range(5):
            pair = (c0, c1) if i % 2 else (c1, c0)
            assert login(*pair, "wrong-password") == 401
        assert login(c0, c0, PASSWORDS["olga"]) == 429
        assert login(c1, c1, PASSWORDS["olga"]) == 429
        clock.now += 301  # the window has passed
        assert login(c1, c0, PASSWORDS["olga"]) == 303
