"""The center store on SQLite and PostgreSQL: exactly once, revisions, migrations, reads."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from host_tools.center import Gap, ObsRow, SchemaError, Store, open_store
from host_tools.center import schema as sch

T = 1_784_000_000  # 2026-07-14


def rows(station: int, element: str, n: int, start: int = T, step: int = 300, base: float = 70.0,
         quality: str = "good") -> list[ObsRow]:
    return [ObsRow(station, element, start + i * step, base + i / 1000, quality, start + n * step)
            for i in range(n)]


def test_insert_then_duplicates_are_noops(store: Store) -> None:
    first = rows(1001, "water_level", 50) + rows(1001, "rain", 50, base=0.0)
    r = store.upsert_observations(first)
    assert (r.inserted, r.duplicates, r.revised) == (100, 0, 0)
    # the same readings again, reversed and twice within one call
    again = list(reversed(first)) + first[:10]
    r = store.upsert_observations(again)
    assert (r.inserted, r.duplicates, r.revised) == (0, 110, 0)
    assert store.count_observations() == 100
    obs = store.observations(1001, "water_level", T, T + 49 * 300)
    assert [o.time for o in obs] == [T + i * 300 for i in range(50)]
    assert obs[3].value == pytest.approx(70.003) and obs[3].quality == "good" and obs[3].flags == ""
    assert store.revisions(1001, "water_level", 0, 2**40) == []


def test_changed_value_is_a_revision(store: Store) -> None:
    store.upsert_observations(rows(1001, "water_level", 5))
    changed = ObsRow(1001, "water_level", T + 600, 70.5, "suspect", T + 9999)
    missing = ObsRow(1001, "water_level", T + 900, None, "missing", T + 9999)
    r = store.upsert_observations([*rows(1001, "water_level", 5), changed, missing])
    assert (r.inserted, r.duplicates, r.revised) == (0, 5, 2)
    obs = {o.time: o for o in store.observations(1001, "water_level", T, T + 9999)}
    assert (obs[T + 600].value, obs[T + 600].quality) == (70.5, "suspect")
    assert (obs[T + 900].value, obs[T + 900].quality) == (None, "missing")
    revs = store.revisions(1001, "water_level", T, T + 9999)
    assert [(v.time, v.old_value, v.new_value, v.old_quality, v.new_quality) for v in revs] == [
        (T + 600, pytest.approx(70.002), 70.5, "good", "suspect"),
        (T + 900, pytest.approx(70.003), None, "good", "missing"),
    ]
    # two versions of one reading in one call: both changes kept, in order
    a = ObsRow(1001, "rain", T, 1.0, "good", T)
    b = a._replace(value=2.0)
    r = store.upsert_observations([a, b, b, a._replace(value=3.0)])
    assert (r.inserted, r.duplicates, r.revised) == (1, 1, 2)
    assert [(v.old_value, v.new_value) for v in store.revisions(1001, "rain", T, T)] == [(1.0, 2.0), (2.0, 3.0)]
    assert store.observations(1001, "rain", T, T)[0].value == 3.0


def test_person_corrections_survive_station_data(store: Store) -> None:
    store.upsert_observations(rows(1001, "water_level", 3))
    assert store.correct(1001, "water_level", T + 300, 71.0, who="li.wei", why="staff gauge read 71.00")
    assert store.set_quality(1001, "water_level", T, "suspect", who="li.wei", why="debris")
    # the station's original values arrive again (gateway restart): the correction stays
    r = store.upsert_observations(rows(1001, "water_level", 3))
    assert r.revised == 0
    obs = store.observations(1001, "water_level", T, T + 600)
    assert [(o.value, o.quality) for o in obs][:2] == [(pytest.approx(70.0), "suspect"), (71.0, "manual")]
    revs = store.revisions(1001, "water_level", T, T + 600)
    assert [(v.who, v.why) for v in revs] == [("li.wei", "debris"), ("li.wei", "staff gauge read 71.00")]
    assert store.set_flags(1001, "water_level", [(T, "step"), (T + 600, "")]) == 1
    assert store.observations(1001, "water_level", T, T)[0].flags == "step"
    assert store.mark(1001, "water_level", T, T + 600, "approved", who="chen") == 3
    assert [m[1] for m in store.marks(1001, "water_level", T, T + 600)] == ["approved"] * 3


def test_reads(store: Store) -> None:
    store.upsert_observations(rows(1001, "water_level", 4) + rows(1001, "rain", 2, base=0.5)
                              + rows(1002, "rain", 1))
    assert store.elements(1001) == ["rain", "water_level"]
    latest = store.latest(1001)
    assert latest["water_level"].time == T + 900 and latest["rain"].time == T + 300
    assert store.last_seen(1001) == T + 1200
    assert store.last_seen(4242) is None
    assert store.latest(4242) == {} and store.elements(4242) == []
    assert store.counts(exact=True)["observations"] == 7
    if store.dialect == "postgresql":
        store.db.execute("ANALYZE")  # the estimate's rows per page (autovacuum's job in service)
    cheap = store.counts()
    assert cheap["observations"] == 7 and cheap["stations"] == 0 and set(cheap) == set(store.counts(exact=True))


def test_center_alarms_and_gaps(store: Store) -> None:
    a = store.add_center_alarm(1001, "silent", raised=T, threshold=3)
    b = store.add_center_alarm(1002, "stage_warning", raised=T + 60, value=68.2, threshold=68.0)
    assert a != b
    assert [x.id for x in store.center_alarms(active_only=True)] == [a, b]
    assert store.clear_center_alarm(a, T + 600)
    assert not store.clear_center_alarm(a, T + 700)
    assert store.ack_center_alarm(b, "zhang", at=T + 90)
    got = store.center_alarms(1002)
    assert got[0].acked_by == "zhang" and got[0].state == "active"
    assert [x.id for x in store.center_alarms(active_only=True)] == [b]
    store.set_gap(Gap(1001, "rain", T, T + 3600, "detected", None, T + 4000))
    store.set_gap(Gap(1001, "rain", T, T + 3600, "requested", 7, T + 4100))
    store.set_gap(Gap(1001, "rain", T + 7200, T + 7500, "lost", None, T + 9000))
    assert [(g.state, g.command_id) for g in store.gaps(1001, "rain")] == [("requested", 7), ("lost", None)]
    assert len(store.gaps(1001, start=T + 3700)) == 1
    assert store.gaps(states=["lost"])[0].start == T + 7200
    with pytest.raises(ValueError):
        store.set_gap(Gap(1001, "rain", T, T, "gone", None, T))


def test_schema_version_and_reopen(store_url: str) -> None:
    s = open_store(store_url)
    s.upsert_observations(rows(1001, "rain", 3))
    assert s.schema_version() == sch.latest_version()
    s.close()
    s = open_store(store_url)  # migrating again is a no-op
    assert s.count_observations() == 3
    s.close()


def test_older_database_is_upgraded_newer_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    open_store(url).close()
    extra = sch.Migration(sch.latest_version() + 1, "test table", ["CREATE TABLE extra (x {real})"])
    monkeypatch.setattr(sch, "MIGRATIONS", [*sch.MIGRATIONS, extra])
    s = open_store(url)
    assert s.schema_version() == extra.version
    s.db.execute("INSERT INTO extra VALUES (1.5)")
    s.close()
    monkeypatch.setattr(sch, "MIGRATIONS", sch.MIGRATIONS[:-1])
    with pytest.raises(SchemaError) as e:
        open_store(url)
    assert "newer than this hydrolink" in str(e.value) and "\n" not in str(e.value)


def test_sqlite_is_wal(tmp_path: Path) -> None:
    s = open_store(f"sqlite:///{tmp_path}/w.db")
    s.close()
    assert sqlite3.connect(tmp_path / "w.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_values_are_stored_bit_exact(store: Store) -> None:
    """Staging goes through JSON on SQLite: a value read back and written again must compare
    equal, or a redelivery would look like a revision."""
    import random
    import struct

    rnd = random.Random(5)
    values = [rnd.uniform(-1e4, 1e4) for _ in range(3000)] + [
        struct.unpack("<d", rnd.randbytes(8))[0] for _ in range(3000)] + [0.1, 1e-300, 5e-324, 1.7976931348623157e308]
    values = [v for v in values if v == v and abs(v) != float("inf")]
    first = [ObsRow(9, "water_level", T + i, v, "good", T) for i, v in enumerate(values)]
    assert store.upsert_observations(first).inserted == len(values)
    back = store.observations(9, "water_level", T, T + len(values))
    assert [o.value for o in back] == values
    again = [ObsRow(9, "water_level", o.time, o.value, o.quality, T) for o in back]
    assert store.upsert_observations(again).duplicates == len(values)


def test_mixed_batches_after_fast_path(store: Store) -> None:
    """New readings go in by one bulk write (SQLite INSERT from JSON, PostgreSQL COPY) and fall back when one is there
    already; whichever path a batch takes, the counts and rows are the same."""
    store.upsert_observations(rows(1001, "rain", 10))
    r = store.upsert_observations(rows(1001, "rain", 20))  # 10 stored already, 10 new
    assert (r.inserted, r.duplicates, r.revised) == (10, 10, 0)
    for k in range(25):  # past the fallback's batches, back to the fast path
        r = store.upsert_observations(rows(1002, "rain", 3, start=T + 10_000 * k))
        assert r.inserted == 3
    assert store.count_observations() == 20 + 75


def test_workers_opening_an_empty_database_together(store_url: str) -> None:
    """Migrations hold a schema lock: several workers starting at once all succeed."""
    import threading

    errors: list[BaseException] = []
    go = threading.Barrier(4)

    def open_one() -> None:
        try:
            go.wait(10)
            open_store(store_url).close()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with open_store(store_url) as s:
        versions = s.db.query("SELECT version FROM schema_version ORDER BY version")
        assert [v for (v,) in versions] == [m.version for m in sch.MIGRATIONS]
