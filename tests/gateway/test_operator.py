"""Operator safety: commands expire and can be cancelled (and say so), and what the
gateway publishes before its broker connection is up is kept and published later."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from protocol import codec as c

from .helpers import GatewayProc, Mosquitto, SimStation, Subscriber, cli, run, tcp_conn


def _events(sub: Subscriber, station: int, kind: str) -> list[dict[str, object]]:
    return [m[1] for m in sub.messages
            if m[0] == f"hydrolink/v1/{station}/events" and m[1].get("event") == kind]


def test_expired_and_cancelled_commands_are_not_sent_and_say_so(
        tmp_path: Path, broker: Mosquitto, registry: Path, gateways: list[GatewayProc]) -> None:
    sub = Subscriber(broker.port, name="expire").start()
    gw = GatewayProc(tmp_path, registry, broker.url)
    gateways.append(gw)
    gw.start()
    spool = str(gw.spool)
    # no --registry: the command finds the gateway's registry through the spool
    rc, out, err = cli("command", "--spool", spool, "1005", "reboot", "--expires", "2s")
    assert rc == 0, err
    assert "queued command 1" in out and "expires 20" in out
    rc, out, err = cli("command", "--spool", spool, "1005", "test-report")
    assert rc == 0, err
    rc, out, err = cli("command", "--spool", spool, "1005", "--cancel", "2")
    assert rc == 0 and "never sent" in out, (out, err)
    rc, out, err = cli("command", "--spool", spool, "1005", "--cancel", "2")
    assert rc == 1 and "already cancelled" in err, (out, err)
    queued_at = time.monotonic()
    st = SimStation(1005)

    async def scenario() -> tuple[list[int], list[int]]:
        conn, w = await tcp_conn(st, gw.port)
        first: list[int] = []
        for _ in range(50):  # until the gateway has loaded the queue (within a second)
            ack = await conn.send(st.report())
            assert isinstance(ack.body, c.Ack)
            first = [k.id for k in ack.body.commands]
            if first:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(max(0.0, 2.5 - (time.monotonic() - queued_at)))
        ack = await conn.send(st.report())
        assert isinstance(ack.body, c.Ack)
        later = [k.id for k in ack.body.commands]
        await conn.close()
        w.close()
        return first, later

    first, later = run(scenario())
    assert first == [1], "the cancelled command is never sent"
    assert later == [], "the expired command is no longer sent"
    sub.wait(lambda m: _events(sub, 1005, "command_expired")
             and _events(sub, 1005, "command_cancelled"), 20, "expired and cancelled events")
    (expired,) = _events(sub, 1005, "command_expired")
    assert expired["commands"][0]["id"] == 1 and expired["commands"][0]["op"] == "reboot"
    assert expired["commands"][0]["sends"] >= 1
    (cancelled,) = _events(sub, 1005, "command_cancelled")
    assert cancelled["commands"][0] == {"id": 2, "op": "test_report", "sends": 0,
                                        "queued": cancelled["commands"][0]["queued"],
                                        "expires": cancelled["commands"][0]["expires"]}
    status = cli("command", "--spool", spool, "--status", "1005")[1].splitlines()
    assert status[0].split()[:6] == ["station", "id", "op", "state", "queued", "sent"]
    assert status[1].split()[3] == "expired" and status[2].split()[3] == "cancelled"
    assert status[1].split()[4].endswith("Z") and "T" in status[1].split()[4]  # ISO 8601
    rows = [json.loads(x) for x in cli("command", "--spool", spool, "--status",
                                       "--json")[1].splitlines()]
    assert [r["state"] for r in rows] == ["expired", "cancelled"]
    assert gw.terminate() == 0


def test_events_before_the_broker_connection_are_kept(
        tmp_path: Path, broker: Mosquitto, registry: Path, gateways: list[GatewayProc]) -> None:
    sub = Subscriber(broker.port, name="early").start()  # a persistent session on the broker
    broker.stop()
    gw = GatewayProc(tmp_path, registry, broker.url)
    gateways.append(gw)
    gw.start()  # its forwarder cannot connect
    assert cli("command", "--spool", str(gw.spool), "1006", "status-report")[0] == 0
    st = SimStation(1006)

    async def scenario() -> None:
        conn, w = await tcp_conn(st, gw.port)
        for _ in range(50):
            ack = await conn.send(st.report())
            assert isinstance(ack.body, c.Ack)
            if ack.body.commands:
                break
            await asyncio.sleep(0.1)
        assert ack.body.commands
        await conn.close()
        w.close()

    run(scenario())
    broker.start()
    sub.wait(lambda m: _events(sub, 1006, "command_sent") and any(
        t == "hydrolink/v1/1006/state" for t, _, _ in m), 30, "command_sent and state")
    (sent,) = _events(sub, 1006, "command_sent")
    assert sent["commands"] == [{"id": 1, "op": "status_report"}]
    assert gw.terminate() == 0
