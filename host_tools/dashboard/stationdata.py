"""The station page's reads: each one statement, an index range scan, answering in ONE row.

Python's sqlite3 gives up and takes back the GIL for every row it steps: with twenty
requests in flight each take-back can wait for a switch interval, so a page that read its
288-8,640 readings row by row spent most of its time waiting. Here SQLite packs a whole
series into one JSON text (``json_group_array``; PostgreSQL's ``json_agg``, which psycopg
hands back as lists), and for spans of more than four readings a pixel it also thins it: per
pixel column the first, lowest, highest and last reading (what
:func:`~host_tools.dashboard.charts.thin` keeps), so a 30-day page reads ~3,300 values,
not 17,000. Rain comes summed into the chart's bins. No read grows with the history
before the window (the primary keys (station, element, time) and (station, time, seq)).

Spans of more than :data:`ROLLUP_SPAN` (7 d, 30 d) read whole hours from the hourly rollup
(:mod:`host_tools.center.rollup`: 720 rows for 30 d instead of 8,640 readings an element)
and only the part hours at the window's start and its newest :data:`RAW_HOURS` hours
from the readings (the rollup may be a few seconds behind the newest readings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from host_tools.center.model import CenterAlarm, Obs, StationMeta
from host_tools.center.rain import bin_anchor
from host_tools.center.rollup import HOUR
from host_tools.center.store import Store

from .charts import COLUMNS, SMALL_COLUMNS, Bars, Line, Point, bar_width, data_runs, data_text
from .database import completeness, latest_many, station_elements
from .timefmt import station_zone

# Recorded every record interval, so their completeness is received / (span / interval);
# battery and temperatures come with the hourly status and are not counted against it.
INTERVAL_ELEMENTS = ("water_level", "rain", "discharge")

_RANGE = "station = ? AND element = ? AND time >= ? AND time <= ?"
ROLLUP_SPAN = 2 * 86400  # longer windows read whole hours from the hourly rollup
RAW_HOURS = 2            # ... but the newest hours from the readings


def _agg(store: Store, *cols: str) -> str:  # for packing inside a statement (packed: around it)
    if store.dialect == "sqlite":
        return f"json_group_array(json_array({', '.join(cols)}))"
    return f"json_agg(json_build_array({', '.join(cols)}))"


def _rows(value: Any) -> list[list[Any]]:
    if value is None:
        return []
    out: list[list[Any]] = orjson.loads(value) if isinstance(value, str) else value
    return out


def raw_points(store: Store, station: int, element: str, start: int, end: int) -> list[Point]:
    """Every reading of ``start <= time <= end``, oldest first, as (time, value)."""
    rows = store.db.query(
        f"SELECT {_agg(store, 'time', 'value')} FROM observations WHERE {_RANGE}",
        (station, element, start, end))
    return sorted((int(t), v) for t, v in _rows(rows[0][0]))


def level_line(store: Store, station: int, element: str, start: int, end: int,
               columns: int, interval_s: int) -> Line:
    """The series as the chart draws it: every reading while the span holds no more than
    four per pixel column (7 d: 2,016 in 820 columns; the chart keeps them all), else each
    column's first, lowest, highest and last (thinned in SQL; a column with a missing value
    breaks the line there)."""
    if (end - start) // max(1, interval_s) <= 4 * columns:
        return Line.of(raw_points(store, station, element, start, end))
    one = f"FROM observations WHERE {_RANGE} AND value IS NOT NULL ORDER BY time"
    rows = store.db.query(
        "WITH c AS (SELECT (time - CAST(? AS BIGINT)) * CAST(? AS BIGINT) / CAST(? AS BIGINT) AS col,"
        " MIN(time) AS t0,"
        " MAX(time) AS t1, MIN(value) AS lo, MAX(value) AS hi, COUNT(value) AS n,"
        " MIN(CASE WHEN value IS NULL THEN time END) AS gap"
        f" FROM observations WHERE {_RANGE} GROUP BY col)"
        f" SELECT (SELECT {_agg(store, 'c.t0', 'f.value', 'c.lo', 'c.hi', 'c.t1', 'l.value', 'c.n', 'c.gap')}"
        " FROM c JOIN observations f ON f.station = ? AND f.element = ? AND f.time = c.t0"
        " JOIN observations l ON l.station = ? AND l.element = ? AND l.time = c.t1),"
        f" (SELECT value {one} LIMIT 1), (SELECT value {one} DESC LIMIT 1)",
        (start, columns, max(1, end - start), station, element, start, end,
         station, element, station, element,
         station, element, start, end, station, element, start, end))
    cols, first, last = rows[0]
    points: list[Point] = []
    n, lo, hi = 0, None, None
    for t0, v0, clo, chi, t1, v1, cn, gap in sorted(_rows(cols)):
        n += int(cn)
        if clo is not None:
            lo = clo if lo is None else min(lo, clo)
            hi = chi if hi is None else max(hi, chi)
        if gap is not None:  # where the column's values are is unknown: its ends and a break
            if v0 is not None:
                points.append((int(t0), v0))
            if not points or points[-1][1] is not None:
                points.append((int(gap), None))
            if v1 is not None and t1 > gap:
                points.append((int(t1), v1))
            continue
        mid = (int(t0) + int(t1)) // 2
        inner = [(mid, clo), (mid, chi)] if v0 <= v1 else [(mid, chi), (mid, clo)]
        keep = [(int(t0), v0), *inner, (int(t1), v1)]
        points.extend(p for i, p in enumerate(keep) if i == 0 or p != keep[i - 1])
    return Line(points, n, lo, hi, first, last)


def rain_bars(store: Store, station: int, start: int, end: int, interval_s: int, anchor: int) -> Bars:
    """Rain summed in SQL into the chart's bins (see :func:`~host_tools.dashboard.charts.bar_width`),
    aligned on ``anchor`` (a rain-day start at or before ``start``, as ``hydrolink plot``)."""
    width = bar_width(start, end, interval_s)
    rows = store.db.query(
        f"SELECT {_agg(store, 'b', 's', 'n', 'k')} FROM (SELECT CAST(? AS BIGINT) + (time - 1 - CAST(? AS BIGINT))"
        " / CAST(? AS BIGINT) * CAST(? AS BIGINT) AS b, SUM(value) AS s, COUNT(value) AS n,"
        " SUM(CASE WHEN time > ? THEN 1 ELSE 0 END) AS k"
        f" FROM observations WHERE {_RANGE} AND value IS NOT NULL GROUP BY b) x",
        (anchor, anchor, width, width, start, station, "rain", start, end))
    bins = sorted((int(b), float(s), int(n), int(k)) for b, s, n, k in _rows(rows[0][0]))
    return Bars(width, [(b, s) for b, s, _, _ in bins], sum(b[2] for b in bins), sum(b[3] for b in bins))


def rain_anchor(meta: StationMeta, start: int) -> int:
    """The start of the rain day holding ``start``, in the station's zone."""
    return bin_anchor(start, station_zone(meta.timezone).key, meta.rain_day_start_hour)


