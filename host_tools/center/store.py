"""The center store: every reading once, revisions kept, on SQLite or PostgreSQL.

``open_store(url)`` opens (and creates or migrates) the database. Observations are
keyed on (station, element, time): the same reading again is a no-op, a reading
that comes back with another value or quality updates the row and leaves a
:class:`~host_tools.center.model.Revision` (old, new, when, who, why). A value a
person corrected (:meth:`Store.correct`) is not overwritten by station data arriving
later. Times are UNIX seconds. One :class:`Store` per thread.
"""

from __future__ import annotations

import json
import operator
import time as _time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .db import Database, StoreError, connect
from .model import (
    Batch,
    Event,
    Obs,
    ObsRow,
    Revision,
    Row,
    StationAlarm,
    StationMeta,
    StatusRow,
    UpsertResult,
    meta_json,
)
from .schema import SchemaError
from .watchstore import WatchStoreMixin

__all__ = ["Store", "StoreError", "SchemaError", "open_store"]

Clock = Callable[[], float]
_key3 = operator.itemgetter(0, 1, 2)
COUNTED = ("stations", "observations", "revisions", "status", "events", "station_alarms",
           "rejects", "gaps", "center_alarms")
_KEY = "o.station = n.station AND o.element = n.element AND o.time = n.time"
# a station's elements by a walk down the primary key (station, element, time), one seek
# per element, instead of grouping the station's whole history (a "loose index scan")
_ELEMENTS_OF = (
    "WITH RECURSIVE e (element) AS (SELECT MIN(element) FROM observations WHERE station = ?"
    " UNION ALL SELECT (SELECT MIN(element) FROM observations WHERE station = ? AND element > e.element)"
    " FROM e WHERE e.element IS NOT NULL)"
)


def open_store(url: str, *, clock: Clock = _time.time) -> Store:
    """Open the store at ``url`` (``sqlite:///PATH`` or ``postgresql://...``), creating or
    upgrading its schema. Raises :class:`StoreError` / :class:`SchemaError` (one line)."""
    db = connect(url)
    try:
        db.migrate()
        db.prepare()
    except (SchemaError, StoreError):
        db.close()
        raise
    except Exception as e:
        db.close()
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise StoreError(f"{db.where}: cannot create or upgrade the schema: {first}") from None
    except BaseException:
        db.close()
        raise
    return Store(db, url, clock)


def _passes(rows: Iterable[Row]) -> tuple[list[list[Row]], int]:
    """Split rows into passes with unique keys, in arrival order; drop exact repeats."""
    rows = rows if isinstance(rows, list) else list(rows)
    if len(set(map(_key3, rows))) == len(rows):  # the common case, at C speed
        return ([rows] if rows else []), 0
    passes: list[dict[tuple[int, str, int], Row]] = []
    last: dict[tuple[int, str, int], tuple[int, Row]] = {}
    repeats = 0
    for r in rows:
        key = (r[0], r[1], r[2])
        seen = last.get(key)
        if seen is not None and seen[1][3] == r[3] and seen[1][4] == r[4]:
            repeats += 1
            continue
        n = 0 if seen is None else seen[0] + 1
        if n == len(passes):
            passes.append({})
        passes[n][key] = r
        last[key] = (n, r)
    return [list(p.values()) for p in passes], repeats


