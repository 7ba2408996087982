"""The shared servers of tests/servers.py: present where they must be, and working."""

from __future__ import annotations

import os

import pytest

from host_tools.center import open_store
from tests.servers import Postgres, pg_available


def test_ci_does_not_skip_postgresql() -> None:
    """On CI (CI=true, set by .ci/run) PostgreSQL must be there: its tests may not skip."""
    if os.environ.get("CI", "").lower() not in ("true", "1"):
        pytest.skip("not on CI (CI=true): a machine without PostgreSQL may skip its tests")
    assert pg_available() is None, f"CI must run the PostgreSQL tests: {pg_available()}"


def test_postgres_fixture_gives_fresh_databases(postgres: Postgres) -> None:
    a, b = postgres.new_database(), postgres.new_database()
    assert a != b
    with open_store(a) as s:
        s.db.execute("CREATE TABLE only_in_a (x INTEGER)")
    with open_store(b) as s:
        assert s.db.query("SELECT to_regclass('only_in_a')") == [(None,)]
        assert s.dialect == "postgresql"
