"""What a gateway says at start and while it runs: one line and exit 2 for what can never
work, a lock per spool, inputs that are not open, logs a technician can read."""

from __future__ import annotations

import json
import re
from pathlib import Path

from host_tools.gateway.config import default_client_id
from protocol import codec as c

from .helpers import GatewayProc, Mosquitto, SimStation, cli, hydrolink, run, tcp_conn


def _one_line_exit_2(out: object, needle: str) -> None:
    if isinstance(out, tuple):
        rc, _, err = out
    else:
        rc, err = out.returncode, out.stderr  # type: ignore[attr-defined]
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("hydrolink: "), (rc, err)
    assert needle in lines[0], err


def test_what_can_never_work_is_one_line_and_exit_2(tmp_path: Path, registry: Path) -> None:
    base = ["gateway", "--registry", str(registry), "--listen", "127.0.0.1:0", "--no-mqtt"]
    missing = tmp_path / "nonexistent" / "dir" / "s.db"
    _one_line_exit_2(hydrolink(*base, "--spool", str(missing)), "does not exist")
    assert not missing.parent.exists(), "a typo must not create a fresh spool"
    spool = str(tmp_path / "s.db")
    _one_line_exit_2(cli(*base, "--spool", spool, "--serial", "bogus://x"),
                     "protocol 'bogus' not known")
    _one_line_exit_2(cli(*base, "--spool", spool, "--serial", "/dev/ttyS9?baudrate=abc"),
                     "baudrate='abc' is not a number")
    _one_line_exit_2(cli(*base, "--spool", spool, "--serial", "socket://nohost"),
                     "--serial 'socket://nohost'")
    _one_line_exit_2(cli("gateway", "--registry", str(registry), "--listen", "127.0.0.1:0",
                         "--no-mqtt", "--mqtt", "mqtt://h:1883", "--spool", spool), "contradict")


def test_one_gateway_per_spool_and_status_says_if_it_runs(
        tmp_path: Path, registry: Path, gateways: list[GatewayProc]) -> None:
    gw = GatewayProc(tmp_path, registry, None, extra=["--summary-interval", "1"])
    gateways.append(gw)
    gw.start()
    assert gw.proc is not None
    second = hydrolink("gateway", "--registry", str(registry), "--spool", str(gw.spool),
                       "--listen", "127.0.0.1:0", "--no-mqtt")
    _one_line_exit_2(second, f"in use by another gateway (pid {gw.proc.pid})")

    st = SimStation(1007)

    async def scenario() -> None:
        conn, w = await tcp_conn(st, gw.port)
        for _ in range(3):
            ack = await conn.send(st.report())
            assert isinstance(ack.body, c.Ack)
        await conn.close()
        w.close()

    run(scenario())
    line = gw.wait_log("station connected")
    assert "1007" in line
    heard = gw.wait_log("station heard")
    assert "1007" in heard and "first frame" in heard
    summary = gw.wait_log("summary accepted=3", 15)
    assert "silent=29" in summary and "stations=30" in summary  # 30 in the registry, 1 heard
    gw.wait_log("summary accepted=0", 15)  # counts since the last summary

    rc, out, _ = cli("gateway", "--status", "--spool", str(gw.spool))
    assert rc == 0 and out.startswith(f"gateway: running (pid {gw.proc.pid})"), out
    js = json.loads(cli("gateway", "--status", "--json", "--spool", str(gw.spool))[1])
    assert js["running"] is True and js["pid"] == gw.proc.pid
    assert gw.terminate() == 0
    rc, out, _ = cli("gateway", "--status", "--spool", str(gw.spool))
    assert rc == 0 and out.startswith("gateway: NOT RUNNING"), out
    js = json.loads(cli("gateway", "--status", "--json", "--spool", str(gw.spool))[1])
    assert js["running"] is False and js["saved"]["accepted"] == {"data": 3}
    assert js["stations"]["1007"]["frames"] == 3


def test_a_missing_device_is_retried_and_reported(
        tmp_path: Path, registry: Path, gateways: list[GatewayProc]) -> None:
    dev = str(tmp_path / "ttyUSB7")
    gw = GatewayProc(tmp_path, registry, None, serial=[dev])
    gateways.append(gw)
    line = gw.start().wait_log("gateway running")
    assert re.search(r"not_open=\S*ttyUSB7", line), line
    gw.wait_log("serial port unavailable")

    out = cli("gateway", "--status", "--spool", str(gw.spool))[1]  # saved at start
    assert f"serial:{dev} NOT OPEN: " in out, out
    assert gw.terminate() == 0


def test_client_ids_differ_per_spool_and_a_taken_session_is_reported(
        tmp_path: Path, broker: Mosquitto, registry: Path, gateways: list[GatewayProc]) -> None:
    assert default_client_id("/a/spool.db") != default_client_id("/b/spool.db")
    assert default_client_id("/a/spool.db").startswith("hydrolink-gateway-")
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    same = ["--mqtt-client-id", "same-id"]
    a = GatewayProc(tmp_path / "one", registry, broker.url, extra=same)
    b = GatewayProc(tmp_path / "two", registry, broker.url, extra=same)
    gateways += [a, b]
    a.start().wait_log("mqtt connected")
    b.start()
    line = a.wait_log("mqtt session taken over", 20)
    assert "'same-id'" in line and "--mqtt-client-id" in line


def test_a_bad_value_in_the_toml_file_names_the_file_and_the_key(
        tmp_path: Path, registry: Path) -> None:
    conf = tmp_path / "gateway.toml"
    conf.write_text(f'[gateway]\nregistry = "{registry}"\nlisten = "127.0.0.1:0"\n'
                    "max_connections = -5\nmqtt = \"mqtt://localhost:1883\"\n")
    _one_line_exit_2(cli("gateway", "--config", str(conf)),
                     f"{conf}: max_connections = -5: must be positive")
    conf.write_text(f'[gateway]\nregistry = "{registry}"\nlisten = "127.0.0.1:0"\n'
                    'serial = ["/dev/ttyS9?baudrate=fast"]\n')
    _one_line_exit_2(cli("gateway", "--config", str(conf)),
                     f"{conf}: serial '/dev/ttyS9?baudrate=fast': baudrate='fast' is not a number")
    # a flag overrides the file, and is named as the flag
    _one_line_exit_2(cli("gateway", "--config", str(conf), "--serial", "bogus://x",
                               "--idle-timeout", "0"), "--serial 'bogus://x'")
