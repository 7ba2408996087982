"""The hourly rollups (host_tools/center/rollup.py) against a recomputation from the readings,
on both backends: after random writes, revisions and late readings, after a schema upgrade
of a database with history, and with a PostgreSQL writer still in flight."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from host_tools.center import Store, open_store, rollup

T0 = 1_735_689_600  # an hour boundary


def expected(store: Store) -> dict[tuple[int, str, int], tuple[Any, ...]]:
    """Every hour's rollup, computed here in Python from the stored readings."""
    rows = store.db.query("SELECT station, element, time, value FROM observations ORDER BY station, element, time")
    out: dict[tuple[int, str, int], list[Any]] = {}
    for s, e, t, v in rows:
        key = (int(s), e, rollup.hour_of(int(t)))
        h = out.setdefault(key, [0, 0, None, None, 0.0, None, None, None, None, None])
        h[0] += 1
        if v is None:
            h[9] = t if h[9] is None else h[9]
            continue
        h[1] += 1
        h[2] = v if h[2] is None else min(h[2], v)
        h[3] = v if h[3] is None else max(h[3], v)
        h[4] += v
        if h[5] is None:
            h[5], h[6] = t, v
        h[7], h[8] = t, v
    return {k: (h[0], h[1], h[2], h[3], round(h[4], 6) if h[1] else None, *h[5:]) for k, h in out.items()}


def stored(store: Store) -> dict[tuple[int, str, int], tuple[Any, ...]]:
    rows = store.db.query(f"SELECT {rollup.COLUMNS} FROM obs_hourly")
    return {(int(r[0]), r[1], int(r[2])): (int(r[3]), int(r[4]), r[5], r[6],
                                           None if r[7] is None else round(r[7], 6), *r[8:]) for r in rows}


def reading(rng: random.Random, station: int, element: str, slot: int) -> tuple[Any, ...]:
    value = None if rng.random() < 0.08 else round(rng.uniform(60, 70), 3)
    return (station, element, T0 + 300 * slot, value, "good", 1.0)


def test_rollup_follows_writes_revisions_and_late_readings(store: Store) -> None:
    rng = random.Random(20261203)
    slots = list(range(1, 400))
    rng.shuffle(slots)  # readings arrive in any order: late ones fill old hours
    for step in range(12):
        batch = [reading(rng, s, e, slot) for slot in slots[step * 30:(step + 1) * 30]
                 for s in (1, 2) for e in ("water_level", "rain")]
        store.upsert_observations(batch)
        if step % 3 == 1:  # the same readings again, some with another value (revisions)
            again = [r if rng.random() < 0.7 else (*r[:3], 1.0 + rng.random(), "good", 2.0) for r in batch[:20]]
            store.upsert_observations(again)
        if step % 4 == 2:  # a person's correction and a station's value set missing
            store.correct(1, "water_level", batch[0][2], 99.5, who="qc", why="test")
            store.upsert_observations([(2, "rain", batch[1][2], None, "missing", 3.0)])
        if step % 2:
            assert rollup.catch_up(store.db) > 0
            assert stored(store) == expected(store)
    while rollup.catch_up(store.db, most=50):  # in small steps, as after a long pause
        pass
    assert stored(store) == expected(store)
    assert rollup.catch_up(store.db) == 0
    assert len(stored(store)) > 50  # (the test covers many hours)


def test_a_revision_alone_is_caught_up(store: Store) -> None:
    store.upsert_observations([(7, "water_level", T0 + 300 * i, 60.0 + i, "good", 1.0) for i in range(1, 13)])
    rollup.catch_up(store.db)
    assert stored(store)[(7, "water_level", T0 + 3600)][3] == 72.0  # hi
    store.correct(7, "water_level", T0 + 300 * 12, 50.0, who="qc", why="spike")
    assert stored(store)[(7, "water_level", T0 + 3600)][3] == 72.0  # not yet: the page may lag
    assert rollup.catch_up(store.db) == 1
    got = stored(store)[(7, "water_level", T0 + 3600)]
    assert got[2:4] == (50.0, 71.0) and got[7:9] == (T0 + 3600, 50.0)  # lo, hi; last value


