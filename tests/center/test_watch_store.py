"""The watch on the real store (SQLite and PostgreSQL), the real gateway's spool and Mosquitto.

Gap recovery end to end: a report lost between gateway and center leaves a gap; the
watch queues ``resend`` in the spool of a running ``hydrolink gateway``; the station
gets it in an ACK, answers and sends the readings again; once they are stored, the
gap is recovered. Alarms go to the store and to a real broker.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from host_tools.center import ObsRow, Store
from host_tools.center.gaps import GapPolicy
from host_tools.center.watch import RESEND, Watch
from host_tools.center.watchtask import GatewayQueue
from host_tools.cli import main
from host_tools.gateway.spool import Spool
from host_tools.jsonview import frame_to_si
from host_tools.registry import Registry, parse_registry
from protocol import codec as c
from tests.gateway.helpers import (
    GatewayProc,
    Mosquitto,
    SimStation,
    Subscriber,
    run,
    station_key,
    tcp_conn,
)

SID = 1003
POLICY = GapPolicy(delay_s=600, retry_s=1800, max_attempts=3)


def registry(tmp: Path, extra: str = "") -> tuple[Path, Registry]:
    text = (f'[[station]]\nid = {SID}\nname = "Gaoqiao"\nkey = "{station_key(SID).hex()}"\n'
            'sensors = ["rain", "water_level", "battery_voltage"]\nrecord_interval_s = 300\n' + extra)
    path = tmp / "stations.toml"
    path.write_text(text)
    return path, parse_registry(text, path)


def unix(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def rows(frame: c.Frame, received: float) -> list[ObsRow]:
    """What the receiver stores for a frame (its SI view)."""
    si = frame_to_si(frame)
    return [ObsRow(frame.station, s["element"], unix(v["time"]), v["value"], v["quality"], received)
            for s in si.get("series", []) for v in s["values"]]


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def store_frames(store: Store, watch: Watch | None, frames: Iterable[c.Frame], received: float) -> None:
    batch = [r for f in frames for r in rows(f, received)]
    store.upsert_observations(batch)
    if watch is not None:
        watch.on_batch(batch)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProc]:
    """A real ``hydrolink gateway`` (no MQTT: only its spool and command queue matter here)."""
    reg_path, _ = registry(tmp_path)
    gw = GatewayProc(tmp_path, reg_path, None)
    gw.start()
    yield gw
    gw.close()


def test_gap_resend_through_the_real_gateway_recovered(tmp_path: Path, store: Store,
                                                        gateway: GatewayProc) -> None:
    gw = gateway
    _, reg = registry(tmp_path)
    st = SimStation(SID)
    # readings of the last hours: the gateway's wall clock must not find the resend expired
    st.clock = int(time.time()) - c.EPOCH_UNIX - 3 * 3600
    for _ in range(3):
        st.report()
    r1, r2, r3 = st.sent[1], st.sent[2], st.sent[3]
    t_last = c.EPOCH_UNIX + r3.time
    clock = Clock(t_last + 60)
    queue = GatewayQueue(gw.spool)
    store.sync_stations(reg.stations.values())
    watch = Watch(store, reg, clock, None, queue.queue_command, queue.command_result, policy=POLICY)
    store_frames(store, watch, [r1, r3], clock.t)   # r2 lost between the gateway and the center

    assert watch.tick()["gaps_detected"] == 2       # water_level and rain
    missing = sorted({r.time for r in rows(r2, 0)})
    gaps = store.gaps(station=SID)
    assert [(g.element, g.start, g.end, g.state) for g in gaps] == [
        ("rain", missing[0], missing[-1], "detected"), ("water_level", missing[0], missing[-1], "detected")]
    clock.t += 599
    assert watch.tick()["requests"] == 0            # younger than the delay
    clock.t += 1
    assert watch.tick()["requests"] == 1            # one resend for both elements
    [cmd] = Spool(gw.spool, readonly=True).commands(SID)
    assert cmd.op == RESEND and cmd.args == [missing[0] - c.EPOCH_UNIX, missing[-1] - c.EPOCH_UNIX]
    assert {g.state for g in store.gaps(station=SID)} == {"requested"}
    assert {g.command_id for g in store.gaps(station=SID)} == {cmd.id}

    async def station() -> None:
        conn, w = await tcp_conn(st, gw.port)
        for _ in range(100):  # report until the gateway's ACK carries the command
            ack = await conn.send(st.report())
            assert isinstance(ack.body, c.Ack)
            if ack.body.commands:
                break
            await asyncio.sleep(0.1)
        assert isinstance(ack.body, c.Ack)
        [got] = ack.body.commands
        assert (got.id, got.op, list(got.args)) == (cmd.id, RESEND, cmd.args)
        await conn.send(st.result([c.Result(got.id, 0, 24)]))
        st.seq += 1  # the station sends the kept readings again, in a new frame
        body = r2.body
        assert isinstance(body, c.Report)
        raw = c.encode_frame(c.DATA, SID, st.seq, st.clock, c.Report(body.series, 0, (), 8), st.key)
        st.sent[st.seq] = c.decode_frame(raw, {SID: st.key})
        await conn.send(raw)
        await conn.close()
        w.close()

    run(station())
    assert watch.tick()["gaps_changed"] == 0         # answered, but the readings are not stored yet
    assert queue.command_result(SID, cmd.id) == (0, 24)
    clock.t += 120
    store_frames(store, watch, [st.sent[st.seq - 2], st.sent[st.seq]], clock.t)  # r4, then the resent r2
    assert watch.tick()["gaps_changed"] == 2
    assert {(g.element, g.state) for g in store.gaps(station=SID)} == {
        ("rain", "recovered"), ("water_level", "recovered")}
    assert len(store.observations(SID, "water_level", missing[0], missing[-1])) == 12
    queue.close()
    assert gw.terminate() == 0


def test_gap_retried_then_lost_with_a_real_spool(tmp_path: Path, store: Store,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _, reg = registry(tmp_path)
    spool_path = tmp_path / "spool.db"
    Spool(spool_path).close()  # the gateway's spool, created as the gateway does
    st = SimStation(SID)
    for _ in range(3):
        st.report()
    clock = Clock(c.EPOCH_UNIX + st.clock + 60)
    queue = GatewayQueue(spool_path, clock)
    store.sync_stations(reg.stations.values())
    watch = Watch(store, None, clock, None, queue.queue_command, queue.command_result, policy=POLICY)
    store_frames(store, watch, [st.sent[1], st.sent[3]], clock.t)
    watch.tick()
    for k in range(4):
        clock.t += 1800
        watch.tick()
        if k == 1:  # the center restarts after two requests: it goes on counting from two
            assert {g.attempts for g in store.gaps(station=SID)} == {2}
            watch = Watch(store, None, clock, None, queue.queue_command, queue.command_result, policy=POLICY)
    cmds = Spool(spool_path, readonly=True).commands(SID)
    assert [k.op for k in cmds] == [RESEND] * 3 and len({json.dumps(k.args) for k in cmds}) == 1
    # each request expires when the next one is due (queued on the center's clock)
    assert [(k.expires or 0) - k.queued for k in cmds] == [1800.0] * 3
    assert [k.queued for k in cmds] == [cmds[0].queued + 1800 * i for i in range(3)]
    assert {g.state for g in store.gaps(station=SID)} == {"lost"}
    # hydrolink center --gaps lists them (text and JSON Lines)
    assert main(["center", "--db", store.url, "--gaps"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "2 gaps: 2 lost" and len(out) == 4
    assert out[1].split()[:2] == [str(SID), "rain"] and out[1].split()[4:6] == ["12", "lost"]
    assert main(["center", "--db", store.url, "--gaps", "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(g["element"], g["missing"], g["state"], g["command_id"], g["attempts"]) for g in listed] == [
        ("rain", 12, "lost", 3, 3), ("water_level", 12, "lost", 3, 3)]
    # a restarted watch keeps the lost gaps (no new detection, no new request) ...
    again = Watch(store, None, clock, None, queue.queue_command, queue.command_result, policy=POLICY)
    clock.t += 60
    assert again.tick()["gaps_detected"] == 0 and len(Spool(spool_path, readonly=True).commands(SID)) == 3
    # ... and readings arriving later (a technician's import) still recover them
    store_frames(store, again, [st.sent[2]], clock.t)
    again.tick()
    assert {g.state for g in store.gaps(station=SID)} == {"recovered"}
    queue.close()


class Publisher:
    """A paho client publishing for the watch (QoS 1)."""

    def __init__(self, port: int) -> None:
        version = paho.CallbackAPIVersion.VERSION2  # type: ignore[attr-defined]
        self.client = paho.Client(version, client_id=f"watch-test-{port}")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def __call__(self, topic: str, payload: bytes, retain: bool) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[Publisher]:
    p = Publisher(mosquitto.port)
    yield p
    p.close()


def test_center_alarms_stored_and_published(tmp_path: Path, store: Store, mosquitto: Mosquitto,
                                            publisher: Publisher) -> None:
    _, reg = registry(tmp_path, 'stages = { warning = 68.0, flood_limit = 70.0 }\n'
                      'alarms = { rain_1h_mm = 30.0, battery_low_v = 11.8, silent_intervals = 3 }\n')
    prefix = f"test/{tmp_path.name}"
    sub = Subscriber(mosquitto.port, topic=f"{prefix}/#", name=tmp_path.name).start()
    t0 = 1_780_000_200  # a multiple of 300
    clock = Clock(t0)
    watch = Watch(store, reg, clock, publisher, topic_prefix=prefix)

    def obs(t: int, level: float, rain: float, battery: float) -> None:
        batch = [ObsRow(SID, "water_level", t, level, "good", t + 5), ObsRow(SID, "rain", t, rain, "good", t + 5),
                 ObsRow(SID, "battery_voltage", t, battery, "good", t + 5)]
        store.upsert_observations(batch)
        watch.on_batch(batch)

    # level rises through warning (wobbling at it) to flood limit; heavy rain; battery sags
    levels = [67.5, 68.02, 67.99, 68.01, 69.0, 70.1, 70.0, 69.97]
    battery = [12.0, 11.9, 11.85, 11.79, 11.85, 11.95, 11.7, 11.7]
    for i, lv in enumerate(levels):
        t = t0 + 300 * i
        obs(t, lv, 8.0 if 2 <= i <= 5 else 0.0, battery[i])
        clock.t = t + 10
        watch.tick()
    kinds = [(a.kind, a.state) for a in store.center_alarms(station=SID)]
    assert kinds == [("stage_warning", "active"), ("battery_low", "active"), ("stage_flood_limit", "active"),
                     ("rain_1h", "active")]
    # then the station falls silent: raised when its next report (every 5 min here, as
    # learned from the arrivals) is 3 intervals overdue, not before
    received = clock.t - 5
    clock.t = received + 1199
    watch.tick()
    assert "silent" not in {a.kind for a in store.center_alarms(SID, active_only=True)}
    clock.t = received + 1200
    watch.tick()
    silent = [a for a in store.center_alarms(SID, active_only=True) if a.kind == "silent"]
    assert len(silent) == 1 and silent[0].threshold == 1200 and watch.period[SID] == 300
    assert store.ack_center_alarm(silent[0].id, "duty officer Li")
    # data again: silence clears; the level fell: flood limit and warning clear
    t = t0 + 300 * 12
    obs(t, 67.0, 0.0, 12.5)
    clock.t = t + 10
    watch.tick()
    active = {a.kind for a in store.center_alarms(SID, active_only=True)}
    assert active == {"rain_1h"}  # the 32 mm are still inside the last hour
    cleared = [a for a in store.center_alarms(SID) if a.state == "cleared"]
    assert {a.kind for a in cleared} >= {"silent", "stage_flood_limit", "stage_warning", "battery_low"}
    assert all(a.cleared is not None and a.cleared >= a.raised for a in cleared)
    assert [a.acked_by for a in cleared if a.kind == "silent"] == ["duty officer Li"]

    n_events = len(store.center_alarms(SID)) + len(cleared)
    sub.wait(lambda m: sum(t.endswith("/center_alarm") for t, _, _ in m) >= n_events, 20, "center alarms")
    published = [(p["kind"], p["state"]) for t, p, _ in sub.messages if t == f"{prefix}/{SID}/center_alarm"]
    assert published[:4] == [("stage_warning", "raised"), ("battery_low", "raised"),
                             ("stage_flood_limit", "raised"), ("rain_1h", "raised")]
    assert published.count(("stage_warning", "raised")) == 1  # hysteresis: no flapping at 68.0
    assert ("silent", "cleared") in published
    first = next(p for t, p, _ in sub.messages if t.endswith("/center_alarm"))
    assert first["station"] == SID and first["value"] == 68.02 and first["threshold"] == 68.0
    states = [p for t, p, _ in sub.messages if t == f"{prefix}/{SID}/center_state"]
    assert states and "alarms" in states[-1]
    sub.stop()


def test_qc_flags_set_by_the_watch_without_changing_values(tmp_path: Path, store: Store) -> None:
    _, reg = registry(tmp_path, 'qc = { water_level = { min = 60.0, max = 80.0, step = 0.5, flat_hours = 1.0 } }\n')
    clock = Clock(1_780_000_200)
    watch = Watch(store, reg, clock)
    t0 = 1_780_000_200
    values = [65.0, 65.1, 66.0, 85.0, 65.0] + [65.0] * 12
    batch = [ObsRow(SID, "water_level", t0 + 300 * i, v, "good", t0) for i, v in enumerate(values)]
    store.upsert_observations(batch)
    watch.on_batch([tuple(r) for r in batch])  # the receiver hands plain tuples over
    watch.tick(t0 + 300 * len(values))
    got = store.observations(SID, "water_level", t0, t0 + 300 * len(values))
    assert [o.value for o in got] == values and {o.quality for o in got} == {"good"}
    flags = [o.flags for o in got]
    assert flags[:5] == ["", "", "step", "range,step", "step"]
    assert flags[-1] == "flat" and flags[5] == ""
    assert store.revisions(SID, "water_level", t0, t0 + 300 * len(values)) == []


def test_without_a_gateway_spool_gaps_are_tracked_not_requested(tmp_path: Path, store: Store) -> None:
    _, reg = registry(tmp_path)
    t0 = 1_780_000_200
    clock = Clock(t0 + 3600)
    watch = Watch(store, reg, clock, policy=POLICY)
    batch = [ObsRow(SID, "rain", t0 + 300 * i, 0.0, "good", t0 + 3600) for i in (0, 1, 5, 6)]
    store.upsert_observations(batch)
    watch.on_batch(batch)
    watch.tick()
    clock.t += 3 * 3600
    assert watch.tick()["requests"] == 0
    assert [(g.start, g.end, g.state, g.command_id) for g in store.gaps(SID)] == [
        (t0 + 600, t0 + 1200, "detected", None)]
    late = [ObsRow(SID, "rain", t0 + 300 * i, 0.0, "good", clock.t) for i in (2, 3, 4)]
    store.upsert_observations(late)
    watch.on_batch(late)
    watch.tick()
    assert [g.state for g in store.gaps(SID)] == ["recovered"]


def test_several_gateway_spools_the_command_goes_where_the_station_is(tmp_path: Path) -> None:
    reg_path, _ = registry(tmp_path)
    gws = [GatewayProc(tmp_path / name, reg_path, None) for name in ("a", "b")]
    for g in gws:
        (g.tmp).mkdir()
        g.start()
    try:
        st = SimStation(SID)

        async def report() -> None:
            conn, w = await tcp_conn(st, gws[1].port)   # the station talks to gateway b
            await conn.send(st.report())
            await conn.close()
            w.close()

        run(report())
        queue = GatewayQueue([gws[0].spool, gws[1].spool])
        cid = queue.queue_command(SID, RESEND, [1, 2], None)
        assert Spool(gws[0].spool, readonly=True).commands(SID) == []
        [cmd] = Spool(gws[1].spool, readonly=True).commands(SID)
        assert (cmd.id, cmd.op, cmd.args) == (cid, RESEND, [1, 2])
        assert queue.command_result(SID, cid) is None
        # a station no gateway has heard of: the first spool
        other = queue.queue_command(SID + 1, RESEND, [1, 2], None)
        assert [k.id for k in Spool(gws[0].spool, readonly=True).commands(SID + 1)] == [other]
        queue.close()
    finally:
        for g in gws:
            g.close()
