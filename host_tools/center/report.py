"""``hydrolink report``: the table a dispatcher reads each morning, one row per station.

The day is each station's rain day (08:00 to 08:00 local by default, labelled with
the day it starts; the station's ``rain_day_start_hour``), so the report read at
08:30 covers the last 24 hours. Without ``--day`` it is the last complete rain day.

Per station: readings expected (from the station's record interval and its interval
elements, rain and water level: never from what arrived) and received (slots with a
value), completeness, gaps longer than one interval (count and the longest), the
center's gap states (requested, recovered, lost), when the station was last heard,
the lowest battery voltage, the clock offset of its last status frame, alarms raised
and cleared (the center's and the station's own), sensor faults (readings with
quality ``fault``), the day's rain (``*``: incomplete data) and its wettest hour;
under the table, each station's level maximum and minimum with their times, mean,
and time above each stage.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from host_tools.center.rain import rain_day_bounds, rain_day_of, time_above, window_maxima
from host_tools.center.series import expected_count, gaps, usable
from host_tools.center.views import ViewError, iso_utc, open_db, run_view, zone

INTERVAL_ELEMENTS = ("rain", "water_level")
"""The elements whose readings the station owes every record interval."""


@dataclass
class StationDay:
    """One station's row of the morning report."""

    station: int
    name: str
    start: int
    end: int
    timezone: str
    expected: int = 0
    received: int = 0
    gaps: int = 0
    longest_gap_s: int = 0
    gap_states: dict[str, int] = field(default_factory=dict)
    last_seen: int | None = None
    battery_min_v: float | None = None
    clock_offset_s: float | None = None
    alarms_raised: int = 0
    alarms_cleared: int = 0
    faults: int = 0
    rain_mm: float | None = None
    rain_complete: bool = False
    rain_1h_max_mm: float | None = None
    elements: dict[str, dict[str, int]] = field(default_factory=dict)
    level_max_m: float | None = None
    level_max_time: int | None = None
    level_min_m: float | None = None
    level_min_time: int | None = None
    level_mean_m: float | None = None
    above_s: dict[str, int] = field(default_factory=dict)

    @property
    def completeness(self) -> float | None:
        """Received over expected, in percent (None when nothing was expected)."""
        return 100.0 * self.received / self.expected if self.expected else None


def station_day(store: Any, meta: Any, day: dt.date) -> StationDay:
    """Compute one station's report row for the rain day labelled ``day``."""
    tz = meta.timezone or "UTC"
    start, end = rain_day_bounds(day, tz, meta.rain_day_start_hour)
    iv = meta.record_interval_s
    sid = meta.station
    row = StationDay(sid, meta.name, start, end, tz)
    have = set(store.elements(sid)) | set(meta.sensors)
    for e in INTERVAL_ELEMENTS:
        if e not in have:
            continue
        obs = store.observations(sid, e, start + 1, end)
        exp = expected_count(start + 1, end, iv)
        got = len({int(o[0]) for o in obs if o[1] is not None and int(o[0]) % iv == 0})
        row.expected += exp
        row.received += got
        row.elements[e] = {"expected": exp, "received": got}
        long = [g for g in gaps(obs, start + 1, end, iv) if g.slots > 1]
        row.gaps += len(long)
        row.longest_gap_s = max([row.longest_gap_s, *(g.slots * iv for g in long)])
        row.faults += sum(1 for o in obs if o[2] == "fault")
        if e == "water_level":
            _levels(row, obs, dict(meta.stages), iv)
        if e == "rain":
            row.rain_mm = round(sum(float(o[1]) for o in obs if usable(o)), 1)
            row.rain_complete = got >= exp and all(usable(o) for o in obs)
            m = window_maxima(obs, iv, (3600,))[3600]
            row.rain_1h_max_mm = None if m is None else round(m.total, 1)
    for e in have - set(INTERVAL_ELEMENTS):
        row.faults += sum(1 for o in store.observations(sid, e, start + 1, end) if o[2] == "fault")
    for g in store.gaps(sid, None, start + 1, end):
        row.gap_states[g.state] = row.gap_states.get(g.state, 0) + 1
    row.last_seen = store.last_seen(sid)
    volts = [float(o[1]) for o in store.observations(sid, "battery_voltage", start + 1, end) if o[1] is not None]
    status = store.status_rows(sid, start + 1, end)
    volts += [s.battery_v for s in status if s.battery_v is not None]
    row.battery_min_v = min(volts) if volts else None
    offsets = [s.clock_offset_s for s in status if s.clock_offset_s is not None]
    row.clock_offset_s = offsets[-1] if offsets else None
    for a in store.center_alarms(sid, start, end):
        row.alarms_raised += start < a.raised <= end
        row.alarms_cleared += a.cleared is not None and start < a.cleared <= end
    # a station repeats an ongoing alarm as "active" every interval: one episode is one raise
    # (an "active" with no alarm of its kind before counts too: its "raised" frame was lost)
    in_alarm = {sa.kind: sa.state != "cleared" for sa in store.alarms_received(sid, 0, start)}
    for sa in store.alarms_received(sid, start + 1, end):
        if sa.state == "cleared":
            row.alarms_cleared += 1
        elif sa.state == "raised" or not in_alarm.get(sa.kind):
            row.alarms_raised += 1
        in_alarm[sa.kind] = sa.state != "cleared"
    return row


