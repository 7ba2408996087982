"""``hydrolink plot``: hydrograph with hyetograph, stages, alarms and gaps, to a PNG.

One panel per station: rain bars hang from the top (an inverted hyetograph) above
the water level, on the same local-time axis; stage levels (action, warning,
guarantee, flood limit) are labelled horizontal lines, stretches without data are
grey, alarms are marked with triangles (red raised, green cleared). Sized and
lettered for a printed morning report (A4 landscape, 14-18 pt text). Headless:
matplotlib's Agg backend.

Labels are English. A station name in a script the available fonts cannot draw
(Chinese without a CJK font installed) keeps only the characters they can, so the
plot never shows empty boxes; with ``fonts-noto-cjk`` or ``fonts-wqy-microhei``
installed the full name is drawn.
"""

from __future__ import annotations

import argparse
import math
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from host_tools.center.rain import bin_anchor, bin_width
from host_tools.center.series import Gap, Row, grid
from host_tools.center.views import (
    ViewError,
    open_db,
    parse_time,
    run_view,
    station_ids,
    station_meta,
    zone,
)

LEVEL_COLOR = "#0a3d91"
RAIN_COLOR = "#2f8fd8"
GAP_COLOR = "#c8c8c8"
STAGE_STYLE = {
    "action": ("#d4a017", "action"),
    "warning": ("#e06c00", "warning"),
    "guarantee": ("#c00000", "guarantee"),
    "flood_limit": ("#7a1fa2", "flood limit"),
}
MAX_BARS = 400
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
             "Source Han Sans SC", "Droid Sans Fallback")


@dataclass
class Panel:
    """What one station's panel shows (plain data; no store)."""

    station: int
    name: str
    interval_s: int
    level: Sequence[Row]
    rain: Sequence[Row]
    stages: dict[str, float] = field(default_factory=dict)
    raised: list[float] = field(default_factory=list)
    cleared: list[float] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    anchor: int = 0
    """A rain-day start (UNIX s): rain bins of an hour or more align to it (local hours, rain days)."""


def rain_bins(rain: Sequence[Row], interval: int, start: int, end: int,
              anchor: int = 0) -> tuple[int, list[tuple[int, float]]]:
    """Rain summed into at most :data:`MAX_BARS` bins of a round length, aligned on ``anchor``.

    Returns:
        (bin length in seconds, [(bin start, mm)]) for bins with rain.
    """
    width = bin_width(end - start, interval, MAX_BARS)
    sums: dict[int, float] = {}
    for r in rain:
        v = r[1]
        if v:
            # a value ending at t fell in (t - interval, t]
            b = anchor + (int(r[0]) - 1 - anchor) // width * width
            sums[b] = sums.get(b, 0.0) + v
    return width, sorted(sums.items())


def _per(width: int) -> str:
    return f"{width // 60} min" if width < 3600 else (f"{width // 3600} h" if width < 86400 else "day")


@cache
def _fonts() -> tuple[list[str], frozenset[int]]:
    """The font family list to use and the code points it can draw."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    names = [f.name for f in font_manager.fontManager.ttflist]
    family = [n for n in CJK_FONTS if n in names][:1] + ["DejaVu Sans"]
    chars: set[int] = set()
    for fam in family:
        try:
            path = font_manager.findfont(font_manager.FontProperties(family=fam), fallback_to_default=False)
            chars |= set(FT2Font(path).get_charmap())
        except (ValueError, RuntimeError, OSError):
            continue
    return family, frozenset(chars)


def drawable(text: str) -> str:
    """``text`` without the characters no available font can draw (spaces tidied)."""
    _, chars = _fonts()
    kept = "".join(c for c in text if ord(c) in chars or c.isspace())
    return " ".join(kept.split())


def _rc() -> Any:
    """Print-size fonts and the family list of :func:`_fonts` (for drawing AND for saving:
    the generic family is looked up when the text is rendered)."""
    family, _ = _fonts()
    return {"font.size": 15, "axes.titlesize": 17, "axes.labelsize": 15, "xtick.labelsize": 13,
            "ytick.labelsize": 13, "legend.fontsize": 12, "font.family": "sans-serif", "font.sans-serif": family}


def figure(panels: Sequence[Panel], start: int, end: int, tz: zoneinfo.ZoneInfo) -> tuple[Any, list[Any]]:
    """Draw the panels; returns (figure, [(rain axes, level axes) per panel])."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_rc()):
        n = len(panels)
        height = 0.9 + 6.0 * n
        fig = Figure(figsize=(11.7, height), dpi=120)
        outer = fig.add_gridspec(n, 1, hspace=0.32, left=0.09, right=0.79, top=1 - 0.45 / height,
                                 bottom=0.85 / height)
        axes: list[Any] = []
        x0, x1 = start / 86400, end / 86400  # matplotlib dates: days since 1970-01-01
        for i, p in enumerate(panels):
            inner = outer[i, 0].subgridspec(3, 1, hspace=0.08)
            ax_r = fig.add_subplot(inner[0, 0])
            ax_l = fig.add_subplot(inner[1:3, 0], sharex=ax_r)
            _draw(p, ax_r, ax_l, start, end)
            ax_l.set_xlim(x0, x1)
            loc = mdates.AutoDateLocator(tz=tz, minticks=4, maxticks=9)  # type: ignore[no-untyped-call]
            ax_l.xaxis.set_major_locator(loc)
            ax_l.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc, tz=tz))  # type: ignore[no-untyped-call]
            ax_r.tick_params(labelbottom=False)
            axes.append((ax_r, ax_l))
        off = _offset(start, tz)
        axes[-1][1].set_xlabel(f"local time ({tz.key}, UTC{off})")
        FigureCanvasAgg(fig)  # savefig draws; the Axes transforms map data to PNG pixels after it
    return fig, axes


