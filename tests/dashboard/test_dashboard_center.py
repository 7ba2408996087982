"""``hydrolink center --http``: the receiver and the dashboard in one process."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.dashboard.conftest import wait_answering
from tests.gateway.helpers import Mosquitto, free_port


def test_center_serves_the_dashboard(mosquitto: Mosquitto, sqlite_url: str) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "host_tools.cli", "center", "--mqtt", f"mqtt://127.0.0.1:{mosquitto.port}",
         "--db", sqlite_url, "--client-id", f"dash-center-{port}", "--http", f"127.0.0.1:{port}"],
        stderr=subprocess.PIPE, text=True)
    try:
        wait_answering(port, proc, "/login", lambda r: r[0] == 200 and b'name="password"' in r[2],
                       "the center's dashboard")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    bad = subprocess.run([sys.executable, "-m", "host_tools.cli", "center", "--mqtt",
                          f"mqtt://127.0.0.1:{mosquitto.port}", "--db", sqlite_url, "--http", "nonsense"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("hydrolink: --http")


def test_dashboard_with_two_worker_processes(sqlite_url: str) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "dashboard", "--db", sqlite_url,
                             "--http", f"127.0.0.1:{port}", "--workers", "2"],
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_answering(port, proc, "/", lambda r: r[0] == 303, "the dashboard's workers")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_registry_synced_at_start(tmp_path: Path) -> None:
    """``hydrolink dashboard --registry``: the stations are there before any reading."""
    from starlette.testclient import TestClient

    from host_tools.center.store import open_store
    from host_tools.dashboard import users
    from host_tools.dashboard.main import build_app
    from tests.dashboard import fleet

    reg = tmp_path / "stations.toml"
    reg.write_text(fleet.registry_toml(), encoding="utf-8")
    url = f"sqlite:///{tmp_path}/empty.db"
    app = build_app(url, no_auth=False, host="127.0.0.1", registry=str(reg), gateway_spool=None,
                    session_hours=1)
    store = open_store(url)
    try:
        users.add_user(store.db, "vic", "viewer", "viewer-pass-1")
    finally:
        store.close()
    with TestClient(app, base_url="http://127.0.0.1:8080") as c:
        from tests.dashboard.conftest import login

        assert login(c, "vic") == 303
        html = c.get("/").text
    assert html.count('data-state="silent"') == len(fleet.STATIONS)  # listed, never heard from
