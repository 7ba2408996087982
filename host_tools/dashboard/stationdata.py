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

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from host_tools.center.model import CenterAlarm, Obs, StationMeta
from host_tools.center.rain import bin_anchor
from host_tools.center.rollup import HOUR
from host_tools.center.store import Store

from .charts import COLUMNS, Bars, Line, Point, bar_width
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
    out: list[list[Any]] = json.loads(value) if isinstance(value, str) else value
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


@dataclass(frozen=True)
class Hourly:
    """An element over a long window: the readings of its part hours, the rollup's hours."""

    head: list[Point]  # readings of [start, the first whole hour's start]
    hours: list[list[Any]]  # hour, n, lo, hi, total, t0, v0, t1, v1, gap (see rollup.TABLE)
    tail: list[Point]  # readings after the last rolled-up hour

    def values(self, after: int) -> int:
        """Values after ``after`` (completeness does not count one at the window's start)."""
        return (sum(1 for t, v in self.head if v is not None and t > after) + sum(int(h[1]) for h in self.hours)
                + sum(1 for _, v in self.tail if v is not None))


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


def hourly(store: Store, station: int, element: str, start: int, end: int) -> Hourly:
    """One statement: the rollup's whole hours inside the window, the readings around them."""
    first, last = _whole_hours(start, end)
    edges, params = _edges(store, station, element, start, end)
    rows = store.db.query(
        f"SELECT (SELECT {_agg(store, 'hour', 'n', 'lo', 'hi', 'total', 't0', 'v0', 't1', 'v1', 'gap')}"
        f" FROM obs_hourly WHERE station = ? AND element = ? AND hour > ? AND hour <= ?), {edges}",
        (station, element, first, last, *params))
    hours, head, tail = rows[0]
    return Hourly(_points(head), sorted(_rows(hours)), _points(tail))


def hourly_line(h: Hourly, narrow: bool = False) -> Line:
    """The level as drawn from hours: each hour's first, lowest, highest and last value (as
    :func:`level_line` thins a pixel column), only its lowest and highest where an hour is
    ``narrow`` (under two pixels: 30 d), an hour with a missing value broken there."""
    head = [v for _, v in h.head if v is not None]
    tail = [v for _, v in h.tail if v is not None]
    valued = [r for r in h.hours if r[1]]
    lows, highs = [*head, *tail, *(r[2] for r in valued)], [*head, *tail, *(r[3] for r in valued)]
    # the series' first and last values, in time order: the head's, the hours', the tail's
    firsts = [*head[:1], *(r[6] for r in valued[:1]), *tail[:1]]
    lasts = [*head[-1:], *(r[8] for r in valued[-1:]), *tail[-1:]]
    points: list[Point] = list(h.head)
    for _, cn, clo, chi, _, t0, v0, t1, v1, gap in h.hours:
        if not cn:  # no value in the hour: a break
            keep: list[Point] = [(int(gap), None)]
        elif gap is not None:  # where the hour's values are around its gap is unknown: ends and a break
            keep = sorted([(int(gap), None), (int(t0), v0), (int(t1), v1)], key=lambda p: p[0])
        else:
            mid = (t0 + t1) // 2
            inner: list[Point] = [(mid, clo), (mid, chi)] if v0 <= v1 else [(mid, chi), (mid, clo)]
            keep = inner if narrow else [(t0, v0), *inner, (t1, v1)]
        for p in keep:  # no repeated point, no break twice or first
            if p[1] is None and (not points or points[-1][1] is None) or (points and p == points[-1]):
                continue
            points.append(p)
    points.extend(h.tail)
    return Line(points, len(head) + sum(int(r[1]) for r in valued) + len(tail), min(lows, default=None),
                max(highs, default=None), firsts[0] if firsts else None, lasts[-1] if lasts else None)


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


def status_points(store: Store, station: int, start: int, end: int,
                  ) -> list[tuple[int, float | None, float | None]]:
    """(time, battery V, clock offset s) of each status frame in range, by time and seq."""
    rows = store.db.query(
        f"SELECT {_agg(store, 'time', 'seq', 'battery_v', 'clock_offset_s')} FROM status"
        " WHERE station = ? AND time >= ? AND time <= ?", (station, start, end))
    return [(int(t), b, c) for t, _, b, c in sorted(_rows(rows[0][0]), key=lambda r: (r[0], r[1]))]


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
    battery: list[Point]
    clock: list[Point]
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
        h = hourly(store, station, "water_level", start, end)
        level = hourly_line(h, narrow=(end - start) / HOUR > COLUMNS / 2)
        counted["water_level"] = h.values(start)
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
            got = hourly(store, station, e, start, end).values(start)
        else:
            got, expected = completeness(store, station, e, start, end, interval)
        comp.append((e, got, expected))
    status = status_points(store, station, start, end)
    battery: list[Point] = [(ts, b) for ts, b, _ in status]
    if not any(v is not None for _, v in battery):
        battery = raw_points(store, station, "battery_voltage", start, end)
    # the newest reading of each element by index seeks (store.latest groups the whole history)
    latest = {e: obs for (_, e), (obs, _) in latest_many(store, [(station, e) for e in elements]).items()}
    return PageData(
        level, rain, store.center_alarms(station, start), comp, battery,
        [(ts, c) for ts, _, c in status], latest,
        newest(store, "events", station, start, end, "station, time, kind, key, received, payload",
               "time DESC, key DESC"),
        newest(store, "station_alarms", station, start, end,
               "time, kind, state, value, threshold, unit, seq", "time DESC, seq DESC, kind DESC"))
