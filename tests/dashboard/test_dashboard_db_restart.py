"""The database goes away under the dashboard and comes back (PostgreSQL restarted)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from host_tools.dashboard.app import create_app
from tests.dashboard import fleet
from tests.dashboard.conftest import Clock, add_users, login
from tests.servers import Postgres, pg_available


@pytest.mark.skipif(pg_available() is not None, reason=str(pg_available()))
def test_postgres_restart(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pg = Postgres().start()
    try:
        url = pg.new_database()
        fleet.fill(url, tmp_path)
        add_users(url)
        app = create_app(url, clock=Clock(fleet.NOW + 30), overview_ttl_s=0.0)
        with TestClient(app, base_url="http://127.0.0.1:8080", raise_server_exceptions=False) as c:
            assert login(c, "vic") == 303
            assert c.get("/station/1001").status_code == 200
            pg.stop("immediate")  # a crash
            caplog.set_level(logging.INFO, "hydrolink.dashboard")
            r = c.get("/station/1001")
            assert r.status_code == 503 and "not answering" in r.text
            assert any(rec.getMessage() == "request failed" for rec in caplog.records)
            pg.start()
            r = c.get("/station/1001")  # the thread's broken connection was dropped: a new one
            assert r.status_code == 200 and 'data-series="water_level"' in r.text
            r = c.get("/")
            assert r.status_code == 200, [getattr(x, "fields", None) for x in caplog.records]
    finally:
        pg.remove()