class Store(WatchStoreMixin):
    """One connection to the center database. See :func:`open_store`."""

    def __init__(self, db: Database, url: str, clock: Clock = _time.time) -> None:
        self.db = db
        self.url = url
        self.clock = clock

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.db.dialect

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> Any:
        """A transaction context; writes inside it join it (nested uses are one transaction)."""
        return self.db.transaction()

    def schema_version(self) -> int:
        """The schema version of the database."""
        return int(self.db.query("SELECT MAX(version) FROM schema_version")[0][0])

    # ------------------------------------------------------------ writes

    def upsert_observations(
        self, rows: Iterable[Row], who: str | None = None, why: str | None = None
    ) -> UpsertResult:
        """Store readings once each; a changed value or quality becomes a revision.

        ``who``/``why`` name a person's change (QC); None is station data, which does
        not override a value a person corrected. One transaction (or joins the caller's).
        """
        rows = rows if isinstance(rows, list) else list(rows)
        if who is None and rows:
            with self.db.transaction():
                if self.db.insert_all_new(rows):  # all new: no key twice, nothing to compare
                    return UpsertResult(len(rows))
        passes, repeats = _passes(rows)
        result = UpsertResult(duplicates=repeats)
        if not passes:
            return result
        dist = self.db.distinct
        changed = f"(o.value {dist} n.value OR o.quality <> n.quality)"
        guard = "" if who is not None else " AND o.source = 'station'"
        source = "manual" if who is not None else "station"
        now = self.clock()
        with self.db.transaction():
            for batch in passes:
                # new readings first (the common case: then nothing else runs); a row that
                # conflicted is either the same reading again or a revision of it
                inserted = self.db.insert_new(batch, source)
                revised = 0
                if inserted < len(batch):
                    self.db.stage_for_revisions(batch)
                    revised = self.db.execute(
                        "INSERT INTO revisions (station, element, time, old_value, new_value, old_quality,"
                        " new_quality, changed_at, who, why) SELECT o.station, o.element, o.time, o.value,"
                        f" n.value, o.quality, n.quality, ?, ?, ? FROM obs_in n JOIN observations o ON {_KEY}"
                        f" WHERE {changed}{guard}",
                        (now, who, why),
                    )
                if revised:
                    self.db.execute(
                        "UPDATE observations SET value = n.value, quality = n.quality,"
                        f" received = n.received, source = ? FROM obs_in n WHERE"
                        f" {_KEY.replace('o.', 'observations.')}"
                        f" AND {changed.replace('o.', 'observations.')}"
                        f"{guard.replace('o.', 'observations.')}",
                        (source,),
                    )
                self.db.clear_stage()
                result += UpsertResult(inserted, len(batch) - inserted - revised, revised)
        return result

    def store_batch(self, batch: Batch) -> UpsertResult:
        """Write everything a batch of messages became, in ONE transaction."""
        with self.db.transaction():
            result = self.upsert_observations(batch.observations)
            if batch.status:
                self.db.executemany(
                    f"INSERT INTO status VALUES ({', '.join('?' * 16)}) ON CONFLICT DO NOTHING",
                    batch.status,
                )
            if batch.alarms:
                self.db.executemany(
                    f"INSERT INTO station_alarms VALUES ({', '.join('?' * 10)}) ON CONFLICT DO NOTHING",
                    batch.alarms,
                )
            if batch.events:
                self.db.executemany(
                    "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", batch.events
                )
            for station, updated, payload in batch.states:
                self.db.execute(
                    "INSERT INTO station_state VALUES (?, ?, ?) ON CONFLICT (station) DO UPDATE SET"
                    " updated = excluded.updated, payload = excluded.payload"
                    " WHERE excluded.updated >= station_state.updated",
                    (station, updated, payload),
                )
            if batch.rejects:
                self.db.executemany(
                    "INSERT INTO rejects (received, topic, reason, detail, payload) VALUES (?, ?, ?, ?, ?)",
                    batch.rejects,
                )
        return result

    def save_worker(self, worker: str, started: float, stats: Mapping[str, Any]) -> None:
        """Record a receiver worker's counters (read by ``hydrolink center --status``)."""
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO center_workers VALUES (?, ?, ?, ?) ON CONFLICT (worker) DO UPDATE SET"
                " started = excluded.started, updated = excluded.updated, stats = excluded.stats",
                (worker, started, self.clock(), json.dumps(stats, sort_keys=True)),
            )

    def workers(self) -> list[tuple[str, float, float, dict[str, Any]]]:
        """Every receiver worker's last counters: (worker, started, updated, stats)."""
        return [(r[0], r[1], r[2], json.loads(r[3])) for r in self.db.query(
            "SELECT worker, started, updated, stats FROM center_workers ORDER BY worker"
        )]

    def sync_stations(self, stations: Iterable[Any]) -> int:
        """Copy registry :class:`~host_tools.registry.Station` metadata into ``stations``."""
        now = self.clock()
        rows = []
        for s in stations:
            loc = s.location
            rows.append((
                s.id, s.name, s.kind, loc.lat if loc else None, loc.lon if loc else None,
                loc.elevation_m if loc else None, s.timezone, s.record_interval_s,
                s.rain_day_start_hour, json.dumps(list(s.sensors)), json.dumps(meta_json(s.stages)),
                json.dumps(meta_json(s.alarms)), json.dumps(meta_json(s.qc)), s.notes, now,
            ))
        cols = ("station, name, kind, lat, lon, elevation_m, timezone, record_interval_s, "
                "rain_day_start_hour, sensors, stages, alarms, qc, notes, updated")
        sets = ", ".join(f"{c} = excluded.{c}" for c in cols.split(", ")[1:])
        with self.db.transaction():
            self.db.executemany(
                f"INSERT INTO stations ({cols}) VALUES ({', '.join('?' * 15)})"
                f" ON CONFLICT (station) DO UPDATE SET {sets}",
                rows,
            )
        return len(rows)

    # ------------------------------------------------------------ reads

    def stations(self) -> list[StationMeta]:
        """Every station's registry metadata, by id."""
        out = []
        for r in self.db.query(
            "SELECT station, name, kind, lat, lon, elevation_m, timezone, record_interval_s,"
            " rain_day_start_hour, sensors, stages, alarms, qc, notes FROM stations ORDER BY station"
        ):
            out.append(StationMeta(
                int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], int(r[7]), int(r[8]),
                tuple(json.loads(r[9])), json.loads(r[10]), json.loads(r[11]), json.loads(r[12]), r[13],
            ))
        return out

    def station(self, station: int) -> StationMeta | None:
        """One station's metadata, or None if the registry sync has not seen it."""
        return next((s for s in self.stations() if s.station == station), None)

    def observations(self, station: int, element: str, start: int, end: int) -> list[Obs]:
        """Readings with ``start <= time <= end``, oldest first."""
        return [
            Obs(int(t), v, q, f)
            for t, v, q, f in self.db.query(
                "SELECT time, value, quality, flags FROM observations WHERE station = ? AND element = ?"
                " AND time >= ? AND time <= ? ORDER BY time",
                (station, element, start, end),
            )
        ]

    def latest(self, station: int) -> dict[str, Obs]:
        """The newest stored reading of each element of a station (index seeks only)."""
        rows = self.db.query(
            _ELEMENTS_OF + " SELECT o.element, o.time, o.value, o.quality, o.flags FROM e JOIN observations o"
            " ON o.station = ? AND o.element = e.element AND o.time = (SELECT MAX(time) FROM observations m"
            " WHERE m.station = ? AND m.element = e.element) ORDER BY o.element",
            (station, station, station, station),
        )
        return {e: Obs(int(t), v, q, f) for e, t, v, q, f in rows}

    def elements(self, station: int) -> list[str]:
        """The elements a station has readings of, sorted (index seeks only)."""
        return [r[0] for r in self.db.query(
            _ELEMENTS_OF + " SELECT element FROM e WHERE element IS NOT NULL ORDER BY element", (station, station)
        )]

    def revisions(self, station: int, element: str, start: int, end: int) -> list[Revision]:
        """Changes to readings with ``start <= time <= end``, by reading time then change order."""
        return [
            Revision(int(r[0]), *r[1:])
            for r in self.db.query(
                "SELECT time, old_value, new_value, old_quality, new_quality, changed_at, who, why"
                " FROM revisions WHERE station = ? AND element = ? AND time >= ? AND time <= ?"
                " ORDER BY time, id",
                (station, element, start, end),
            )
        ]

    def status_rows(self, station: int, start: int, end: int) -> list[StatusRow]:
        """Status frames (battery, clock offset, queue depth...) with frame time in range."""
        return [
            StatusRow(*r)
            for r in self.db.query(
                "SELECT * FROM status WHERE station = ? AND time >= ? AND time <= ? ORDER BY time, seq",
                (station, start, end),
            )
        ]

    def events(self, station: int, start: int, end: int) -> list[Event]:
        """Events (command results, commands sent) with time in range."""
        return [
            Event(*r)
            for r in self.db.query(
                "SELECT station, time, kind, key, received, payload FROM events WHERE station = ?"
                " AND time >= ? AND time <= ? ORDER BY time, key",
                (station, start, end),
            )
        ]

    def alarms_received(self, station: int, start: int, end: int) -> list[StationAlarm]:
        """Alarms the station itself raised or cleared (alarm frames), by time."""
        return [
            StationAlarm(*r)
            for r in self.db.query(
                "SELECT * FROM station_alarms WHERE station = ? AND time >= ? AND time <= ?"
                " ORDER BY time, seq, kind",
                (station, start, end),
            )
        ]

    def station_state(self, station: int) -> dict[str, Any] | None:
        """The gateway's last retained ``state`` message for the station, or None."""
        rows = self.db.query("SELECT payload FROM station_state WHERE station = ?", (station,))
        return json.loads(rows[0][0]) if rows else None

    def last_seen(self, station: int) -> int | None:
        """When the center last received anything from the station (UNIX s), or None."""
        rows = self.db.query(
            "SELECT MAX(t) FROM (SELECT MAX(received) AS t FROM observations WHERE station = ?"
            " UNION ALL SELECT MAX(received) FROM status WHERE station = ?"
            " UNION ALL SELECT MAX(received) FROM station_alarms WHERE station = ?) x",
            (station, station, station),
        )
        return None if rows[0][0] is None else int(rows[0][0])

    def counts(self, exact: bool = False) -> dict[str, int]:
        """Row counts of the main tables (for ``--status``); see :meth:`counts_meaning`.

        Cheap on tables of billions of rows: SQLite's highest rowid per table (one seek:
        the rows ever inserted, which is the row count since the center deletes none),
        PostgreSQL's planner estimate. ``exact``: ``COUNT(*)`` of each (a full scan).
        """
        if exact:
            sql = " UNION ALL ".join(f"SELECT '{t}', COUNT(*) FROM {t}" for t in COUNTED)
        elif self.dialect == "sqlite":
            sql = " UNION ALL ".join(f"SELECT '{t}', COALESCE(MAX(rowid), 0) FROM {t}" for t in COUNTED)
        else:
            # rows per page at the last ANALYZE (autovacuum's) times the pages the table has now,
            # as the planner estimates; before the first ANALYZE the statistics' live rows
            names = ", ".join(f"'{t}'" for t in COUNTED)
            sql = ("SELECT c.relname, CASE WHEN c.reltuples >= 0 AND c.relpages > 0 THEN"
                   " round(c.reltuples / c.relpages * (pg_relation_size(c.oid)"
                   " / current_setting('block_size')::bigint)) ELSE s.n_live_tup END"
                   " FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid"
                   f" WHERE c.relname IN ({names}) AND c.relnamespace = current_schema()::regnamespace")
        got = {name: int(n or 0) for name, n in self.db.query(sql)}
        return {t: got.get(t, 0) for t in COUNTED}

    def counts_meaning(self, exact: bool = False) -> str:
        """What :meth:`counts` numbers are, in a few words (``--status`` prints it)."""
        if exact:
            return "rows counted"
        if self.dialect == "sqlite":
            return "rows inserted (highest rowid; the center deletes none)"
        return "rows, PostgreSQL's estimate (pages now x rows per page at the last ANALYZE)"

    def reject_counts(self) -> dict[str, int]:
        """Rejected messages by reason."""
        return {r: int(n) for r, n in self.db.query(
            "SELECT reason, COUNT(*) FROM rejects GROUP BY reason ORDER BY reason"
        )}

    def rejects(self, limit: int = 100) -> list[tuple[float, str, str, str, bytes]]:
        """The newest rejected messages (received, topic, reason, detail, payload), newest last."""
        rows = self.db.query(
            "SELECT received, topic, reason, detail, payload FROM rejects ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [(r[0], r[1], r[2], r[3], bytes(r[4])) for r in reversed(rows)]

    def count_observations(self, station: int | None = None) -> int:
        """How many readings are stored (all stations, or one)."""
        if station is None:
            return int(self.db.query("SELECT COUNT(*) FROM observations")[0][0])
        return int(self.db.query("SELECT COUNT(*) FROM observations WHERE station = ?", (station,))[0][0])


def as_rows(values: Mapping[str, Sequence[tuple[int, float | None, str]]], station: int,
            received: float) -> list[ObsRow]:
    """Build :class:`ObsRow` s from ``{element: [(time, value, quality), ...]}`` (tests, imports)."""
    return [ObsRow(station, e, t, v, q, received) for e, vals in values.items() for t, v, q in vals]
