"""Rain and level statistics the way hydrologists use them (pure functions).

Rain readings are interval totals: a value at time ``t`` is the rain that fell in
``(t - interval, t]`` (protocol/elements.csv). So a window ``(s, e]`` holds the
readings stamped ``s + interval`` .. ``e``, and the rain day that starts at 08:00
holds the readings from 08:05 to 08:00 the next morning (5-minute data). Each total
says whether every expected reading in its span had a usable value; a total over
incomplete data is flagged ``complete=False``, never silently presented as whole.
Missing values count as zero in the sum.
"""

from __future__ import annotations

import bisect
import datetime as dt
import zoneinfo
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from host_tools.center.series import Row, expected_count, usable

WINDOWS_S = (3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600)
"""The sliding windows of a rain report: 1 h, 3 h, 6 h, 12 h, 24 h."""

RAIN_DAY_HOURS = (6, 8, 9)
"""Rain-day start hours in use: 08:00 is SL 21's (China); 06:00 and 09:00 elsewhere."""


class WindowMax(NamedTuple):
    """The wettest window of one length: rain in ``(start, end]``."""

    window_s: int
    total: float
    start: int
    end: int
    complete: bool


class Storm(NamedTuple):
    """One storm: from the start of its first wet interval to its last wet reading."""

    start: int
    end: int
    total: float
    peak: float
    peak_time: int
    complete: bool


class DayTotal(NamedTuple):
    """One rain day's total, labelled with the local date the day starts on."""

    day: dt.date
    start: int
    end: int
    total: float
    expected: int
    received: int

    @property
    def complete(self) -> bool:
        """True if every expected reading of the day had a usable value."""
        return self.received >= self.expected


class LevelDay(NamedTuple):
    """One local day of water level: extremes with their times, mean of usable readings."""

    day: dt.date
    max: float | None
    max_time: int | None
    min: float | None
    min_time: int | None
    mean: float | None
    readings: int


def _wet(rows: Sequence[Row]) -> list[tuple[int, float]]:
    return sorted((int(r[0]), float(r[1])) for r in rows if usable(r) and r[1] is not None)


def window_maxima(rows: Sequence[Row], interval: int,
                  windows: Sequence[int] = WINDOWS_S) -> dict[int, WindowMax | None]:
    """The maximum sliding total for each window length.

    Every window ``(e - W, e]`` that ends on a usable reading is a candidate; the
    largest total wins, the earliest on a tie. ``complete`` says whether that window
    had all ``W / interval`` readings.

    Args:
        rows: rain readings (mm per interval).
        interval: the station's record interval in seconds.
        windows: window lengths in seconds.

    Returns:
        Window length to its maximum, or None when there is no usable reading.
    """
    pts = _wet(rows)
    out: dict[int, WindowMax | None] = {}
    for w in windows:
        best: WindowMax | None = None
        lo = 0
        total = 0.0
        for hi, (t, v) in enumerate(pts):
            total += v
            while pts[lo][0] <= t - w:
                total -= pts[lo][1]
                lo += 1
            n = hi - lo + 1
            rounded = round(total, 6)
            if best is None or rounded > best.total:
                need = max(1, w // interval)
                best = WindowMax(w, rounded, t - w, t, n >= need)
        out[w] = best
    return out


def storms(rows: Sequence[Row], interval: int, dry_s: int = 6 * 3600,
           min_total: float = 0.0) -> list[Storm]:
    """Split rain into storms: a storm ends when no rain falls for ``dry_s`` seconds.

    A reading with no value inside a storm (a gap of the record) makes it incomplete;
    so does one inside the dry spell that ends it, since rain might hide there.

    Args:
        rows: rain readings.
        interval: the record interval in seconds.
        dry_s: the dry spell that separates two storms (default 6 h).
        min_total: drop storms with a smaller total (mm).
    """
    order = sorted(rows, key=lambda r: int(r[0]))
    out: list[Storm] = []
    cur: list[tuple[int, float]] = []
    holes: list[int] = []

    def close() -> None:
        if not cur:
            return
        total = round(sum(v for _, v in cur), 6)
        peak_t, peak = max(cur, key=lambda p: (p[1], -p[0]))
        start, end = cur[0][0] - interval, cur[-1][0]
        complete = not any(start < h <= end + dry_s for h in holes)
        if total >= min_total:
            out.append(Storm(start, end, total, peak, peak_t, complete))

    for r in order:
        t = int(r[0])
        if not usable(r):
            holes.append(t)
            continue
        v = float(r[1])  # type: ignore[arg-type]  # usable() checked it is not None
        if v <= 0:
            continue
        if cur and t - cur[-1][0] > dry_s:
            close()
            cur = []
        cur.append((t, v))
    close()
    return out


def rain_day_bounds(day: dt.date, tz: str, start_hour: int = 8) -> tuple[int, int]:
    """UNIX seconds ``(start, end)`` of the rain day labelled ``day`` in zone ``tz``.

    The day runs from ``start_hour`` local on ``day`` to ``start_hour`` the next day
    (daylight saving moves both ends with the clock).
    """
    if not 0 <= start_hour <= 23:
        raise ValueError(f"rain day start hour must be 0..23, not {start_hour}")
    zone = zoneinfo.ZoneInfo(tz)
    a = dt.datetime.combine(day, dt.time(start_hour), zone)
    b = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(start_hour), zone)
    return int(a.timestamp()), int(b.timestamp())


