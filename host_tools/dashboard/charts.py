"""Hydrograph and hyetograph as SVG, drawn on the server: no JavaScript, no chart library.

The same content as ``hydrolink plot``: water level as a line, rain as bars hanging from
the top (inverted) on the same time axis, each registry stage as a dashed line with its
name, gaps (missing values) left as breaks in the line, the time axis in the station's
local time zone with the zone named. Long spans are thinned: the line keeps each pixel
column's first, lowest, highest and last points (so peaks survive), rain is summed into
at most :data:`MAX_BARS` bins.

The drawn series carries its data in attributes (``data-series``, ``data-n``,
``data-min``, ``data-max``, ``data-first``, ``data-last``) so a test can compare the
chart with the store.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

from host_tools.center.rain import bin_width

from .timefmt import zone

W, H = 960, 440
LEFT, RIGHT, TOP, BOTTOM = 70, 70, 20, 50
RAIN_H = 110           # height of the hyetograph band at the top
MAX_BARS = 240
STAGE_COLORS = {"action": "#d4a017", "warning": "#e67e22", "guarantee": "#c0392b",
                "flood_limit": "#8e44ad"}
_TICK_STEPS = [3600 * h for h in (1, 2, 3, 6, 12, 24, 48, 120, 168)]

Point = tuple[int, float | None]
COLUMNS = W - LEFT - RIGHT  # the plot's pixel columns
SMALL_W, SMALL_LEFT, SMALL_RIGHT = 460, 56, 10  # the battery and clock charts
SMALL_COLUMNS = (SMALL_W - SMALL_LEFT - SMALL_RIGHT) // 8  # ... keep the extremes of every 8 px


@dataclass(frozen=True)
class Line:
    """The level as drawn: ``points`` already thinned to the plot's columns (gaps as None),
    or ``runs`` as :func:`data_runs` makes them (the station page builds the hours' part in
    SQL), and what the series carries: how many values, lowest, highest, first and last."""

    points: Sequence[Point]
    n: int
    lo: float | None
    hi: float | None
    first: float | None
    last: float | None
    runs: Sequence[str] | None = None  # the line already as data coordinates (see data_runs)

    @classmethod
    def of(cls, points: Sequence[Point]) -> Line:
        """From every reading (thinned when drawn)."""
        values = [v for _, v in points if v is not None]
        return cls(points, len(values), min(values, default=None), max(values, default=None),
                   values[0] if values else None, values[-1] if values else None)

    def counted_after(self, start: int) -> int:
        """Values in ``(start, end]``: completeness does not count a reading at ``start``."""
        at_start = bool(self.points) and self.points[0][0] == start and self.points[0][1] is not None
        return self.n - int(at_start)


@dataclass(frozen=True)
class Bars:
    """Rain summed into bins of ``width`` seconds; ``n`` values, ``counted`` of them after
    the window's start."""

    width: int
    bins: Sequence[tuple[int, float]]
    n: int
    counted: int


