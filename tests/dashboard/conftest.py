"""Fixtures: a center store holding the test fleet, users, a gateway spool, the app in-process;
helpers for a dashboard served over HTTP by another process."""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from starlette.testclient import TestClient

from host_tools.center.store import open_store
from host_tools.dashboard import users
from host_tools.dashboard.app import create_app
from host_tools.gateway.spool import Spool
from tests.dashboard import fleet

PASSWORDS = {"vic": "viewer-pass-1", "olga": "operator-pass-1"}


class Clock:
    """A settable clock (session expiry, rate-limit windows)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def add_users(url: str) -> None:
    store = open_store(url)
    try:
        users.add_user(store.db, "vic", "viewer", PASSWORDS["vic"])
        users.add_user(store.db, "olga", "operator", PASSWORDS["olga"])
    finally:
        store.close()


def filled(url: str, tmp_path: Path) -> str:
    """``url`` holding the fleet and the users."""
    fleet.fill(url, tmp_path)
    add_users(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return filled(f"sqlite:///{tmp_path}/center.db", tmp_path)
    return filled(str(request.getfixturevalue("postgres").new_database()), tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return filled(f"sqlite:///{tmp_path}/center.db", tmp_path)


@pytest.fixture
def spool_path(tmp_path: Path) -> str:
    path = tmp_path / "spool.db"
    Spool(path).close()
    return str(path)


@pytest.fixture
def clock() -> Clock:
    return Clock(fleet.NOW + 30)


@pytest.fixture
def client(sqlite_url: str, spool_path: str, clock: Clock) -> Iterator[TestClient]:
    app = create_app(sqlite_url, gateway_spool=spool_path, clock=clock, session_ttl_s=3600,
                     overview_ttl_s=0.0)
    with TestClient(app, base_url="http://127.0.0.1:8080") as c:
        yield c


def token(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "page has no form token"
    return m.group(1)


def login(c: TestClient, name: str, password: str | None = None) -> int:
    page = c.get("/login")
    r = c.post("/login", data={"csrf_token": token(page.text), "user": name,
                               "password": PASSWORDS.get(name, "") if password is None else password,
                               "next": "/"}, follow_redirects=False)
    return r.status_code


# ---------------------------------------------------------------- over HTTP


def http_get(port: int, path: str) -> tuple[int, dict[str, str], bytes] | None:
    """GET ``path`` on loopback: (status, headers in lower case, body); None while nothing
    answers."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()
    except OSError:
        return None


def wait_answering(port: int, proc: subprocess.Popen[str] | None, path: str,
                   ok: Callable[[tuple[int, dict[str, str], bytes]], bool], what: str,
                   timeout: float = 60) -> None:
    """Wait until GET ``path`` gives an answer that is ``ok``; fail at once if ``proc`` exits."""
    from tests.gateway.helpers import wait_for

    def answered() -> bool:
        got = http_get(port, path)
        if got is None:
            return proc is not None and proc.poll() is not None  # it died: stop waiting
        return ok(got)

    wait_for(answered, timeout, what)
    assert proc is None or proc.poll() is None, f"{what}: the process exited"


def serve_dashboard(url: str, port: int, *extra: str) -> subprocess.Popen[str]:
    """``hydrolink dashboard --db url --http 127.0.0.1:port`` as a process, once it answers."""
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "dashboard", "--db", url,
                             "--http", f"127.0.0.1:{port}", *extra], stderr=subprocess.PIPE, text=True)
    try:
        wait_answering(port, proc, "/login", lambda r: r[0] == 200, f"the dashboard on port {port}")
    except BaseException:
        proc.kill()
        proc.communicate(timeout=30)
        raise
    return proc


class HttpUser:
    """A browser without a browser: a session cookie carried to whichever server it asks."""

    def __init__(self) -> None:
        self.cookie = ""

    def request(self, port: int, method: str, path: str,
                form: dict[str, str] | None = None) -> tuple[int, str]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            text = r.read().decode()
            m = re.search(r"hydrolink_session=([^;]+)", r.getheader("set-cookie") or "")
        finally:
            conn.close()
        if m:
            self.cookie = f"hydrolink_session={m.group(1)}"
        return r.status, text

    def login(self, form_port: int, post_port: int, name: str, password: str | None = None) -> int:
        """Sign in with the login form of one server, posted to another."""
        _, page = self.request(form_port, "GET", "/login")
        status, _ = self.request(post_port, "POST", "/login", {
            "csrf_token": token(page), "user": name,
            "password": PASSWORDS.get(name, "") if password is None else password, "next": "/"})
        return status
