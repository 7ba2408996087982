"""The whole chain: station -> real gateway -> Mosquitto -> ``Center`` receiver with its watch.

A report the station never delivered leaves a gap; the receiver's watch queues ``resend``
in the running gateway's spool; the station gets it in an ACK, answers and sends the
readings again; the gateway publishes them, the receiver stores them, and the gap is
recovered. The center's alarms (a stage, then silence) come back over the same broker.
The center runs on a virtual clock that the test moves.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from host_tools.center import open_store
from host_tools.center.receiver import Center
from host_tools.gateway.spool import Spool
from protocol import codec as c
from tests.gateway.helpers import GatewayProc, Mosquitto, SimStation, Subscriber, run, tcp_conn, wait_for

from .test_watch_store import SID, Clock, registry, rows

_ids = itertools.count()


@pytest.fixture
def chain(tmp_path: Path, mosquitto: Mosquitto, store_url: str) -> Iterator[tuple[GatewayProc, Center, Clock, str]]:
    prefix = f"w{next(_ids)}{tmp_path.name[-6:]}/hydrolink/v1"
    reg_path, _ = registry(tmp_path, "stages = { warning = 69.9 }\nalarms = { silent_intervals = 3 }\n")
    gw = GatewayProc(tmp_path, reg_path, mosquitto.url, extra=["--topic-prefix", prefix])
    gw.start()
    clock = Clock(time.time())
    cen = Center(store_url, mosquitto.url, registry=reg_path, topic_prefix=prefix, client_id=f"cw-{prefix[:8]}",
                 clock=clock, watch=True, gateway_spool=gw.spool, watch_every=1.0)
    cen.start()
    assert cen.wait_connected(20)
    yield gw, cen, clock, prefix
    cen.stop()
    gw.close()


def test_gap_recovered_and_alarms_through_the_receiver(chain: tuple[GatewayProc, Center, Clock, str],
                                                       store_url: str, mosquitto: Mosquitto) -> None:
    gw, cen, clock, prefix = chain
    sub = Subscriber(mosquitto.port, topic=f"{prefix}/+/center_alarm", name=prefix[:8]).start()
    st = SimStation(SID)
    st.clock = int(clock.t) - c.EPOCH_UNIX - 4 * 3600  # readings of the last hours
    r1, _, r3 = st.report(), st.report(), st.report()
    missing = {r.time for r in rows(st.sent[2], 0)}
    assert len(missing) == 12
    store = open_store(store_url)

    def advance(dt: float) -> None:
        clock.t += dt

    async def deliver(*frames: bytes) -> None:
        conn, w = await tcp_conn(st, gw.port)
        for f in frames:
            await conn.send(f)
        await conn.close()
        w.close()

    run(deliver(r1, r3))  # r2 never reaches the gateway (it was, say, dropped by the station)
    wait_for(lambda: store.count_observations(SID) == 48, 30, "r1 and r3 stored")

    def gaps_in(state: str) -> bool:
        advance(1.0)
        gs = store.gaps(station=SID)
        return len(gs) == 2 and all(g.state == state for g in gs)

    wait_for(lambda: gaps_in("detected"), 30, "two gaps detected", step=0.2)
    gs = store.gaps(station=SID)
    assert {g.element for g in gs} == {"water_level", "rain"}
    assert {t for g in gs for t in range(g.start, g.end + 1, 300)} == missing
    advance(600)
    wait_for(lambda: gaps_in("requested"), 30, "the gaps requested", step=0.2)
    [cmd] = Spool(gw.spool, readonly=True).commands(SID)
    assert cmd.op == 3 and cmd.args == [min(missing) - c.EPOCH_UNIX, max(missing) - c.EPOCH_UNIX]

    async def answer() -> None:
        conn, w = await tcp_conn(st, gw.port)
        for _ in range(100):
            ack = await conn.send(st.report())
            assert isinstance(ack.body, c.Ack)
            if ack.body.commands:
                break
            await asyncio.sleep(0.1)
        assert isinstance(ack.body, c.Ack)
        [got] = ack.body.commands
        await conn.send(st.result([c.Result(got.id, 0, 24)]))
        body = st.sent[2].body
        assert isinstance(body, c.Report)
        st.seq += 1
        await conn.send(c.encode_frame(c.DATA, SID, st.seq, st.clock, c.Report(body.series, 0, (), 8), st.key))
        await conn.close()
        w.close()

    run(answer())
    wait_for(lambda: gaps_in("recovered"), 30, "the gaps recovered", step=0.2)
    for element in ("water_level", "rain"):
        assert {o.time for o in store.observations(SID, element, min(missing), max(missing))} == missing

    # a level above 69.9 m raised the warning-stage alarm, published by the receiver's client
    sub.wait(lambda m: any(p["kind"] == "stage_warning" for _, p, _ in m), 30, "stage alarm published")
    assert any(a.kind == "stage_warning" for a in store.center_alarms(SID))
    # then nothing more arrives: silent once the next report is 3 intervals overdue (virtual clock)
    advance(300 + 3 * 300)
    wait_for(lambda: any(a.kind == "silent" for a in store.center_alarms(SID, active_only=True)), 30,
             "silence alarm")
    sub.wait(lambda m: any(p["kind"] == "silent" and p["state"] == "raised" for _, p, _ in m), 30,
             "silence published")
    assert cen.watch is not None and cen.watch.errors == 0
    store.close()
    sub.stop()
