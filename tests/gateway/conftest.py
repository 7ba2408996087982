"""Fixtures for the gateway tests: a Mosquitto broker per test, a registry, cleanup."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import helpers
from .helpers import GatewayProc, Mosquitto, write_registry

STATIONS = list(range(1001, 1031))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        skip = pytest.mark.skip(reason="mosquitto is not installed (apt-get install mosquitto)")
        for item in items:
            if "broker" in getattr(item, "fixturenames", ()):
                item.add_marker(skip)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    m = Mosquitto(tmp_path / "mosquitto")
    m.start()
    yield m
    m.stop()


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return write_registry(tmp_path / "stations.toml", STATIONS)


@pytest.fixture
def gateways() -> Iterator[list[GatewayProc]]:
    """Gateways a test starts; killed at the end if still running."""
    procs: list[GatewayProc] = []
    yield procs
    for p in procs:
        p.close()


@pytest.fixture(autouse=True)
def _stop_subscribers() -> Iterator[None]:
    """Subscribers a failed test did not stop (mosquitto_sub would outlive pytest)."""
    yield
    while helpers.LIVE:
        helpers.LIVE.pop().stop()
