"""Who may see and act: roles, CSRF, sessions, rate limit, refusals logged (app in-process)."""

from __future__ import annotations

import io
import logging
import re

import pytest
from starlette.testclient import TestClient

from host_tools import cli
from host_tools.center.store import open_store
from host_tools.dashboard.main import UsageError, build_app
from host_tools.gateway.spool import Spool
from tests.dashboard.conftest import Clock, login, token

LOG = "hydrolink.dashboard"


def refusals(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [r.fields for r in caplog.records  # type: ignore[attr-defined]
            if r.name == LOG and r.getMessage() == "refused"]


def active_alarm_id(url: str) -> int:
    store = open_store(url)
    try:
        return next(a.id for a in store.center_alarms(active_only=True))
    finally:
        store.close()


def acked_by(url: str, alarm: int) -> str | None:
    store = open_store(url)
    try:
        return next(a.acked_by for a in store.center_alarms() if a.id == alarm)
    finally:
        store.close()


def commands(path: str) -> list[object]:
    spool = Spool(path, readonly=True)
    try:
        return list(spool.commands())
    finally:
        spool.close()


def test_without_login_only_the_login_page(client: TestClient,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOG)
    for path in ("/", "/station/1001", "/alarms", "/overview/table"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
        assert "1001" not in r.text
    page = client.get("/login")
    assert page.status_code == 200 and 'name="password"' in page.text
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    fresh = TestClient(client.app, base_url="http://127.0.0.1:8080").get("/login")
    cookie = fresh.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    r = client.post("/alarms/1/ack", data={"csrf_token": token(page.text)}, follow_redirects=False)
    assert r.status_code == 401
    assert len(refusals(caplog)) == 5
    assert all(f["reason"] == "not signed in" for f in refusals(caplog))


def test_viewer_cannot_acknowledge_or_queue(client: TestClient, sqlite_url: str, spool_path: str,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOG)
    assert login(client, "vic") == 303
    alarm = active_alarm_id(sqlite_url)
    page = client.get("/alarms")
    assert page.status_code == 200 and "ack-button" not in page.text  # no button for a viewer
    r = client.post(f"/alarms/{alarm}/ack", data={"csrf_token": token(page.text)})
    assert r.status_code == 403
    station = client.get("/station/1001")
    assert station.status_code == 200 and "command-form" not in station.text
    r = client.post("/station/1001/command", data={"csrf_token": token(station.text),
                                                   "command": "test-report"})
    assert r.status_code == 403
    assert acked_by(sqlite_url, alarm) is None
    assert commands(spool_path) == []
    got = refusals(caplog)
    assert [(f["user"], f["action"], f["resource"], f["status"]) for f in got] == [
        ("vic", "ack", f"alarm:{alarm}", 403), ("vic", "command", "station:1001", 403)]


def test_operator_acknowledges_and_queues(client: TestClient, sqlite_url: str,
                                          spool_path: str) -> None:
    assert login(client, "olga") == 303
    alarm = active_alarm_id(sqlite_url)
    page = client.get("/alarms")
    assert "ack-button" in page.text
    r = client.post(f"/alarms/{alarm}/ack", data={"csrf_token": token(page.text), "next": "/alarms"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert acked_by(sqlite_url, alarm) == "olga"
    assert "olga ·" in client.get("/alarms").text
    station = client.get("/station/1001")
    r = client.post("/station/1001/command", data={"csrf_token": token(station.text),
                                                   "command": "report_interval=600"})
    assert r.status_code == 200 and "#1" in r.text  # redirected back with a notice
    (row,) = commands(spool_path)
    assert (row.station, row.op, row.args) == (1001, 1, {"report_interval": 600})  # type: ignore[attr-defined]
    # the same checks as hydrolink command: an unknown key is refused, nothing queued
    station = client.get("/station/1001")
    r = client.post("/station/1001/command", data={"csrf_token": token(station.text),
                                                   "command": "no_such_key=1"})
    assert "unknown configuration key" in r.text
    assert len(commands(spool_path)) == 1
    assert "report_interval" in client.get("/station/1001").text  # listed on the page


def test_forged_and_cross_site_forms_refused(client: TestClient, spool_path: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOG)
    assert login(client, "olga") == 303
    good = token(client.get("/station/1001").text)
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    cases = [
        ({"command": "test-report"}, {}),                                   # no token
        ({"csrf_token": forged, "command": "test-report"}, {}),             # bad signature
        ({"csrf_token": good, "command": "test-report"}, {"sec-fetch-site": "cross-site"}),
        ({"csrf_token": good, "command": "test-report"}, {"origin": "http://evil.example"}),
    ]
    for data, headers in cases:
        r = client.post("/station/1001/command", data=data, headers=headers)
        assert r.status_code == 403, (data, headers)
    # a token issued to another session (another browser) is refused too
    other = TestClient(client.app, base_url="http://127.0.0.1:8080")
    assert login(other, "olga") == 303
    r = client.post("/station/1001/command",
                    data={"csrf_token": token(other.get("/station/1001").text), "command": "test-report"})
    assert r.status_code == 403
    assert commands(spool_path) == []
    reasons = [str(f["reason"]) for f in refusals(caplog)]
    assert len(reasons) == 5 and all(r.startswith("CSRF: ") for r in reasons)
    assert any("Sec-Fetch-Site is cross-site" in r for r in reasons)
    assert any("another session" in r for r in reasons)


def test_replayed_form_refused(client: TestClient, spool_path: str,
                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOG)
    assert login(client, "olga") == 303
    form = {"csrf_token": token(client.get("/station/1001").text), "command": "status-report",
            "sec-fetch": ""}
    assert client.post("/station/1001/command", data=form,
                       headers={"sec-fetch-site": "same-origin"}).status_code == 200
    r = client.post("/station/1001/command", data=form, headers={"sec-fetch-site": "same-origin"})
    assert r.status_code == 403 and "replay" in r.text
    assert len(commands(spool_path)) == 1
    assert "replay" in str(refusals(caplog)[-1]["reason"])


def test_expired_session_refused(client: TestClient, clock: Clock,
                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOG)
    assert login(client, "vic") == 303
    assert client.get("/", follow_redirects=False).status_code == 200
    clock.now += 3600 - 1
    assert client.get("/", follow_redirects=False).status_code == 200
    # a language switch re-signs the cookie but does not extend the session
    page = client.get("/")
    client.post("/lang", data={"csrf_token": token(page.text), "lang": "en", "next": "/"})
    clock.now += 2
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert "session expired" in [f["reason"] for f in refusals(caplog)]
    assert client.get("/alarms", follow_redirects=False).status_code == 303  # stays signed out


def test_tampered_cookie_refused(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOG)
    assert login(client, "vic") == 303
    cookie = client.cookies["hydrolink_session"]
    client.cookies.clear()
    client.cookies.set("hydrolink_session", cookie.replace("vic", "olga", 1) if "vic" in cookie
                       else cookie[:-2] + "xx")
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303
    assert "session cookie is forged or damaged" in [f["reason"] for f in refusals(caplog)]


def test_wrong_passwords_rate_limited(client: TestClient, clock: Clock,
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOG)
    for _ in range(5):
        assert login(client, "olga", "wrong-password") == 401
    # over the limit: even the right password is refused until the window has passed
    page = client.get("/login")
    r = client.post("/login", data={"csrf_token": token(page.text), "user": "olga",
                                    "password": "operator-pass-1"}, follow_redirects=False)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert login(client, "vic", "wrong-password") == 429  # same client: limited too
    reasons = [f["reason"] for f in refusals(caplog)]
    assert reasons.count("wrong user name or password") == 5
    assert reasons.count("login rate-limited") == 2
    clock.now += 301
    assert login(client, "olga") == 303
    assert client.get("/", follow_redirects=False).status_code == 200


def test_removed_user_is_signed_out(client: TestClient, sqlite_url: str) -> None:
    assert login(client, "vic") == 303
    assert cli.main(["users", "remove", "vic", "--db", sqlite_url]) == 0
    assert client.get("/", follow_redirects=False).status_code == 303


def test_users_cli(sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-password\n"))
    assert cli.main(["users", "add", "ann", "--role", "viewer", "--password-stdin",
                     "--db", sqlite_url]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-password\n"))
    assert cli.main(["users", "add", "ann", "--role", "viewer", "--password-stdin",
                     "--db", sqlite_url]) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert cli.main(["users", "add", "bob", "--role", "operator", "--db", sqlite_url]) == 1
    assert cli.main(["users", "add", "x", "--role", "admin", "--db", sqlite_url]) == 2
    capsys.readouterr()
    assert cli.main(["users", "list", "--db", sqlite_url]) == 0
    listed = capsys.readouterr().out
    assert re.search(r"^ann\s+viewer", listed, re.M) and re.search(r"^olga\s+operator", listed, re.M)
    assert "bob" not in listed
    assert cli.main(["users", "remove", "nobody", "--db", sqlite_url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hydrolink: ") and "Traceback" not in err
    store = open_store(sqlite_url)
    try:
        (digest,) = store.db.query("SELECT hash FROM users WHERE name = 'ann'")[0]
    finally:
        store.close()
    assert digest.startswith("$argon2id$") and "a-long-password" not in digest


def test_no_auth_only_on_loopback(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match="loopback"):
        build_app(sqlite_url, no_auth=True, host="0.0.0.0", registry=None, gateway_spool=None,
                  session_hours=1)
    assert cli.main(["dashboard", "--db", sqlite_url, "--http", "192.0.2.1:8080", "--no-auth"]) == 2
    assert "loopback" in capsys.readouterr().err
    app = build_app(sqlite_url, no_auth=True, host="127.0.0.1", registry=None, gateway_spool=None,
                    session_hours=1)
    c = TestClient(app, base_url="http://127.0.0.1:8080")
    assert c.get("/", follow_redirects=False).status_code == 200
    # DNS rebinding: a page on another name that resolves to 127.0.0.1 is refused
    assert c.get("/", headers={"host": "evil.example"}).status_code == 400


def test_served_from_a_thread_over_http(sqlite_url: str) -> None:
    """``start_dashboard``: what ``hydrolink center --http`` runs beside the receiver."""
    from host_tools.dashboard.main import start_dashboard
    from tests.dashboard.conftest import wait_answering
    from tests.gateway.helpers import free_port

    port = free_port()
    stop = start_dashboard(sqlite_url, f"127.0.0.1:{port}")
    try:
        wait_answering(port, None, "/", lambda r: r[0] == 303 and r[1].get("location", "").startswith("/login"),
                       "the dashboard to answer", 30)
    finally:
        stop()
