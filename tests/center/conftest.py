"""Fixtures for the center tests: a store on each backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from host_tools.center import Store, open_store

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database URL on each backend (PostgreSQL from tests/servers.py)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/center.db"
    pg = request.getfixturevalue("postgres")
    return str(pg.new_database())


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()
