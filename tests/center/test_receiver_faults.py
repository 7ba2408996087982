"""Faults on the real CLI: kill -9 mid-run, PostgreSQL away and back, two shared workers.

Each test publishes a known fleet (every PUBACK received from the broker) and then
compares the store with it reading by reading: none lost, none stored twice.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from host_tools.center import Store, open_store
from tests.gateway.helpers import Mosquitto, wait_for
from tests.servers import Postgres, pg_available

from .feed import Fleet, keys
from .procs import CenterProc, Feeder

_ids = itertools.count()
ELEMENTS = ("water_level", "rain")


def stored_keys(s: Store, stations: range) -> set[tuple[int, str, int]]:
    return {(st, e, o.time) for st in stations for e in ELEMENTS for o in s.observations(st, e, 0, 2**40)}


def check_exactly_once(s: Store, fleet: Fleet) -> None:
    want = keys(fleet.messages)
    assert s.count_observations() == len(want)  # nothing twice: the count equals the distinct keys...
    assert stored_keys(s, fleet.stations) == want  # ...and every published reading is there
    assert s.counts(exact=True)["revisions"] == 0 and s.counts(exact=True)["rejects"] == 0


def run_id(tag: str) -> str:
    return f"{tag}{next(_ids)}"


@pytest.mark.slow
def test_kill9_during_busy_run_then_restart(store_url: str, mosquitto: Mosquitto, tmp_path: Path) -> None:
    rid = run_id("k")
    prefix = f"{rid}/hydrolink/v1"
    fleet = Fleet(range(5001, 5021), 30)  # 600 messages, 14,400 readings
    msgs = [(t.replace("hydrolink/v1", prefix, 1), p) for t, p in fleet.messages]
    center = CenterProc(tmp_path, store_url, mosquitto.url, f"center-{rid}", "--topic-prefix", prefix,
                        "--batch", "50")
    s = open_store(store_url)
    try:
        center.start()
        feeder = Feeder(mosquitto.port, msgs, chunk=10).start()
        wait_for(lambda: s.count_observations() > fleet.readings // 4, 60, "a quarter stored")
        center.kill9()  # mid-run: batches received and not committed, commits not acknowledged
        killed_at = s.count_observations()
        assert killed_at < fleet.readings, "the run was over before the kill; make it longer"
        center.start()
        feeder.join()
        wait_for(lambda: s.count_observations() >= fleet.readings, 120, "every reading after the restart")
        assert center.stop() == 0
        check_exactly_once(s, fleet)
    finally:
        center.close()
        s.close()


@pytest.mark.slow
def test_postgres_down_and_back_while_messages_come(mosquitto: Mosquitto, tmp_path: Path) -> None:
    reason = pg_available()
    if reason:
        pytest.skip(reason)
    pg = Postgres().start()  # our own server: this test stops it
    rid = run_id("p")
    prefix = f"{rid}/hydrolink/v1"
    fleet = Fleet(range(6001, 6011), 40)
    msgs = [(t.replace("hydrolink/v1", prefix, 1), p) for t, p in fleet.messages]
    url = pg.new_database()
    center = CenterProc(tmp_path, url, mosquitto.url, f"center-{rid}", "--topic-prefix", prefix)
    try:
        center.start()
        feeder = Feeder(mosquitto.port, msgs, chunk=5, pause=0.02).start()
        with open_store(url) as s:
            wait_for(lambda: s.count_observations() > 0, 60, "the first readings")
        pg.stop("immediate")  # the database goes away mid-run...
        wait_for(lambda: "store failed" in center.text(), 60, "the center to notice")
        sent_while_down = feeder.sent
        wait_for(lambda: feeder.sent > sent_while_down, 60, "messages published while the database is down")
        pg.start()  # ...and comes back on the same port
        feeder.join()
        with open_store(url) as s:
            try:
                wait_for(lambda: s.count_observations() >= fleet.readings, 120, "every reading after the restart")
            except AssertionError as e:
                raise AssertionError(f"{e}; {s.count_observations()} of {fleet.readings}: {center.stacks()}") from None
            assert center.stop() == 0
            check_exactly_once(s, fleet)
            (_, _, _, stats), = s.workers()
            assert stats["db_errors"] >= 1 and stats["readings_inserted"] == fleet.readings
    finally:
        center.close()
        pg.remove()


@pytest.mark.slow
def test_two_shared_workers_one_killed(postgres: Postgres, mosquitto: Mosquitto, tmp_path: Path) -> None:
    rid = run_id("s")
    prefix = f"{rid}/hydrolink/v1"
    fleet = Fleet(range(7001, 7021), 30)
    msgs = [(t.replace("hydrolink/v1", prefix, 1), p) for t, p in fleet.messages]
    url = postgres.new_database()
    share = ("--share", f"g{rid}", "--topic-prefix", prefix, "--batch", "50")
    a = CenterProc(tmp_path, url, mosquitto.url, f"a-{rid}", *share)
    b = CenterProc(tmp_path, url, mosquitto.url, f"b-{rid}", *share)
    s = open_store(url)
    try:
        a.start()
        b.start()
        feeder = Feeder(mosquitto.port, msgs, chunk=10).start()
        wait_for(lambda: s.count_observations() > fleet.readings // 3, 60, "a third stored")
        a.kill9()
        at_kill = s.count_observations()
        feeder.join()
        # b alone carries on with everything published after the kill
        wait_for(lambda: s.count_observations() > at_kill, 60, "worker b storing after a died")
        a.start()  # its supervisor restarts it: its session's unacknowledged messages come back
        wait_for(lambda: s.count_observations() >= fleet.readings, 120, "every reading")
        assert a.stop() == 0 and b.stop() == 0
        check_exactly_once(s, fleet)
        per = {w: st["readings_inserted"] for w, _, _, st in s.workers()}
        assert per[f"b-{rid}"] > 0 and per[f"a-{rid}"] > 0, per
    finally:
        a.close()
        b.close()
        s.close()


def test_sighup_reloads_the_registry(mosquitto: Mosquitto, tmp_path: Path) -> None:
    import os
    import signal

    from host_tools.registry import registry_toml

    url = f"sqlite:///{tmp_path}/c.db"
    reg = tmp_path / "stations.toml"
    reg.write_text(registry_toml({1: b"a" * 32}, {1: "Upstream"}))
    rid = run_id("h")
    center = CenterProc(tmp_path, url, mosquitto.url, f"center-{rid}", "--registry", str(reg),
                        "--topic-prefix", f"{rid}/hydrolink/v1")
    try:
        center.start()
        with open_store(url) as s:
            wait_for(lambda: [m.name for m in s.stations()] == ["Upstream"], 30, "the registry at start")
            reg.write_text(registry_toml({1: b"a" * 32, 2: b"b" * 32}, {1: "Upstream gauge", 2: "Dam"}))
            assert center.proc is not None
            os.kill(center.proc.pid, signal.SIGHUP)
            wait_for(lambda: [m.name for m in s.stations()] == ["Upstream gauge", "Dam"], 30, "the reload")
            reg.write_text("not toml [")  # a bad edit: logged, the old metadata kept, still running
            os.kill(center.proc.pid, signal.SIGHUP)
            wait_for(lambda: "registry not loaded" in center.text(), 30, "the bad edit logged")
            assert center.stop() == 0
            assert [m.name for m in s.stations()] == ["Upstream gauge", "Dam"]
    finally:
        center.close()
