"""Hourly rollups of the observations, for the station page's long spans.

A month of 5-minute readings is 8,640 rows per element; a chart of it is 820 pixels
wide. ``obs_hourly`` holds, per station, element and hour, what a chart and a
completeness count need of that hour: how many rows and values, the lowest, highest and
summed value, the first and last value with their times, and the first missing value
(a break in the line). A 30-day page then reads 720 rows, not 17,280.

An hour is named by its END, as hydrologists name hourly totals: ``hour`` holds the
readings of ``(hour - 3600, hour]`` (a rain value is the rain of the interval ending at its
time). Each touched hour is recomputed from its rows (about 12, one index range), not
patched, so a revision, a correction or a late reading all leave it exact.

The rollup is kept up by :func:`catch_up`, not by the receiver: recomputing the hours of
every batch in the writer's transaction cost the receiver a fifth of its rate on SQLite
and half on PostgreSQL (bench/center.py). ``catch_up`` finds what changed since it last
ran from two marks: the highest row id of ``observations`` it has seen (SQLite's rowid;
PostgreSQL's ``seq`` identity column, added here) and the highest ``revisions`` id (every
change of a stored value or quality leaves one). The dashboard runs it every few seconds,
so an old hour that changed is behind by at most that; a page reads the newest two hours
from the readings themselves. Nothing deletes observations; a tool that does must
:func:`refresh` the hours it touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .db import Database

HOUR = 3600
CHUNK = 500  # hours per statement: 1,500 parameters

TABLE = """CREATE TABLE obs_hourly (
    station BIGINT NOT NULL, element TEXT NOT NULL, hour BIGINT NOT NULL,
    stored BIGINT NOT NULL, n BIGINT NOT NULL, lo {real}, hi {real}, total {real},
    t0 BIGINT, v0 {real}, t1 BIGINT, v1 {real}, gap BIGINT,
    PRIMARY KEY (station, element, hour))"""
"""``stored``: rows in the hour; ``n``: of them with a value; ``lo``/``hi``/``total``: of
the values; ``t0``/``v0`` and ``t1``/``v1``: the first and the last reading with a value;
``gap``: the time of the first reading without one (None: none missing)."""

MARKS = "CREATE TABLE obs_hourly_marks (name TEXT PRIMARY KEY, last BIGINT NOT NULL)"
"""How far :func:`catch_up` has read: ``observations`` (row id) and ``revisions`` (id)."""

CAP = "1e300"
"""Each value is summed as at most this large: a sum of doubles near the largest overflows
(PostgreSQL raises, SQLite stores inf), and one such reading would stop every catch-up."""

COLUMNS = "station, element, hour, stored, n, lo, hi, total, t0, v0, t1, v1, gap"

# the hours' aggregates from their rows (``k``: the hours), then the first and last values
# by their keys; an hour that has rows is replaced whole
_AGGREGATE = (
    "c AS (SELECT k.station AS station, k.element AS element, k.hour AS hour,"
    " COUNT(o.time) AS stored, COUNT(o.value) AS n, MIN(o.value) AS lo, MAX(o.value) AS hi,"
    f" SUM(CASE WHEN o.value > {CAP} THEN {CAP} WHEN o.value < -{CAP} THEN -{CAP} ELSE o.value END) AS total,"
    " MIN(CASE WHEN o.value IS NOT NULL THEN o.time END) AS t0,"
    " MAX(CASE WHEN o.value IS NOT NULL THEN o.time END) AS t1,"
    " MIN(CASE WHEN o.value IS NULL THEN o.time END) AS gap"
    " FROM k JOIN observations o ON o.station = k.station AND o.element = k.element"
    f" AND o.time > k.hour - {HOUR} AND o.time <= k.hour GROUP BY k.station, k.element, k.hour)"
    f" INSERT INTO obs_hourly ({COLUMNS})"
    " SELECT c.station, c.element, c.hour, c.stored, c.n, c.lo, c.hi, c.total, c.t0, f.value,"
    " c.t1, l.value, c.gap FROM c"
    " LEFT JOIN observations f ON f.station = c.station AND f.element = c.element AND f.time = c.t0"
    " LEFT JOIN observations l ON l.station = c.station AND l.element = c.element AND l.time = c.t1"
    " WHERE true ON CONFLICT (station, element, hour) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS.split(", ")[3:])
)


def hour_of(t: int) -> int:
    """The hour (its end) that holds a reading at ``t``."""
    return -(-t // HOUR) * HOUR


def hours_of(rows: Iterable[Sequence[Any]]) -> set[tuple[int, str, int]]:
    """The (station, element, hour) of each (station, element, time, ...) row."""
    return {(r[0], r[1], hour_of(r[2])) for r in rows}


def refresh(db: Database, hours: Iterable[tuple[int, str, int]]) -> None:
    """Recompute these hours from their rows (inside the caller's transaction)."""
    keys = sorted(hours)
    for i in range(0, len(keys), CHUNK):
        chunk = keys[i:i + CHUNK]
        values = ", ".join(["(CAST(? AS BIGINT), ?, CAST(? AS BIGINT))"] * len(chunk))
        db.execute(f"WITH k (station, element, hour) AS (VALUES {values}), {_AGGREGATE}",
                   [v for key in chunk for v in key])


def row_id(db: Database) -> str:
    """The column that numbers ``observations`` rows in insertion order."""
    return "rowid" if db.dialect == "sqlite" else "seq"


def setup(db: Database) -> None:
    """The migration's data step: PostgreSQL's row numbers, every hour stored so far, and
    the marks from which :func:`catch_up` goes on."""
    if db.dialect != "sqlite":  # SQLite numbers its rows already (rowid)
        db.execute("ALTER TABLE observations ADD COLUMN seq BIGINT GENERATED BY DEFAULT AS IDENTITY")
        db.execute("CREATE INDEX observations_seq ON observations USING brin (seq)")
    rebuild(db)


def rebuild(db: Database) -> None:
    """Every hour from the readings, and the marks set to what is stored now (in the
    caller's transaction: no writer comes between the marks and the fill)."""
    _marks_now(db)
    fill(db)


def _marks_now(db: Database) -> None:
    last_row = db.query(f"SELECT COALESCE(MAX({row_id(db)}), 0) FROM observations")[0][0]
    last_rev = db.query("SELECT COALESCE(MAX(id), 0) FROM revisions")[0][0]
    db.executemany("INSERT INTO obs_hourly_marks (name, last) VALUES (?, ?) ON CONFLICT (name)"
                   " DO UPDATE SET last = excluded.last",
                   [("observations", int(last_row)), ("revisions", int(last_rev))])


def catch_up(db: Database, most: int = 100_000) -> int:
    """Recompute the hours whose readings were stored or revised since the last call (at
    most ``most`` rows and revisions a call); returns how many it read (0: up to date).
    Safe to run from several processes: one at a time gets the marks."""
    rid = row_id(db)
    with db.transaction():
        if db.dialect != "sqlite":
            # every writer that holds row numbers commits before this reads on (PostgreSQL
            # hands out numbers before commit, so a smaller one could still appear later);
            # SQLite's BEGIN IMMEDIATE holds its only write lock already
            db.execute("LOCK TABLE observations IN SHARE MODE")
        marks = dict(db.query("SELECT name, last FROM obs_hourly_marks"))
        rows = db.query(f"SELECT {rid}, station, element, time FROM observations WHERE {rid} > ?"
                        f" ORDER BY {rid} LIMIT {int(most)}", (marks["observations"],))
        revs = db.query("SELECT id, station, element, time FROM revisions WHERE id > ?"
                        f" ORDER BY id LIMIT {int(most)}", (marks["revisions"],))
        if not rows and not revs:
            return 0
        refresh(db, hours_of([r[1:] for r in rows]) | hours_of([r[1:] for r in revs]))
        db.executemany("UPDATE obs_hourly_marks SET last = ? WHERE name = ?",
                       [(rows[-1][0] if rows else marks["observations"], "observations"),
                        (revs[-1][0] if revs else marks["revisions"], "revisions")])
    return len(rows) + len(revs)


def fill(db: Database) -> None:
    """Build every hour of every station and element (the migration that adds the table,
    on a database with readings): one statement per station and element, each grouping
    one station's element (a year: 105,120 rows) rather than the whole table at once."""
    pairs = db.query(
        "WITH RECURSIVE s (station) AS (SELECT MIN(station) FROM observations UNION ALL"
        " SELECT (SELECT MIN(station) FROM observations WHERE station > s.station) FROM s"
        " WHERE s.station IS NOT NULL),"
        " e (station, element) AS (SELECT s.station, (SELECT MIN(element) FROM observations"
        " WHERE station = s.station) FROM s WHERE s.station IS NOT NULL UNION ALL"
        " SELECT e.station, (SELECT MIN(element) FROM observations WHERE station = e.station"
        " AND element > e.element) FROM e WHERE e.element IS NOT NULL)"
        " SELECT station, element FROM e WHERE element IS NOT NULL")
    hour = f"(o.time + {HOUR - 1}) / {HOUR} * {HOUR}"
    for station, element in pairs:
        db.execute(
            f"WITH k (station, element, hour) AS (SELECT DISTINCT station, element, {hour}"
            " FROM observations o WHERE o.station = ? AND o.element = ?), " + _AGGREGATE,
            (station, element))
