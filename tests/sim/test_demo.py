"""`hydrolink demo` and `hydrolink sim` as a user runs them, and the embedded broker path."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from protocol.codec import EPOCH_UNIX
from sim.fleet import T0, Fleet, Options
from sim.report import build

ROOT = Path(__file__).resolve().parents[2]
HL = [sys.executable, "-m", "host_tools.cli"]


def _running_in(d: Path) -> list[str]:
    """Processes whose working directory is under ``d`` (VMs, broker, forwarder of a run there)."""
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cwd = os.readlink(proc / "cwd")
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cwd.startswith(str(d)) and "pytest" not in cmd:
                out.append(f"{proc.name}: {cmd}")
    return out


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_demo_runs_and_writes_its_database_and_plots(tmp_path: Path) -> None:
    counts: list[int] = []
    # the demo as a user runs it, then a smaller run (2 stations, 2 days) in the same folder: it
    # starts clean, so none of the first run's 6 station plots and none of its readings are left
    for run, extra, n_st in ((1, [], 6), (2, ["--stations", "2", "--days", "2"], 2)):
        p = subprocess.run([*HL, "demo", "--quiet", "--json", "r.json", *extra], cwd=tmp_path, env=_env(),
                           capture_output=True, text=True, timeout=240)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
        rep = json.loads((tmp_path / "r.json").read_text())
        assert rep["total"]["lost"] == 0 and rep["total"]["duplicates"] == 0
        assert rep["total"]["alarms_truth"] >= n_st
        assert rep["total"]["alarms_arrived"] == rep["total"]["alarms_truth"]
        assert len(rep["rows"]) == n_st
        assert run == 2 or {r["kind"] for r in rep["rows"]} == {"rain", "river", "reservoir"}
        assert (tmp_path / "demo-out" / "center.db").exists()
        plots = tmp_path / "demo-out" / "plots"
        assert len(list(plots.glob("station-*.png"))) == n_st and (plots / "center-fleet.png").exists()
        assert "morning report" in p.stdout
        assert "center database:" in p.stdout and "plots:" in p.stdout, run
        assert f"MQTT broker: {'mosquitto' if shutil.which('mosquitto') else 'amqtt'} on" in p.stdout
        db = sqlite3.connect(tmp_path / "demo-out" / "center.db")
        (n,) = db.execute("SELECT count(*) FROM observations").fetchone()
        db.close()
        counts.append(n)
        assert n >= rep["total"]["stored"]
    assert counts[1] < counts[0]  # the second run's store holds only its own readings
    assert not _running_in(tmp_path)


def _without_mosquitto() -> str:
    return os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                           if not (Path(d) / "mosquitto").exists())


def test_ctrl_c_stops_everything_and_the_next_run_starts_clean(tmp_path: Path) -> None:
    p = subprocess.Popen([*HL, "demo", "--days", "20", "--workdir", str(tmp_path / "w")],
                         cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((tmp_path / "w").glob("st*/vm1.log")):
        time.sleep(0.2)
    time.sleep(3)
    assert (tmp_path / "demo-out" / "center.db").exists()  # the run's store, being written
    os.killpg(p.pid, signal.SIGINT)  # as the terminal sends it: to every process of the group
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err[-2000:]
    assert b"interrupted" in err and b"Traceback" not in err, err[-2000:]
    deadline = time.monotonic() + 20
    while _running_in(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running_in(tmp_path)  # no VM, broker or forwarder of this run still running
    assert not list((tmp_path / "demo-out").rglob("*"))  # no half-written store or plot
    # the next run, here on the embedded broker (no Mosquitto on PATH), starts clean
    p2 = subprocess.run([*HL, "demo", "--quiet", "--stations", "2", "--days", "1", "--json", "r.json"],
                        cwd=tmp_path, env={**_env(), "PATH": _without_mosquitto()}, capture_output=True,
                        text=True, timeout=240)
    assert p2.returncode == 0, p2.stdout[-2000:] + p2.stderr[-2000:]
    assert "MQTT broker: amqtt" in p2.stdout
    rep = json.loads((tmp_path / "r.json").read_text())
    db = sqlite3.connect(tmp_path / "demo-out" / "center.db")
    (n,) = db.execute("SELECT count(*) FROM observations WHERE time <= ?", (EPOCH_UNIX + T0 + 86400,)).fetchone()
    db.close()
    assert n == rep["total"]["stored"] > 0  # its own readings only (to the end of its day)
    assert len(list((tmp_path / "demo-out" / "plots").glob("station-*.png"))) == 2


BAD = [(["--stations", "0"], "--stations 0"), (["--stations", "six"], "--stations: invalid int value"),
       (["--days", "-1"], "--days -1"), (["--days", "nan"], "--days nan"), (["--loss", "1.5"], "--loss 1.5"),
       (["--ber", "0.5"], "--ber 0.5"), (["--power-cuts", "-1"], "--power-cuts -1"),
       (["--gateway-restarts", "-2"], "--gateway-restarts -2"), (["--latency-ms", "-5"], "--latency-ms -5"),
       (["--outage", "12h@day9"], "--outage 12h@day9: it must start inside"),
       (["--db", "center.db"], "--db center.db: expected sqlite:///PATH"),
       (["--json", "no/such/dir/r.json"], "--json no/such/dir/r.json: cannot write"),
       (["--rain-csv", "none.csv"], "--rain-csv none.csv: no such file"), (["--bogus"], "unrecognized")]


@pytest.mark.parametrize(("argv", "says"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_flag_values_get_one_line(tmp_path: Path, argv: list[str], says: str) -> None:
    p = subprocess.run([*HL, "sim", *argv], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0, p.stderr
    assert p.stderr.startswith("hydrolink: ") and says in p.stderr, p.stderr
    assert not list(tmp_path.iterdir())  # nothing started, nothing written


def test_bad_usage_is_one_line_and_exit_2(tmp_path: Path) -> None:
    p = subprocess.run([*HL, "sim", "--outage", "12x@day2"], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and p.stderr.startswith("hydrolink: --outage")
    p = subprocess.run([*HL, "sim", "--mqtt", "mqtt://127.0.0.1:1", "--days", "0.1"], cwd=tmp_path,
                       env=_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0, p.stderr
    assert "cannot connect" in p.stderr


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_embedded_amqtt_broker_mqtt_311(tmp_path: Path) -> None:
    # amqtt leaves its client sockets to the garbage collector at shutdown (its warnings)
    f = Fleet(Options(stations=2, days=1, seed=2, workdir=tmp_path, progress=False, broker="amqtt"))
    f.run()
    assert f.broker is not None and f.broker.kind == "amqtt"
    rep = build(f)
    assert rep.ok and rep.total["stored"] == rep.total["recorded"] > 500
