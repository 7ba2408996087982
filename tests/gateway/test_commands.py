"""Downlink: ``hydrolink command`` queues, the next ACK delivers, the result is published."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from host_tools.gateway.commands import CommandError, build_command, parse_time, parse_value
from host_tools.gateway.spool import Spool
from protocol import codec as c

from .helpers import (
    GatewayProc,
    Mosquitto,
    SimStation,
    Subscriber,
    hydrolink,
    obs_by_key,
    run,
    tcp_conn,
)


def test_command_queued_delivered_answered_and_published(
        tmp_path: Path, broker: Mosquitto, registry: Path, gateways: list[GatewayProc]) -> None:
    sub = Subscriber(broker.port, name="cmd").start()
    gw = GatewayProc(tmp_path, registry, broker.url)
    gateways.append(gw)
    gw.start()
    spool = str(gw.spool)
    out = hydrolink("command", "--spool", spool, "1003", "report_interval=300",
                    "level_sensor=radar", "radar_distance=false")
    assert out.returncode == 0, out.stderr
    assert "queued command 1" in out.stdout
    out = hydrolink("command", "--spool", spool, "1003", "resend", "--from",
                    "2026-07-01T00:00Z", "--to", "2026-07-01T06:00Z")
    assert out.returncode == 0 and "queued command 2" in out.stdout, out.stderr
    assert hydrolink("command", "--spool", spool, "1004", "reboot").returncode == 0
    status = hydrolink("command", "--spool", spool, "--status", "1003").stdout
    assert "set_config" in status and "resend" in status and "waiting" in status

    st = SimStation(1003)

    async def scenario() -> list[c.Command]:
        conn, w = await tcp_conn(st, gw.port)
        # the gateway picks queued commands up within a second: report until they come
        # (a station learns of commands only from ACKs, so it polls like this too)
        for _ in range(100):
            ack = await conn.send(st.report())
            assert isinstance(ack.body, c.Ack)
            if len(ack.body.commands) == 2:
                break
            await asyncio.sleep(0.1)
        commands = list(ack.body.commands)
        # the station runs them and answers; its next ACK carries no commands
        await conn.send(st.result([c.Result(commands[0].id, 0),
                                   c.Result(commands[1].id, 2, "range too long")]))
        ack = await conn.send(st.report())
        assert isinstance(ack.body, c.Ack) and ack.body.commands == ()
        await conn.close()
        w.close()
        return commands

    commands = run(scenario())
    assert [(k.id, k.op) for k in commands] == [(1, 1), (2, 3)]
    assert commands[0].args == {"radar_distance": False, "level_sensor": "radar",
                                "report_interval": 300}
    assert commands[1].args == [c.from_datetime(c.to_datetime(0).replace(year=2026, month=7)),
                                c.from_datetime(c.to_datetime(0).replace(year=2026, month=7,
                                                                          hour=6))]
    result_seq = max(st.sent) - 1
    sub.wait(lambda m: (1003, result_seq) in obs_by_key(m), 20, "the result event")
    event = obs_by_key(sub.messages)[(1003, result_seq)]
    assert event["type"] == "result"
    assert event["results"][0] == {"id": 1, "code": "ok", "command": {
        "op": "set_config", "args": {"radar_distance": False, "level_sensor": "radar",
                                     "report_interval": 300}}}
    assert event["results"][1]["code"] == "bad_args"
    assert event["results"][1]["detail"] == "range too long"
    # each command's first trip out in an ACK was an event too, once, before the result
    # (one event, or two if the gateway loaded the second command an ACK later)
    sent = [(i, m[1]) for i, m in enumerate(sub.messages)
            if m[0] == "hydrolink/v1/1003/events" and m[1].get("event") == "command_sent"]
    assert [k for _, p in sent for k in p["commands"]] == [
        {"id": 1, "op": "set_config", "args": {"radar_distance": False, "level_sensor": "radar",
                                               "report_interval": 300}},
        {"id": 2, "op": "resend", "args": commands[1].args}]
    assert all(p["ack_seq"] in st.sent and p["sent"].endswith("Z") for _, p in sent)
    assert max(i for i, _ in sent) < next(j for j, m in enumerate(sub.messages)
                                          if m[1].get("seq") == result_seq)

    out = hydrolink("command", "--spool", spool, "--status", "--json")
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    by_id = {(r["station"], r["id"]): r for r in rows}
    assert by_id[(1003, 1)]["state"] == "ok"
    assert by_id[(1003, 2)]["state"] == "bad_args"
    assert by_id[(1003, 2)]["detail"] == "range too long"
    assert by_id[(1004, 1)]["state"] == "waiting"
    assert by_id[(1003, 1)]["sends"] >= 1
    assert gw.terminate() == 0
    sub.stop()


def test_command_line_errors_are_one_line(tmp_path: Path, registry: Path) -> None:
    out = hydrolink("command", "--spool", str(tmp_path / "typo.db"), "1001", "reboot")
    assert out.returncode == 2 and "no such file" in out.stderr
    assert not (tmp_path / "typo.db").exists()
    spool = str(tmp_path / "s.db")
    Spool(spool).close()
    for argv, needle in [
        (["1001"], "no command"),
        (["1001", "frobnicate"], "unknown command"),
        (["1001", "resend", "--from", "2026-07-01"], "--from TIME and --to TIME"),
        (["1001", "resend", "--from", "yesterday", "--to", "2026-07-01"], "bad time"),
        (["1001", "reboot", "now"], "takes no words"),
        (["notanumber", "reboot"], "invalid int"),
        (["1001", "reboot"], "no station registry"),  # the spool has never seen a gateway
        (["--registry", str(registry), "9999", "reboot"], "station 9999 is not in"),
        (["--registry", str(registry), "0", "reboot"], "station ids are 1 .. 1073741823"),
        (["--registry", str(registry), "1001", "level_offset=-0.012"],
         "unknown configuration key 'level_offset'; did you mean 'cal_offset_mm'?"),
        (["--registry", str(registry), "1001", "reprot_interval=300"],
         "did you mean 'report_interval'?"),
        (["--registry", str(registry), "1001", "report_interval=-5"],
         "report_interval=-5: out of range; allowed an integer 300 .. 86400 s"),
        (["--registry", str(registry), "1001", "report_interval="],
         "report_interval='': must be an integer 300 .. 86400 s"),
        (["--registry", str(registry), "1001", "key=" + "00" * 32], "set by provisioning"),
        (["--registry", str(registry), "1001", "get-config", "reprot_interval"],
         "did you mean 'report_interval'?"),
        (["--registry", str(registry), "1001", "reboot", "--expires", "soon"], "--expires"),
        (["--registry", str(registry), "1001", "--cancel", "7"], "has no command 7"),
    ]:
        out = hydrolink("command", "--spool", spool, *argv)
        assert out.returncode == 2, (argv, out)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("hydrolink: ") and needle in lines[0], (
            argv, out.stderr)
    assert Spool(spool, readonly=True).commands() == []  # nothing was queued


def test_command_words() -> None:
    assert build_command(["tip_tenths=5", "level_sensor=none", "radar_distance=true",
                          "level_alarm_mm=null"]) == (
        1, {"tip_tenths": 5, "level_sensor": "none", "radar_distance": True,
            "level_alarm_mm": None})
    assert parse_value("-2.5") == -2.5
    assert build_command(["get-config"]) == (2, [])
    assert build_command(["get-config", "tip_tenths", "datum_mm"]) == (
        2, ["tip_tenths", "datum_mm"])
    assert build_command(["test-report"]) == (4, None)
    assert build_command(["status-report"]) == (6, None)
    assert build_command(["resend"], "100", "200") == (3, [100, 200])
    assert parse_time("2024-01-01T00:01:00Z") == 60
    assert parse_value("nan") == "nan"
    with pytest.raises(CommandError):
        build_command(["resend"], "200", "100")
    with pytest.raises(CommandError):
        parse_time("2023-12-31T23:59:59Z")
