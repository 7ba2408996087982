"""The receiver in-process against the session Mosquitto, on SQLite and PostgreSQL.

Every test uses its own topic prefix, so other tests' messages on the shared broker
never reach it, and counts every reading against what was published.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from host_tools.center import open_store
from host_tools.center.receiver import Center
from host_tools.registry import registry_toml
from protocol import codec as c
from tests.gateway.helpers import Mosquitto, wait_for

from .feed import T0, UNIX0, Fleet, Publisher, keys, obs, status

_ids = itertools.count()


@pytest.fixture
def prefix() -> str:
    return f"t{next(_ids)}/hydrolink/v1"


@pytest.fixture
def pub(mosquitto: Mosquitto) -> Iterator[Publisher]:
    p = Publisher(mosquitto.port, f"pub-{next(_ids)}")
    yield p
    p.close()


def center(url: str, broker: Mosquitto, prefix: str, **kw: object) -> Center:
    c = Center(url, broker.url, topic_prefix=prefix, client_id=f"center-{prefix.split('/')[0]}", **kw)  # type: ignore[arg-type]
    c.start()
    assert c.wait_connected(20)
    return c


def retopic(msgs: list[tuple[str, bytes]], prefix: str) -> list[tuple[str, bytes]]:
    return [(t.replace("hydrolink/v1", prefix, 1), p) for t, p in msgs]


def test_every_reading_once_duplicates_order_revision_garbage(
    store_url: str, mosquitto: Mosquitto, prefix: str, pub: Publisher
) -> None:
    fleet = Fleet(range(2001, 2011), 6)
    msgs = retopic(fleet.messages, prefix)
    want = keys(fleet.messages)
    cen = center(store_url, mosquitto, prefix, batch_max=17)
    try:
        pub.publish(msgs)
        pub.publish(list(reversed(msgs)))  # every message again, in reverse order
        # a revision: the first message of station 2001 again with other values
        revised = retopic([obs(2001, 1, T0, 12, seed=1)], prefix)
        garbage = [
            (f"{prefix}/2001/obs", b"{not json"),
            (f"{prefix}/2001/obs", json.dumps({"v": 1, "station": 2001, "seq": 9, "type": "data",
                                               "time": "2026-07-14T10:00:00Z", "series": [
                {"element": 77, "unit": None, "interval_s": 300, "start": "2026-07-14T09:00:00Z",
                 "values": [{"time": "2026-07-14T09:00:00Z", "value": 1, "quality": "good"}]}]}).encode()),
            (f"{prefix}/2001/obs", json.dumps({"v": 1, "station": 2001, "seq": 10, "type": "data",
                                               "time": "2026-07-14T10:00:00Z", "series": [
                {"element": "rain", "unit": "mm", "interval_s": 300, "start": "2036-07-14T09:00:00Z",
                 "values": [{"time": "2036-07-14T09:00:00Z", "value": 1, "quality": "good"}]}],
                "received": "2026-07-14T10:00:00.100Z"}).encode()),
            (f"{prefix}/abc/obs", b"{}"),
            (f"{prefix}/2002/obs", json.dumps({"v": 1, "station": 2003, "seq": 1}).encode()),
        ]
        pub.publish(garbage + revised)
        tail = retopic([obs(2010, 99, T0 + 10**6, 4)], prefix)  # after the garbage: still running
        pub.publish(tail)
        want |= keys(tail)
        s = open_store(store_url)
        wait_for(lambda: cen.stats["messages"] >= 2 * len(msgs) + len(garbage) + 2, 60, "all messages")
        assert s.count_observations() == len(want)
        got = {(st, e, t) for st in fleet.stations for e in ("water_level", "rain")
               for t, *_ in s.observations(st, e, 0, 2**40)} | {
            (2010, e, t) for e in ("water_level", "rain") for t, *_ in s.observations(2010, e, 0, 2**40)}
        assert got == want
        revs = s.revisions(2001, "water_level", UNIX0, UNIX0 + 3600)
        assert revs and all(r.who is None for r in revs)
        assert s.reject_counts() == {"bad_json": 1, "bad_time": 1, "bad_topic": 1, "station_mismatch": 1,
                                     "unknown_element": 1}
        assert cen.snapshot()["rejects"] == s.reject_counts()
        assert cen.stats["readings_inserted"] == len(want)
        s.close()
    finally:
        cen.stop()


def test_status_alarm_events_state_and_registry(
    tmp_path: Path, mosquitto: Mosquitto, prefix: str, pub: Publisher
) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    reg = tmp_path / "stations.toml"
    reg.write_text(registry_toml({3001: b"k" * 32}, {3001: "Gaoqiao"}))
    cen = center(url, mosquitto, prefix, registry=reg, status_every=0.2)
    try:
        alarm = obs(3001, 5, T0, 2, kind=c.ALARM)
        doc = json.loads(alarm[1])
        doc["alarms"] = [{"kind": "level_high", "state": "raised", "value": 70.3, "threshold": 70.0, "unit": "m"}]
        msgs = [status(3001, 4, T0), (alarm[0], json.dumps(doc).encode()),
                ("hydrolink/v1/3001/events", json.dumps({
                    "v": 1, "station": 3001, "seq": 6, "type": "result", "time": "2026-07-14T10:00:00Z",
                    "auth": True, "results": [{"id": 3, "code": "ok"}]}).encode()),
                ("hydrolink/v1/3001/events", json.dumps({
                    "v": 1, "station": 3001, "event": "command_sent", "ack_seq": 4711,
                    "sent": "2026-07-14T10:00:03.412Z", "commands": [{"id": 3, "op": "reboot"}]}).encode())]
        pub.publish(retopic(msgs, prefix))
        pub.publish([(f"{prefix}/3001/state", json.dumps({"v": 1, "station": 3001, "frames": 9}).encode())],
                    retain=True)
        s = open_store(url)
        wait_for(lambda: cen.stats["messages"] >= 5, 30, f"messages {cen.snapshot()} {s.rejects()}")
        st = s.status_rows(3001, 0, 2**40)
        assert len(st) == 1 and st[0].battery_v == 12.6 and st[0].clock_offset_s == -2
        al = s.alarms_received(3001, 0, 2**40)
        assert [(a.kind, a.state, a.value, a.threshold) for a in al] == [("level_high", "raised", 70.3, 70.0)]
        assert s.count_observations(3001) == 4  # the alarm frame's readings
        assert [e.kind for e in s.events(3001, 0, 2**40)] == ["result", "command_sent"]
        assert s.station_state(3001) == {"v": 1, "station": 3001, "frames": 9}
        assert s.stations()[0].name == "Gaoqiao"
        # SIGHUP's path: the registry changes, the writer reloads it
        reg.write_text(registry_toml({3001: b"k" * 32, 3002: b"j" * 32}, {3001: "Gaoqiao up", 3002: "RG"}))
        cen.reload_registry()
        pub.publish(retopic([status(3001, 7, T0 + 60)], prefix))  # wakes the writer
        wait_for(lambda: [x.name for x in s.stations()] == ["Gaoqiao up", "RG"], 30, "registry reload")
        wait_for(lambda: any(w[3].get("messages", 0) >= 6 for w in s.workers()), 30, "worker status saved")
        s.close()
    finally:
        cen.stop()


def test_persistent_session_on_mqtt_311(tmp_path: Path, mosquitto: Mosquitto, prefix: str,
                                        pub: Publisher) -> None:
    """What is published while the center is away arrives when it comes back (3.1.1, as amqtt)."""
    url = f"sqlite:///{tmp_path}/c.db"
    first = Fleet(range(4001, 4004), 2)
    later = Fleet(range(4004, 4007), 2)
    cen = center(url, mosquitto, prefix, protocol="3.1.1")
    pub.publish(retopic(first.messages, prefix))
    s = open_store(url)
    wait_for(lambda: s.count_observations() == first.readings, 30, "first readings")
    cen.stop()
    pub.publish(retopic(later.messages, prefix))  # nobody connected: the broker keeps them
    cen = center(url, mosquitto, prefix, protocol="3.1.1")
    try:
        wait_for(lambda: s.count_observations() == first.readings + later.readings, 30, "readings sent meanwhile")
    finally:
        cen.stop()
        s.close()


def test_metrics_endpoint(tmp_path: Path, mosquitto: Mosquitto, prefix: str, pub: Publisher) -> None:
    import urllib.request

    from host_tools.center.metrics import serve_metrics
    from tests.gateway.helpers import free_port

    url = f"sqlite:///{tmp_path}/c.db"
    cen = center(url, mosquitto, prefix)
    port = free_port()
    server = serve_metrics("127.0.0.1", port, cen.snapshot)
    try:
        fleet = Fleet(range(9001, 9003), 2)
        pub.publish(retopic(fleet.messages, prefix) + [(f"{prefix}/9001/obs", b"nope")])
        wait_for(lambda: cen.stats["messages"] >= 5, 30, "messages")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
        assert f"hydrolink_center_readings_inserted_total {float(fleet.readings)}" in text
        assert 'hydrolink_center_rejected_total{reason="bad_json"} 1.0' in text
        assert "hydrolink_center_mqtt_connected 1.0" in text
    finally:
        server.shutdown()
        server.server_close()
        cen.stop()


def test_broker_restart_mid_run(tmp_path: Path) -> None:
    """The broker goes away and comes back (same port, its persistence on): the center
    reconnects to its session; what it had not acknowledged comes again, stored once."""
    broker = Mosquitto(tmp_path / "mq")  # our own: this test stops it
    broker.start()
    url = f"sqlite:///{tmp_path}/c.db"
    fleet = Fleet(range(9501, 9511), 8)
    half = len(fleet.messages) // 2
    cen = center(url, broker, "hydrolink/v1")
    s = open_store(url)
    try:
        p = Publisher(broker.port, "pub-restart-1")
        p.publish(fleet.messages[:half])
        p.close()
        broker.stop()
        wait_for(lambda: not cen.connected.is_set(), 30, "the center to notice")
        broker.start()
        assert cen.wait_connected(60)
        p = Publisher(broker.port, "pub-restart-2")
        p.publish(fleet.messages[half:])
        p.close()
        wait_for(lambda: s.count_observations() >= fleet.readings, 60, "every reading")
        assert s.count_observations() == fleet.readings and s.counts(exact=True)["revisions"] == 0
        assert cen.stats["connects"] >= 2
    finally:
        cen.stop()
        s.close()
        broker.stop()