def _offset(t: int, tz: zoneinfo.ZoneInfo) -> str:
    import datetime as dt

    s = dt.datetime.fromtimestamp(t, tz).strftime("%z")
    return f"{s[:3]}:{s[3:]}"


def _draw(p: Panel, ax_r: Any, ax_l: Any, start: int, end: int) -> None:
    width, bins = rain_bins(p.rain, p.interval_s, start, end, p.anchor)
    if bins:
        ax_r.bar([b / 86400 for b, _ in bins], [v for _, v in bins], width=width / 86400, align="edge",
                 color=RAIN_COLOR, linewidth=0)
    top = max((v for _, v in bins), default=0.0)
    ax_r.set_ylim(max(1.0, top * 1.15), 0)  # inverted: bars hang from the top
    ax_r.set_ylabel(f"rain\n(mm / {_per(width)})")
    total = sum(r[1] for r in p.rain if r[1])
    ax_r.set_title(drawable(f"{p.station} {p.name}") + f"    rain total {total:.1f} mm", loc="left")
    ax_r.grid(axis="y", alpha=0.3)

    xs, ys = line(p.level, p.interval_s)
    if len(xs):
        ax_l.plot(xs, ys, color=LEVEL_COLOR, linewidth=2.4, label="water level", solid_joinstyle="round")
    good = ys[~np.isnan(ys)]
    lo, hi = (float(good.min()), float(good.max())) if len(good) else (0.0, 1.0)
    span = max(hi - lo, 0.5)
    shown = {k: v for k, v in p.stages.items() if lo - span <= v <= hi + span}
    for key, level in p.stages.items():
        color, label = STAGE_STYLE.get(key, ("#555555", key))
        if key in shown:
            ax_l.axhline(level, color=color, linewidth=1.8, linestyle="--", label=f"{label} {level:.2f} m")
        else:
            ax_l.plot([], [], color=color, linestyle="--", label=f"{label} {level:.2f} m\n(off scale)")
    ylo = min([lo, *shown.values()]) - 0.08 * span
    yhi = max([hi, *shown.values()]) + 0.08 * span
    ax_l.set_ylim(ylo, yhi)
    if p.gaps:
        _gaps(p, ax_r, ax_l, start, end, (ylo, yhi), max(1.0, top * 1.15))
    if p.raised:
        ax_l.plot([t / 86400 for t in p.raised], [yhi - 0.04 * (yhi - ylo)] * len(p.raised), "v",
                  color="#d00000", markersize=12, label="alarm raised", linestyle="none")
    if p.cleared:
        ax_l.plot([t / 86400 for t in p.cleared], [yhi - 0.04 * (yhi - ylo)] * len(p.cleared), "^",
                  color="#108010", markersize=12, label="alarm cleared", linestyle="none")
    ax_l.set_ylabel("water level (m)")
    ax_l.grid(alpha=0.3)
    ax_l.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False, borderaxespad=0)


def line(rows: Sequence[Row], interval: int) -> tuple[Any, Any]:
    """Matplotlib date numbers and values of a level series, NaN where it must break.

    The line breaks at a reading without value and across any step longer than the
    record interval, so a gap is never bridged by a straight segment.
    """
    t = np.fromiter((r[0] for r in rows), dtype=np.float64, count=len(rows))
    v = np.fromiter((math.nan if r[1] is None else r[1] for r in rows), dtype=np.float64, count=len(rows))
    if len(t) > 1:
        jumps = np.nonzero(np.diff(t) > interval)[0] + 1
        t = np.insert(t, jumps, t[jumps - 1] + interval)
        v = np.insert(v, jumps, math.nan)
    return t / 86400, v


def gap_runs(rows: Sequence[Row], start: int, end: int, interval: int) -> list[Gap]:
    """Runs of expected slots without a value (the same as ``series.gaps``, vectorised)."""
    slots = np.asarray(grid(start, end, interval), dtype=np.int64)
    have = np.fromiter((r[0] for r in rows if r[1] is not None), dtype=np.int64)
    missing = ~np.isin(slots, have)
    if not missing.any():
        return []
    edges = np.diff(np.concatenate(([0], missing.astype(np.int8), [0])))
    starts, stops = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    return [Gap(int(slots[a]), int(slots[b - 1]), int(b - a)) for a, b in zip(starts, stops, strict=True)]


