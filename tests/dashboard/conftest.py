"""Fixtures: a center store holding the test fleet, users, a gateway spool, the app in-process."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/center.db"
    else:
        url = str(request.getfixturevalue("postgres").new_database())
    fleet.fill(url, tmp_path)
    add_users(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/center.db"
    fleet.fill(url, tmp_path)
    add_users(url)
    return url


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