def _nice(lo: float, hi: float, n: int = 6) -> list[float]:
    """Round tick values covering ``lo .. hi`` (the first at or below lo, the last at or above hi)."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step + 1e-9) * step
    count = math.ceil((hi - first) / step - 1e-9)
    return [round(first + i * step, 10) for i in range(count + 1)]


def time_ticks(start: int, end: int, tz: ZoneInfo, most: int = 8) -> list[tuple[int, str]]:
    """Tick times and labels aligned to local hours/days; labels show the date at midnight."""
    step = next((s for s in _TICK_STEPS if (end - start) / s <= most), _TICK_STEPS[-1])
    local = datetime.fromtimestamp(start, tz).replace(minute=0, second=0, microsecond=0)
    if step >= 86400:
        local = local.replace(hour=0)
    # the candidates change once an hour: computed then, kept for every chart until the next
    ticks = _candidates(int(local.timestamp()), end - end % 3600 + 3600, step, tz)
    return [tick for tick in ticks if start <= tick[0] <= end]


@functools.lru_cache(maxsize=256)
def _candidates(first: int, until: int, step: int, tz: ZoneInfo) -> tuple[tuple[int, str], ...]:
    local = datetime.fromtimestamp(first, tz)
    ticks: list[tuple[int, str]] = []
    t = local
    while t.timestamp() <= until and len(ticks) < 200:
        ts = int(t.timestamp())
        hour_ok = (t.hour % (step // 3600) == 0) if step < 86400 else True
        day_ok = step < 86400 or ((t - local).days % (step // 86400) == 0)
        if hour_ok and day_ok:
            label = t.strftime("%m-%d") if t.hour == 0 or step >= 86400 else t.strftime("%H:%M")
            ticks.append((ts, label))
        t = (t + timedelta(hours=1)) if step < 86400 else (t + timedelta(days=1))
        t = datetime.fromtimestamp(int(t.timestamp()), tz)  # across DST changes
    return tuple(ticks)


def thin(points: Sequence[Point], start: int, end: int, columns: int) -> list[Point]:
    """Per pixel column the first, lowest, highest and last point; a gap (None) is kept."""
    if len(points) <= 4 * columns:
        return list(points)
    out: list[Point] = []
    span = max(1, end - start)
    bucket: list[tuple[int, float]] = []
    col = -1

    def flush() -> None:
        if bucket:
            lo = min(bucket, key=lambda p: p[1])
            hi = max(bucket, key=lambda p: p[1])
            keep = sorted({bucket[0], lo, hi, bucket[-1]})
            out.extend(keep)
            bucket.clear()

    for t, v in points:
        c = (t - start) * columns // span
        if v is None:
            flush()
            if not out or out[-1][1] is not None:
                out.append((t, None))
            col = c
            continue
        if c != col:
            flush()
            col = c
        bucket.append((t, v))
    flush()
    return out


def data_text(points: Sequence[Point], start: int) -> str:
    """Points as the line's data coordinates, ``seconds-after-start,value`` separated by
    spaces, a missing value as ``|`` (the chart's transform maps them to pixels)."""
    return " ".join("|" if v is None else f"{t - start},{v}" for t, v in points)


def data_runs(text: str) -> list[str]:
    """The unbroken runs of :func:`data_text` (one polyline each)."""
    return [r for r in (piece.strip() for piece in text.split("|")) if r]


def bar_width(start: int, end: int, interval_s: int) -> int:
    """Seconds per rain bar: a round length (as ``hydrolink plot``), at most MAX_BARS bars;
    whole hours from 7 days on, so the hourly rollup's totals fill them."""
    return bin_width(end - start, interval_s, MAX_BARS)


def rain_bins(points: Sequence[Point], start: int, end: int, interval_s: int) -> tuple[int, list[tuple[int, float]]]:
    """Rain summed into bins of :func:`bar_width`, aligned on ``start``."""
    width = bar_width(start, end, interval_s)
    sums: dict[int, float] = {}
    for t, v in points:
        if v is None:
            continue
        b = start + (t - 1 - start) // width * width  # a value is the rain of the interval ending at t
        sums[b] = sums.get(b, 0.0) + v
    return width, sorted(sums.items())


def bars_of(points: Sequence[Point], start: int, end: int, interval_s: int) -> Bars:
    width, bins = rain_bins(points, start, end, interval_s)
    n = sum(1 for _, v in points if v is not None)
    return Bars(width, bins, n, n - sum(1 for ts, v in points if ts == start and v is not None))


def hydrograph_svg(level: Line | Sequence[Point], rain: Bars | Sequence[Point], start: int, end: int,
                   tz: ZoneInfo, stages: Mapping[str, float], interval_s: int,
                   t: Callable[..., str], alarms: Sequence[tuple[float, str]] = ()) -> str:
    """The station's chart as an SVG element (text); ``alarms``: (raised, kind) marked as
    red triangles on the time axis. ``level`` and ``rain``: every reading, or as
    :mod:`~host_tools.dashboard.stationdata` read them (thinned and binned in SQL)."""
    line = level if isinstance(level, Line) else Line.of(level)
    bars = rain if isinstance(rain, Bars) else bars_of(rain, start, end, interval_s)
    x0, x1 = LEFT, W - RIGHT
    y_bottom = H - BOTTOM
    has_rain = any(v for _, v in bars.bins)
    y_top = TOP + (RAIN_H + 10 if has_rain else 0)
    span = max(1, end - start)

    def x(ts: float) -> float:
        return x0 + (ts - start) * (x1 - x0) / span

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" class="chart" '
             f'role="img" aria-label="{escape(t("hydrograph"))}" font-size="15" '
             f'font-family="sans-serif">',
             f'<rect x="{x0}" y="{TOP}" width="{x1 - x0}" height="{y_bottom - TOP}" '
             'fill="#fff" stroke="#888"/>']
    for ts, label in time_ticks(start, end, tz):
        parts.append(f'<line x1="{x(ts):.1f}" x2="{x(ts):.1f}" y1="{TOP}" y2="{y_bottom}" '
                     'stroke="#e5e5e5"/>'
                     f'<text x="{x(ts):.1f}" y="{y_bottom + 20}" text-anchor="middle">{label}</text>')
    parts.append(f'<text x="{(x0 + x1) / 2}" y="{H - 6}" text-anchor="middle" '
                 f'class="tz">{escape(t("time"))} ({escape(zone(tz, end))})</text>')

    if line.n and line.lo is not None and line.hi is not None:
        lo, hi = min([line.lo, *stages.values()]), max([line.hi, *stages.values()])
        pad = max(0.05, (hi - lo) * 0.08)
        ticks = _nice(lo - pad, hi + pad)
        vlo, vhi = ticks[0], ticks[-1]
        if vhi - vlo < 1e-9:
            vhi = vlo + 1.0

        def y(v: float) -> float:
            return y_bottom - (v - vlo) * (y_bottom - y_top) / (vhi - vlo)

        for tv in ticks:
            parts.append(f'<text x="{x0 - 6}" y="{y(tv) + 5:.1f}" text-anchor="end">{tv:g}</text>')
        parts.append(f'<text transform="translate(18,{(y_top + y_bottom) / 2}) rotate(-90)" '
                     f'text-anchor="middle">{escape(t("level_m"))}</text>')
        for name, sv in sorted(stages.items(), key=lambda kv: kv[1]):
            color = STAGE_COLORS.get(name, "#555")
            parts.append(f'<line class="stage" data-stage="{escape(name)}" x1="{x0}" x2="{x1}" '
                         f'y1="{y(sv):.1f}" y2="{y(sv):.1f}" stroke="{color}" stroke-width="2" '
                         f'stroke-dasharray="8 5"/><text x="{x1 - 4}" y="{y(sv) - 4:.1f}" '
                         f'text-anchor="end" fill="{color}">{escape(t("stage_" + name))} {sv:g}</text>')
        # the line in data coordinates (seconds after start, value), mapped by the group's
        # transform: the long spans' points come formatted from SQL, none formatted here
        runs = line.runs if line.runs is not None else data_runs(
            data_text(thin(line.points, start, end, x1 - x0), start))
        ay = -(y_bottom - y_top) / (vhi - vlo)
        parts.append(f'<g class="series" data-series="water_level" data-n="{line.n}" '
                     f'data-min="{line.lo:.3f}" data-max="{line.hi:.3f}" '
                     f'data-first="{line.first or 0.0:.3f}" data-last="{line.last or 0.0:.3f}" '
                     f'data-ymin-px="{y(line.hi):.1f}" data-ymax-px="{y(line.lo):.1f}" '
                     f'transform="matrix({(x1 - x0) / span!r} 0 0 {ay!r} {x0} {y_bottom - vlo * ay!r})">')
        parts.extend(f'<polyline fill="none" stroke="#1f5fbf" stroke-width="2.5" '
                     f'vector-effect="non-scaling-stroke" points="{run}"/>' for run in runs)
        parts.append("</g>")
    else:
        parts.append(f'<text x="{(x0 + x1) / 2}" y="{(y_top + y_bottom) / 2}" '
                     f'text-anchor="middle" class="nodata">{escape(t("level"))}: '
                     f'{escape(t("no_data"))}</text>')

    if has_rain:
        width, bins = bars.width, bars.bins
        top = max(v for _, v in bins) or 1.0
        rticks = _nice(0, top, 3)
        rmax = rticks[-1] if rticks[-1] > 0 else 1.0
        total = sum(v for _, v in bins)
        parts.append(f'<g class="series" data-series="rain" data-n="{bars.n}" '
                     f'data-total="{total:.1f}" data-bin-s="{width}">')
        k, high = (x1 - x0) / span, RAIN_H / rmax
        bar = max(1.0, width * k - 1)
        for b, mm in bins:  # a bin that began before the window is drawn from its start
            xb = x0 + (b - start) * k
            left = xb if xb > x0 else x0
            parts.append(f'<rect x="{left:.1f}" y="{TOP}" width="{max(1.0, xb + bar - left):.1f}" '
                         f'height="{mm * high:.1f}" fill="#3a9ad9"><title>{mm:.1f} mm</title></rect>')
        parts.append("</g>")
        for r in rticks:
            parts.append(f'<text x="{x1 + 6}" y="{TOP + r * RAIN_H / rmax + 5:.1f}">{r:g}</text>')
        parts.append(f'<text transform="translate({W - 14},{TOP + RAIN_H / 2}) rotate(90)" '
                     f'text-anchor="middle">{escape(t("rain_mm"))}</text>')
    for raised, kind in alarms:
        if start <= raised <= end:
            ax = x(raised)
            parts.append(f'<path class="alarm-mark" data-kind="{escape(kind)}" fill="#c0392b" '
                         f'd="M{ax:.1f},{y_bottom - 12} l-6,12 h12 z"><title>{escape(t("kind_" + kind))} '
                         f'{datetime.fromtimestamp(raised, tz).strftime("%m-%d %H:%M")}</title></path>')
    parts.append("</svg>")
    return "".join(parts)