def _levels(row: StationDay, obs: Sequence[Any], stages: dict[str, float], interval: int) -> None:
    pts = [(int(o[0]), float(o[1])) for o in obs if usable(o)]
    if not pts:
        return
    hi = max(pts, key=lambda p: (p[1], -p[0]))
    lo = min(pts, key=lambda p: (p[1], p[0]))
    row.level_max_m, row.level_max_time = hi[1], hi[0]
    row.level_min_m, row.level_min_time = lo[1], lo[0]
    row.level_mean_m = round(sum(v for _, v in pts) / len(pts), 3)
    row.above_s = time_above(obs, stages, interval)


# ---------------------------------------------------------------- layout


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def _fit(s: str, n: int) -> str:
    out = ""
    for c in s:
        if _width(out + c) > n:
            break
        out += c
    return out + " " * (n - _width(out))


def _when(t: int | None, tz: str) -> str:
    if t is None:
        return "never"
    return dt.datetime.fromtimestamp(t, zone(tz)).strftime("%m-%d %H:%M")


def _opt(v: float | None, fmt: str, unit: str = "") -> str:
    return "-" if v is None else format(v, fmt) + unit


COLUMNS = ("station", "name", "expected", "received", "complete_pct", "gaps", "longest_gap_min",
           "gap_states", "last_seen", "battery_min_v", "clock_offset_s", "alarms_raised",
           "alarms_cleared", "faults", "rain_mm", "rain_complete", "rain_1h_max_mm", "level_max_m",
           "level_max_time", "level_min_m", "level_min_time", "level_mean_m", "above_stages_s")


def text(rows: Sequence[StationDay], day: dt.date, made: int) -> str:
    """The report as a fixed-width table (108 columns) with a one-line key under it."""
    hours = {dt.datetime.fromtimestamp(r.start, zone(r.timezone)).strftime("%H:%M") for r in rows}
    span = "/".join(sorted(hours)) or "08:00"
    lines = [f"hydrolink morning report: rain day {day.isoformat()} ({span} to {span} local)"
             f"   made {iso_utc(made)}",
             ""]
    head = (f"{'station':>9} {'name':<16} {'expect':>6} {'recvd':>6} {'compl':>6} {'gaps':>4} "
            f"{'longest':>7} {'last seen':>11} {'batt min':>8} {'clock':>7} {'alarms':>6} "
            f"{'fault':>5} {'rain mm':>8} {'max 1h':>6}")
    lines += [head, "-" * len(head)]
    for r in rows:
        pct = r.completeness
        longest = f"{r.longest_gap_s // 60} min" if r.longest_gap_s else "-"
        rain = "-" if r.rain_mm is None else f"{r.rain_mm:.1f}" + ("" if r.rain_complete else "*")
        clock = "-" if r.clock_offset_s is None else f"{r.clock_offset_s:+.1f} s"
        lines.append(
            f"{r.station:>9} {_fit(r.name, 16)} {r.expected:>6} {r.received:>6} "
            f"{_opt(pct, '.1f', '%'):>6} {r.gaps:>4} {longest:>7} {_when(r.last_seen, r.timezone):>11} "
            f"{_opt(r.battery_min_v, '.2f', ' V'):>8} {clock:>7} "
            f"{f'{r.alarms_raised}/{r.alarms_cleared}':>6} {r.faults:>5} {rain:>8} "
            f"{_opt(r.rain_1h_max_mm, '.1f'):>6}")
    lines += ["", "expect/recvd: readings owed by the record interval (rain, level) and received;"
              " gaps: runs longer than one interval;",
              "alarms: raised/cleared; fault: readings with quality fault; *: rain total over incomplete data."]
    for r in rows:
        if r.level_max_m is None:
            continue
        above = ", ".join(f"{k.replace('_', ' ')} {v // 3600}:{v % 3600 // 60:02d}"
                          for k, v in r.above_s.items() if v)
        lines.append(f"level {r.station}: max {r.level_max_m:.2f} m at {_when(r.level_max_time, r.timezone)}, "
                     f"min {r.level_min_m:.2f} m at {_when(r.level_min_time, r.timezone)}, "
                     f"mean {r.level_mean_m:.2f} m")
        if above:
            lines.append(f"above {r.station} (h:mm): {above}")
    states = [(r.station, r.gap_states) for r in rows if r.gap_states]
    for sid, st in states:
        lines.append(f"gap recovery {sid}: " + ", ".join(f"{k} {v}" for k, v in sorted(st.items())))
    return "\n".join(lines) + "\n"