def uses_rollup(meta: StationMeta, start: int, end: int) -> bool:
    """Whether the page over ``(start, end]`` reads whole hours from the hourly rollup: longer
    than :data:`ROLLUP_SPAN`, in a zone whose rain days start on a whole hour (its bars are
    whole hours)."""
    return end - start > ROLLUP_SPAN and rain_anchor(meta, start) % HOUR == 0


def _whole_hours(start: int, end: int) -> tuple[int, int]:
    """Where the first whole hour of the window starts and the last rolled-up one ends."""
    first = -(-start // HOUR) * HOUR
    return first, max(first, end // HOUR * HOUR - (RAW_HOURS - 1) * HOUR)


def _edges(store: Store, station: int, element: str, start: int, end: int) -> tuple[str, list[Any]]:
    """Two subselects (and their parameters): the readings of ``[start, first]`` and of
    ``(last, end]``, around the whole hours ``(first, last]`` that the rollup has."""
    first, last = _whole_hours(start, end)
    raw = f"(SELECT {_agg(store, 'time', 'value')} FROM observations WHERE {_RANGE})"
    return f"{raw}, {raw.replace('time >= ?', 'time > ?')}", [station, element, start, first,
                                                               station, element, last, end]


def _points(rows: Any) -> list[Point]:
    return sorted((int(t), v) for t, v in _rows(rows))


def _xy(t: str, v: str) -> str:
    """SQL for a point in the chart's data coordinates (see charts.data_text)."""
    return f"CAST({t} - w.s AS TEXT) || ',' || CAST({v} AS TEXT)"


# An hour as the chart draws it (charts.thin keeps the same of a pixel column): its first,
# lowest, highest and last value, the extremes in the order the hour went (only they where
# an hour is under two pixels wide: 30 d); an hour with a missing value: its first and last
# value and a break where the gap is; an hour without values: a break.
_MID = "(t0 + t1) / 2"
_HOUR_POINTS = (
    "CASE WHEN n = 0 THEN '|'"
    f" WHEN gap < t0 THEN '| ' || {_xy('t0', 'v0')} || ' ' || {_xy('t1', 'v1')}"
    f" WHEN gap > t1 THEN {_xy('t0', 'v0')} || ' ' || {_xy('t1', 'v1')} || ' |'"
    f" WHEN gap IS NOT NULL THEN {_xy('t0', 'v0')} || ' | ' || {_xy('t1', 'v1')}"
    f" ELSE CASE WHEN w.wide = 1 THEN {_xy('t0', 'v0')} || ' ' ELSE '' END"
    f" || CASE WHEN v0 <= v1 THEN {_xy(_MID, 'lo')} || ' ' || {_xy(_MID, 'hi')}"
    f" ELSE {_xy(_MID, 'hi')} || ' ' || {_xy(_MID, 'lo')} END"
    f" || CASE WHEN w.wide = 1 THEN ' ' || {_xy('t1', 'v1')} ELSE '' END END")


def _joined(store: Store, expr: str, order: str) -> str:
    """An aggregate joining ``expr`` with spaces in ``order`` (SQLite: in its subquery's
    order, which an aggregate over a subquery with ORDER BY keeps)."""
    if store.dialect == "sqlite":
        return f"group_concat({expr}, ' ')"
    return f"string_agg({expr}, ' ' ORDER BY {order})"


def hourly_level(store: Store, station: int, element: str, start: int, end: int,
                 narrow: bool) -> tuple[Line, int]:
    """The level over a long window, and its values after ``start`` (completeness), in one
    statement: the whole hours from the rollup, already as the chart's data coordinates
    (formatted by SQLite, which does not hold Python's lock: 1,440 points of a 30-day page
    cost Python nothing), and the readings of the part hours around them."""
    first, last = _whole_hours(start, end)
    edges, params = _edges(store, station, element, start, end)
    rows = store.db.query(
        "WITH w (s, wide) AS (SELECT CAST(? AS BIGINT), CAST(? AS INTEGER)),"
        f" a AS (SELECT SUM(n) AS n, MIN(lo) AS lo, MAX(hi) AS hi, {_joined(store, 'f', 'hour')} AS f,"
        " MIN(CASE WHEN n > 0 THEN hour END) AS h0, MAX(CASE WHEN n > 0 THEN hour END) AS h1"
        f" FROM (SELECT hour, n, lo, hi, {_HOUR_POINTS} AS f FROM obs_hourly CROSS JOIN w"
        " WHERE station = ? AND element = ? AND hour > ? AND hour <= ? ORDER BY hour) x)"
        " SELECT a.n, a.lo, a.hi, (SELECT v0 FROM obs_hourly WHERE station = ? AND element = ? AND hour = a.h0),"
        " (SELECT v1 FROM obs_hourly WHERE station = ? AND element = ? AND hour = a.h1), a.f,"
        f" {edges} FROM a",
        (start, 0 if narrow else 1, station, element, first, last, station, element, station, element,
         *params))
    n, lo, hi, v0, v1, hours, head_rows, tail_rows = rows[0]
    head, tail = _points(head_rows), _points(tail_rows)
    before = [v for _, v in head if v is not None]
    after = [v for _, v in tail if v is not None]
    ends = [*before, *after]
    lows, highs = [*ends, *([lo] if lo is not None else [])], [*ends, *([hi] if hi is not None else [])]
    values = [*before[:1], *([v0] if v0 is not None else []), *after[:1]]
    lasts = [*before[-1:], *([v1] if v1 is not None else []), *after[-1:]]
    text = " ".join((data_text(head, start), hours or "", data_text(tail, start)))
    total = len(ends) + int(n or 0)
    at_start = bool(head) and head[0][0] == start and head[0][1] is not None
    line = Line([], total, min(lows, default=None), max(highs, default=None),
                values[0] if values else None, lasts[-1] if lasts else None, data_runs(text))
    return line, total - int(at_start)


def hourly_count(store: Store, station: int, element: str, start: int, end: int) -> int:
    """The values of ``(start, end]``: the rollup's whole hours and the part hours' readings."""
    first, last = _whole_hours(start, end)
    rows = store.db.query(
        "SELECT (SELECT SUM(n) FROM obs_hourly WHERE station = ? AND element = ? AND hour > ? AND hour <= ?),"
        f" (SELECT COUNT(value) FROM observations WHERE {_RANGE.replace('time >= ?', 'time > ?')}),"
        f" (SELECT COUNT(value) FROM observations WHERE {_RANGE.replace('time >= ?', 'time > ?')})",
        (station, element, first, last, station, element, start, first, station, element, last, end))
    return sum(int(v or 0) for v in rows[0])


def hourly_rain(store: Store, station: int, start: int, end: int, interval_s: int, anchor: int) -> Bars:
    """Rain in the chart's bins (whole hours for these spans): the hours' totals summed into
    them in SQL, the part hours' readings added here."""
    width = bar_width(start, end, interval_s)
    first, last = _whole_hours(start, end)
    edges, params = _edges(store, station, "rain", start, end)
    rows = store.db.query(
        f"SELECT (SELECT {_agg(store, 'b', 's', 'n')} FROM (SELECT CAST(? AS BIGINT) + (hour - 1 - CAST(? AS BIGINT))"
        " / CAST(? AS BIGINT) * CAST(? AS BIGINT) AS b, SUM(total) AS s, SUM(n) AS n FROM obs_hourly"
        " WHERE station = ? AND element = 'rain' AND hour > ? AND hour <= ? GROUP BY b) x), " + edges,
        (anchor, anchor, width, width, station, first, last, *params))
    binned, head, tail = rows[0]
    sums = {int(b): float(v or 0.0) for b, v, _ in _rows(binned)}
    n = counted = sum(int(k) for _, _, k in _rows(binned))
    for t, v in [*_points(head), *_points(tail)]:
        if v is not None:
            b = anchor + (t - 1 - anchor) // width * width
            sums[b] = sums.get(b, 0.0) + v
            n += 1
            counted += t > start
    return Bars(width, sorted(sums.items()), n, counted)


@dataclass(frozen=True)
class Small:
    """A small chart's series: its points thinned to the chart's columns, how many values."""

    points: list[Point]
    n: int


def _envelope(columns: list[tuple[int, int, int, Any, Any]]) -> Small:
    """Each column's lowest and highest value at its first and last time, the extreme
    nearer the previous point first (the column's own order is not read)."""
    points: list[Point] = []
    for t0, t1, _, lo, hi in columns:
        if lo is None:
            continue
        if lo == hi:
            points.append((t0, lo))
            continue
        prev = points[-1][1] if points else lo
        first, second = (hi, lo) if abs(hi - prev) < abs(lo - prev) else (lo, hi)
        points += [(t0, first), (t1, second)]
    return Small(points, sum(c[2] for c in columns))


def status_series(store: Store, station: int, start: int, end: int) -> tuple[Small, Small]:
    """Battery voltage and clock offset of the status frames in range, per column of the
    small charts their lowest and highest (summarised in SQL: a month of hourly frames is
    720 rows, the chart 49 columns)."""
    rows = store.db.query(
        f"SELECT {_agg(store, 't0', 't1', 'nb', 'blo', 'bhi', 'nc', 'clo', 'chi')} FROM (SELECT"
        " (time - CAST(? AS BIGINT)) * CAST(? AS BIGINT) / CAST(? AS BIGINT) AS col, MIN(time) AS t0,"
        " MAX(time) AS t1, COUNT(battery_v) AS nb, MIN(battery_v) AS blo, MAX(battery_v) AS bhi,"
        " COUNT(clock_offset_s) AS nc, MIN(clock_offset_s) AS clo, MAX(clock_offset_s) AS chi"
        " FROM status WHERE station = ? AND time >= ? AND time <= ? GROUP BY col) x",
        (start, SMALL_COLUMNS, max(1, end - start), station, start, end))
    cols = sorted((int(r[0]), int(r[1]), *r[2:]) for r in _rows(rows[0][0]))
    return (_envelope([(t0, t1, nb, blo, bhi) for t0, t1, nb, blo, bhi, *_ in cols]),
            _envelope([(t0, t1, nc, clo, chi) for t0, t1, _, _, _, nc, clo, chi in cols]))


def newest(store: Store, table: str, station: int, start: int, end: int, cols: str,
           order: str, limit: int = 100) -> Sequence[tuple[Any, ...]]:
    """The newest ``limit`` rows of ``events`` or ``station_alarms`` in range, oldest first."""
    rows = store.db.query(
        f"SELECT {cols} FROM {table} WHERE station = ? AND time >= ? AND time <= ?"
        f" ORDER BY {order} LIMIT {int(limit)}", (station, start, end))
    return rows[::-1]


@dataclass(frozen=True)
class PageData:
    """Everything a station page shows for the window ``(start, end]``."""

    level: Line
    rain: Bars
    center_alarms: list[CenterAlarm]
    completeness: list[tuple[str, int, int]]  # (element, received, expected)
    battery: Small
    clock: Small
    latest: dict[str, Obs]
    events: Sequence[tuple[Any, ...]]          # station, time, kind, key, received, payload
    station_alarms: Sequence[tuple[Any, ...]]  # time, kind, state, value, threshold, unit, seq


def read_page(store: Store, meta: StationMeta, start: int, end: int) -> PageData:
    """A station page's reads (what bench/dashboard.py times as the page's bare SQL)."""
    station, interval = meta.station, meta.record_interval_s
    anchor = rain_anchor(meta, start)
    long = uses_rollup(meta, start, end)
    elements = station_elements(store, meta)
    counted: dict[str, int] = {}
    if long:
        level, counted["water_level"] = hourly_level(store, station, "water_level", start, end,
                                                     narrow=(end - start) / HOUR > COLUMNS / 2)
        rain = hourly_rain(store, station, start, end, interval, anchor)
    else:
        level = level_line(store, station, "water_level", start, end, COLUMNS, interval)
        rain = rain_bars(store, station, start, end, interval, anchor)
        counted["water_level"] = level.counted_after(start)
    counted["rain"] = rain.counted
    comp = []
    for e in [e for e in elements if e in INTERVAL_ELEMENTS]:
        expected = max(0, (end - start) // max(1, interval))
        if e in counted:
            got = counted[e]
        elif long:
            got = hourly_count(store, station, e, start, end)
        else:
            got, expected = completeness(store, station, e, start, end, interval)
        comp.append((e, got, expected))
    battery, clock = status_series(store, station, start, end)
    if not battery.n:  # a station that reports its battery as a reading
        volts = [p for p in raw_points(store, station, "battery_voltage", start, end) if p[1] is not None]
        battery = Small(volts, len(volts))
    # the newest reading of each element by index seeks (store.latest groups the whole history)
    latest = {e: obs for (_, e), (obs, _) in latest_many(store, [(station, e) for e in elements]).items()}
    return PageData(
        level, rain, store.center_alarms(station, start), comp, battery, clock, latest,
        newest(store, "events", station, start, end, "station, time, kind, key, received, payload",
               "time DESC, key DESC"),
        newest(store, "station_alarms", station, start, end,
               "time, kind, state, value, threshold, unit, seq", "time DESC, seq DESC, kind DESC"))