def _gaps(p: Panel, ax_r: Any, ax_l: Any, start: int, end: int, ys: tuple[float, float],
          rain_top: float) -> None:
    """Long gaps shaded over both axes; short ones (under 1/200 of the plot) as marks along
    the bottom, at least a pixel wide, so scattered single readings do not grey a year."""
    short = (end - start) / 200
    least = (end - start) / 1200
    spans = []
    for g in p.gaps:  # a missing reading at t leaves (t - interval, t] without data; clip to the plot
        a, b = max(g.start - p.interval_s, start), min(g.end, end)
        if b > a:
            spans.append((a / 86400, (b - a) / 86400))
    long = [s for s in spans if s[1] * 86400 >= short]
    marks = [(a, max(w, least / 86400)) for a, w in spans if w * 86400 < short]
    ylo, yhi = ys
    if long:
        ax_l.broken_barh(long, (ylo, yhi - ylo), facecolors=GAP_COLOR, alpha=0.6, zorder=0)
        ax_r.broken_barh(long, (0, rain_top), facecolors=GAP_COLOR, alpha=0.6, zorder=0)
        ax_l.plot([], [], color=GAP_COLOR, linewidth=8, label="no data")
    if marks:
        ax_l.broken_barh(marks, (ylo, 0.05 * (yhi - ylo)), facecolors="#606060", zorder=3)
        n = sum(round(w * 86400 / p.interval_s) for _, w in spans if w * 86400 < short)
        ax_l.plot([], [], color="#606060", linewidth=8,
                  label=f"short gaps\n({n} reading{'' if n == 1 else 's'})")


def load_panel(store: Any, station: int, start: int, end: int) -> Panel:
    """One station's panel data from the store."""
    meta = station_meta(store, station)
    iv = meta.record_interval_s
    level = store.observations(station, "water_level", start, end)
    rain = store.observations(station, "rain", start, end)
    g = gap_runs(level if any(r[1] is not None for r in level) else rain, start, end, iv)
    raised: list[float] = []
    cleared: list[float] = []
    for a in store.center_alarms(station, start, end):
        if start <= a.raised <= end:
            raised.append(a.raised)
        if a.cleared is not None and start <= a.cleared <= end:
            cleared.append(a.cleared)
    for sa in store.alarms_received(station, start, end):
        (cleared if sa.state in ("cleared", "normal", "inactive") else raised).append(float(sa.time))
    tz, hour = meta.timezone or "UTC", meta.rain_day_start_hour
    anchor = bin_anchor(start, tz, hour)
    return Panel(station, meta.name, iv, level, rain, dict(meta.stages), raised, cleared, g, anchor)


def save(fig: Any, out: str) -> None:
    """Write the figure as PNG; :class:`ViewError` if the file cannot be written."""
    import matplotlib

    try:
        with matplotlib.rc_context(_rc()):
            fig.savefig(out, format="png", dpi=fig.dpi)
    except OSError as e:
        raise ViewError(f"cannot write {out}: {e.strerror or e}") from None


def _plot(a: argparse.Namespace) -> int:
    ids = station_ids(a.stations) if a.stations else []
    if a.station is not None:
        ids = [a.station, *[i for i in ids if i != a.station]]
    if not ids:
        raise ViewError("give --station ID or --stations A,B,C")
    if not a.out.lower().endswith(".png"):
        raise ViewError(f"--out {a.out}: plot writes PNG; name the file .png")
    store = open_db(a.db)
    try:
        first = station_meta(store, ids[0])
        tz = zone(a.tz or first.timezone)
        start, end = parse_time(a.start, tz), parse_time(a.end, tz, end=True)
        if end <= start:
            raise ViewError(f"--to {a.end} is not after --from {a.start}")
        panels = [load_panel(store, s, start, end) for s in ids]
    finally:
        store.close()
    fig, _ = figure(panels, start, end, tz)
    save(fig, a.out)
    return 0


def cmd_plot(argv: list[str]) -> int:
    """Entry point of ``hydrolink plot``."""
    p = argparse.ArgumentParser(
        prog="hydrolink plot",
        description="Draw each station's water level (hydrograph) under its rain (inverted bars) on "
        "one local-time axis, with stage lines, alarms and data gaps, to a PNG for a printed report.",
    )
    p.add_argument("--db", required=True, metavar="URL", help="center store: sqlite:///PATH or postgresql://...")
    p.add_argument("--station", type=int, metavar="ID", help="the station (first panel)")
    p.add_argument("--stations", metavar="LIST", help="several stations, comma-separated, one panel each")
    p.add_argument("--from", dest="start", required=True, metavar="TIME", help="ISO 8601 date or date-time")
    p.add_argument("--to", dest="end", required=True, metavar="TIME", help="ISO 8601; a date means its end")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--tz", metavar="ZONE", help="time zone of the axis (default: the first station's)")
    return run_view(_plot, p.parse_args(argv))