def _flat(r: StationDay) -> dict[str, Any]:
    return {
        "station": r.station, "name": r.name, "expected": r.expected, "received": r.received,
        "complete_pct": None if r.completeness is None else round(r.completeness, 2),
        "gaps": r.gaps, "longest_gap_min": r.longest_gap_s // 60,
        "gap_states": ";".join(f"{k}={v}" for k, v in sorted(r.gap_states.items())),
        "last_seen": None if r.last_seen is None else iso_utc(r.last_seen),
        "battery_min_v": r.battery_min_v, "clock_offset_s": r.clock_offset_s,
        "alarms_raised": r.alarms_raised, "alarms_cleared": r.alarms_cleared, "faults": r.faults,
        "rain_mm": r.rain_mm, "rain_complete": r.rain_complete, "rain_1h_max_mm": r.rain_1h_max_mm,
        "level_max_m": r.level_max_m,
        "level_max_time": None if r.level_max_time is None else iso_utc(r.level_max_time),
        "level_min_m": r.level_min_m,
        "level_min_time": None if r.level_min_time is None else iso_utc(r.level_min_time),
        "level_mean_m": r.level_mean_m,
        "above_stages_s": ";".join(f"{k}={v}" for k, v in r.above_s.items()),
    }


def to_csv(rows: Sequence[StationDay]) -> str:
    """The report as CSV, one row per station, header first."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\r\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if v is None else v for k, v in _flat(r).items()})
    return buf.getvalue()


def to_json(rows: Sequence[StationDay], day: dt.date, made: int) -> str:
    """The report as JSON: the day, when it was made, and one object per station."""
    stations = []
    for r in rows:
        d = _flat(r)
        d["gap_states"] = r.gap_states
        d["above_stages_s"] = r.above_s
        d["from"], d["to"] = iso_utc(r.start), iso_utc(r.end)
        d["elements"] = asdict(r)["elements"]
        stations.append(d)
    return json.dumps({"day": day.isoformat(), "made": iso_utc(made), "stations": stations},
                      ensure_ascii=False, indent=1) + "\n"


def _report(a: argparse.Namespace) -> int:
    store = open_db(a.db)
    try:
        metas = store.stations()
        if a.station:
            metas = [m for m in metas if m.station in set(a.station)]
        if not metas:
            raise ViewError("no stations in the store; sync the registry with 'hydrolink center --registry FILE'")
        now = int(time.time())
        if a.day:
            try:
                day = dt.date.fromisoformat(a.day)
            except ValueError:
                raise ViewError(f"--day {a.day!r}: give a date such as 2026-07-14") from None
        else:
            m0 = metas[0]
            day = rain_day_of(now, m0.timezone or "UTC", m0.rain_day_start_hour) - dt.timedelta(days=1)
        rows = [station_day(store, m, day) for m in metas]
    finally:
        store.close()
    out = text(rows, day, now) if a.format == "text" else to_csv(rows) if a.format == "csv" else to_json(
        rows, day, now)
    print(out, end="")
    return 0


def cmd_report(argv: list[str]) -> int:
    """Entry point of ``hydrolink report``."""
    p = argparse.ArgumentParser(
        prog="hydrolink report",
        description="The morning report: per station, readings expected (from the record interval) "
        "and received, gaps, last seen, battery, clock offset, alarms, faults and rain of one rain day.",
    )
    p.add_argument("--db", required=True, metavar="URL", help="center store: sqlite:///PATH or postgresql://...")
    p.add_argument("--day", metavar="DATE", help="the rain day (label = the day it starts); default: the last "
                   "complete one")
    p.add_argument("--station", type=int, action="append", metavar="ID", help="only this station (repeatable)")
    p.add_argument("--format", choices=("text", "csv", "json"), default="text")
    return run_view(_report, p.parse_args(argv))