BIN_STEPS = (300, 600, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)


def bin_width(span_s: int, interval_s: int, most: int) -> int:
    """Seconds per rain bar of a chart over ``span_s``: the shortest round length (at least
    the record interval) that makes at most ``most`` bars; a day at the longest."""
    span = max(span_s, interval_s)
    return next((b for b in BIN_STEPS if b >= interval_s and span / b <= most), 86400)


def bin_anchor(t: int, tz: str, start_hour: int = 8) -> int:
    """The start of the rain day holding ``t``: rain bars of an hour or more align on it."""
    return rain_day_bounds(rain_day_of(t, tz, start_hour), tz, start_hour)[0]


def rain_day_of(t: int, tz: str, start_hour: int = 8) -> dt.date:
    """The label of the rain day holding the reading stamped ``t`` (interval end)."""
    local = dt.datetime.fromtimestamp(t - 1, zoneinfo.ZoneInfo(tz))
    day = local.date()
    return day if local.hour >= start_hour else day - dt.timedelta(days=1)


def daily_totals(rows: Sequence[Row], interval: int, tz: str, first: dt.date, last: dt.date,
                 start_hour: int = 8) -> list[DayTotal]:
    """Rain totals per rain day from ``first`` to ``last`` (labels, inclusive).

    Args:
        rows: rain readings.
        interval: record interval in seconds (sets how many readings a day expects).
        tz: IANA zone of the station (the day boundary is local time).
        first: label of the first rain day.
        last: label of the last.
        start_hour: local hour the rain day starts (8 by SL 21; 6 and 9 elsewhere).
    """
    days: list[DayTotal] = []
    d = first
    bounds: list[tuple[dt.date, int, int]] = []
    while d <= last:
        a, b = rain_day_bounds(d, tz, start_hour)
        bounds.append((d, a, b))
        d += dt.timedelta(days=1)
    sums = [0.0] * len(bounds)
    got = [0] * len(bounds)
    if bounds:
        lo, hi = bounds[0][1], bounds[-1][2]
        starts = [a for _, a, _ in bounds]
        for r in rows:
            t = int(r[0])
            if not (lo < t <= hi) or not usable(r):
                continue
            i = bisect.bisect_left(starts, t) - 1
            sums[i] += float(r[1])  # type: ignore[arg-type]
            got[i] += 1
    for i, (d, a, b) in enumerate(bounds):
        days.append(DayTotal(d, a, b, round(sums[i], 6), expected_count(a + 1, b, interval), got[i]))
    return days


def total(rows: Sequence[Row], interval: int, start: int, end: int) -> tuple[float, bool]:
    """Rain in ``(start, end]`` and whether every expected reading was there."""
    inside = [r for r in rows if start < int(r[0]) <= end and usable(r)]
    s = round(sum(float(r[1]) for r in inside if r[1] is not None), 6)
    return s, len(inside) >= expected_count(start + 1, end, interval)


def level_days(rows: Sequence[Row], tz: str, first: dt.date, last: dt.date) -> list[LevelDay]:
    """Daily maximum, minimum (with their times) and mean of water level per local day."""
    zone = zoneinfo.ZoneInfo(tz)
    per: dict[dt.date, list[tuple[int, float]]] = {}
    for r in rows:
        if usable(r):
            t = int(r[0])
            per.setdefault(dt.datetime.fromtimestamp(t, zone).date(), []).append((t, float(r[1])))  # type: ignore[arg-type]
    out: list[LevelDay] = []
    d = first
    while d <= last:
        pts = sorted(per.get(d, []))
        if pts:
            hi = max(pts, key=lambda p: (p[1], -p[0]))
            lo = min(pts, key=lambda p: (p[1], p[0]))
            mean = round(sum(v for _, v in pts) / len(pts), 6)
            out.append(LevelDay(d, hi[1], hi[0], lo[1], lo[0], mean, len(pts)))
        else:
            out.append(LevelDay(d, None, None, None, None, None, 0))
        d += dt.timedelta(days=1)
    return out


def time_above(rows: Sequence[Row], stages: Mapping[str, float], interval: int) -> dict[str, int]:
    """Seconds the level stood at or above each stage (one interval per usable reading)."""
    vals = [float(r[1]) for r in rows if usable(r)]  # type: ignore[arg-type]
    return {name: interval * sum(1 for v in vals if v >= level) for name, level in stages.items()}