def test_the_upgrade_fills_the_rollup_from_a_database_with_history(store_url: str) -> None:
    rng = random.Random(5)
    with open_store(store_url) as s:
        s.upsert_observations([reading(rng, st, e, i) for st in (3, 4) for e in ("rain", "water_level")
                               for i in range(1, 200)])
        # the database as a version-5 center left it: no rollup, no row numbers
        with s.transaction():
            s.db.execute("DROP TABLE obs_hourly")
            s.db.execute("DROP TABLE obs_hourly_marks")
            if s.dialect != "sqlite":
                s.db.execute("ALTER TABLE observations DROP COLUMN seq")
            s.db.execute("DELETE FROM schema_version WHERE version = 6")
    with open_store(store_url) as s:
        assert s.schema_version() == 6
        assert stored(s) == expected(s) and len(stored(s)) == 4 * 17
        assert rollup.catch_up(s.db) == 0  # the marks start where the fill ended
        s.upsert_observations([reading(rng, 3, "rain", 500)])
        assert rollup.catch_up(s.db) == 1 and stored(s) == expected(s)


def test_postgres_catch_up_waits_for_a_writer_in_flight(postgres: Any) -> None:
    """PostgreSQL numbers a row when it is written, not when it commits: a writer that took
    smaller numbers may commit after one that took larger ones. Were catch_up to read on
    past the later writer, the earlier one's rows would never be rolled up."""
    store_url = str(postgres.new_database())  # (SQLite has one writer at a time: rowids commit in order)
    slow, fast, up = open_store(store_url), open_store(store_url), open_store(store_url)
    try:
        done = threading.Event()
        with slow.transaction():
            slow.upsert_observations([(1, "rain", T0 + 300 * i, 1.0, "good", 1.0) for i in range(1, 13)])
            fast.upsert_observations([(2, "rain", T0 + 300 * i, 2.0, "good", 1.0) for i in range(1, 13)])
            worker = threading.Thread(target=lambda: (rollup.catch_up(up.db), done.set()))
            worker.start()
            time.sleep(0.5)
            assert not done.is_set()  # it waits for the writer still in its transaction
        worker.join(30)
        assert done.is_set()
        got = stored(up)
        assert got[(1, "rain", T0 + 3600)][:2] == (12, 12) and got[(2, "rain", T0 + 3600)][:2] == (12, 12)
        assert rollup.catch_up(up.db) == 0
    finally:
        for s in (slow, fast, up):
            s.close()


def test_extreme_values_do_not_stop_the_catch_up(store: Store) -> None:
    """Twelve readings of the largest double in one hour: their sum overflows (PostgreSQL
    raises, SQLite gives inf). One such reading must not stop the rollup of everything
    stored after it; the hour keeps its exact count and extremes, its total is capped."""
    big = 1.7976931348623157e308
    store.upsert_observations([(9, "rain", T0 + 300 * i, big, "good", 1.0) for i in range(1, 13)]
                              + [(9, "rain", T0 + 3600 + 300 * i, -big, "good", 1.0) for i in range(1, 13)]
                              + [(9, "rain", T0 + 7200 + 300, 5e-324, "good", 1.0)])
    assert rollup.catch_up(store.db) == 25
    got = stored(store)
    assert got[(9, "rain", T0 + 3600)][:4] == (12, 12, big, big)
    assert got[(9, "rain", T0 + 7200)][:4] == (12, 12, -big, -big)
    assert got[(9, "rain", T0 + 10800)][:5] == (1, 1, 5e-324, 5e-324, 0.0)
    totals = [got[(9, "rain", T0 + 3600)][4], got[(9, "rain", T0 + 7200)][4]]
    assert totals[0] is not None and totals[1] is not None
    assert 1e300 < totals[0] < float("inf") and -float("inf") < totals[1] < -1e300