def small_line_svg(points: Sequence[Point], start: int, end: int, tz: ZoneInfo, label: str,
                   unit: str, series: str, n: int | None = None) -> str:
    """A small line chart (battery, clock offset) with its extremes labelled; ``n``: the
    values that ``points`` stand for, if they were thinned already."""
    w, h, left, right, top, bottom = SMALL_W, 160, SMALL_LEFT, SMALL_RIGHT, 24, 30
    vals = [v for _, v in points if v is not None]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" class="small" '
             f'font-size="13" font-family="sans-serif" role="img" aria-label="{escape(label)}">',
             f'<text x="{left}" y="16">{escape(label)} ({escape(unit)})</text>',
             f'<rect x="{left}" y="{top}" width="{w - left - right}" height="{h - top - bottom}" '
             'fill="#fff" stroke="#aaa"/>']
    span = max(1, end - start)
    if vals:
        lo, hi = min(vals), max(vals)
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5

        def x(ts: float) -> float:
            return left + (ts - start) * (w - left - right) / span

        def y(v: float) -> float:
            return h - bottom - (v - lo) * (h - top - bottom) / (hi - lo)

        ax, ay = (w - left - right) / span, -(h - top - bottom) / (hi - lo)
        bx, by = left - start * ax, h - bottom - lo * ay
        # (a month of hourly frames is 720 points on 394 pixels: the extremes of every 8 px)
        drawn = thin([p for p in points if p[1] is not None], start, end, SMALL_COLUMNS)
        pts = " ".join(f"{bx + ts * ax:.1f},{by + v * ay:.1f}" for ts, v in drawn if v is not None)
        parts.append(f'<polyline data-series="{escape(series)}" data-n="{len(vals) if n is None else n}" fill="none" '
                     f'stroke="#2d7d46" stroke-width="2" points="{pts}"/>'
                     f'<text x="{left - 4}" y="{y(hi) + 4:.1f}" text-anchor="end">{hi:g}</text>'
                     f'<text x="{left - 4}" y="{y(lo) + 4:.1f}" text-anchor="end">{lo:g}</text>')
        for ts, text in time_ticks(start, end, tz, most=4):
            parts.append(f'<text x="{x(ts):.1f}" y="{h - 10}" text-anchor="middle">{text}</text>')
    else:
        parts.append(f'<text x="{w / 2}" y="{h / 2}" text-anchor="middle">-</text>')
    parts.append("</svg>")
    return "".join(parts)
