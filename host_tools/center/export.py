"""``hydrolink export``: a station's readings as CSV, JSON, WaterML 2.0 or SL 323 tables.

Every format gets regular interval series (:func:`host_tools.center.series.regular`):
one row per expected interval from the station's record interval, a missing one with
no value and quality ``missing``. Values are SI (elements.csv units) with the quality
code of each (SPEC §5.3).

JSON also carries ``statistics``: rain maxima over 1-24 h sliding windows, storms,
rain-day totals, and level daily extremes and time above each stage.

CSV: a metadata header (``#key,value`` rows: station, name, time zone, record
interval, each element's unit, the quality codes), then one table with a UTC and a
local time column and a value and quality column per element. UTF-8 with a byte
order mark so a spreadsheet reads station names in any script. ``--revisions`` adds
a ``#revisions`` table after it (JSON: a ``revisions`` list).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import sys
import time
import zoneinfo
from collections.abc import Sequence
from typing import IO, Any

from host_tools.center.model import Revision
from host_tools.center.rain import daily_totals, level_days, rain_day_of, storms, time_above, window_maxima
from host_tools.center.series import QUALITY_CODES, Reading, SeriesMeta, regular
from host_tools.center.views import (
    ViewError,
    element_name,
    iso_local,
    iso_utc,
    kind_of,
    open_db,
    parse_time,
    run_view,
    station_meta,
    unit_of,
    zone,
)

FORMATS = ("csv", "json", "waterml2", "sl323")
DEFAULT_ELEMENTS = ("rain", "water_level")

Series = tuple[SeriesMeta, list[Reading]]


def write_csv(out: IO[str], series: Sequence[Series], tz: zoneinfo.ZoneInfo,
              revisions: Sequence[tuple[str, Revision]] | None = None) -> None:
    """Write the series as one spreadsheet-friendly CSV table with a metadata header."""
    w = csv.writer(out, lineterminator="\r\n")
    first = series[0][0]
    w.writerow(["#hydrolink export", "values in SI units; one row per record interval; "
                "a missing interval has no value and quality missing"])
    w.writerow(["#station", first.station])
    w.writerow(["#name", first.name])
    w.writerow(["#time_zone", first.timezone])
    w.writerow(["#record_interval_s", first.interval_s])
    for meta, _ in series:
        w.writerow([f"#element:{meta.element}", meta.unit])
    for code, meaning in QUALITY_CODES.items():
        w.writerow([f"#quality:{code}", meaning])
    header = ["time_utc", f"time_local ({first.timezone})"]
    for meta, _ in series:
        header += [f"{meta.element} ({meta.unit})", f"{meta.element}_quality"]
    w.writerow(header)
    columns = [{r.time: r for r in rows} for _, rows in series]
    times = sorted({t for c in columns for t in c})
    for t in times:
        row: list[Any] = [iso_utc(t), iso_local(t, tz)]
        for c in columns:
            r = c.get(t)
            if r is None:
                row += ["", ""]  # an off-grid reading of another element
            else:
                row += ["" if r.value is None else repr(r.value), r.quality]
        w.writerow(row)
    if revisions is not None:
        w.writerow([])
        w.writerow(["#revisions"])
        w.writerow(["time_utc", "element", "old_value", "new_value", "old_quality", "new_quality",
                    "changed_at_utc", "who", "why"])
        for element, rv in revisions:
            w.writerow([iso_utc(rv.time), element, _num(rv.old_value), _num(rv.new_value),
                        rv.old_quality or "", rv.new_quality or "", iso_utc(rv.changed_at),
                        rv.who or "", rv.why or ""])


def _num(v: float | None) -> str:
    return "" if v is None else repr(v)


def to_json(series: Sequence[Series], start: int, end: int,
            revisions: Sequence[tuple[str, Revision]] | None = None) -> dict[str, Any]:
    """The series as a JSON object shaped like the gateway's ``obs`` payloads."""
    first = series[0][0]
    obj: dict[str, Any] = {
        "station": first.station, "name": first.name, "timezone": first.timezone,
        "record_interval_s": first.interval_s, "from": iso_utc(start), "to": iso_utc(end),
        "quality_codes": QUALITY_CODES,
        "series": [{
            "element": m.element, "unit": m.unit, "interval_s": m.interval_s,
            "values": [{"time": iso_utc(r.time), "value": r.value, "quality": r.quality} for r in rows],
        } for m, rows in series],
    }
    if revisions is not None:
        obj["revisions"] = [{
            "time": iso_utc(rv.time), "element": e, "old_value": rv.old_value, "new_value": rv.new_value,
            "old_quality": rv.old_quality, "new_quality": rv.new_quality,
            "changed_at": iso_utc(rv.changed_at), "who": rv.who, "why": rv.why,
        } for e, rv in revisions]
    return obj


def statistics(series: Sequence[Series], start: int, end: int, rain_day_start_hour: int = 8,
               dry_s: int = 6 * 3600, stages: dict[str, float] | None = None) -> dict[str, Any]:
    """Rain and level statistics of the exported range (JSON-ready).

    Rain: sliding 1-24 h maxima with start and end, storms (split by ``dry_s`` without
    rain), rain-day totals; level: daily maximum, minimum and mean (local days) and
    the time above each stage. Every total says whether its data were complete.
    """
    out: dict[str, Any] = {}
    for meta, rows in series:
        iv, tz = meta.interval_s, meta.timezone
        if meta.element == "rain":
            maxima = window_maxima(rows, iv)
            first = rain_day_of(start + 1, tz, rain_day_start_hour)
            last = rain_day_of(end, tz, rain_day_start_hour)
            out["rain"] = {
                "window_maxima": {f"{w // 3600}h": None if m is None else {
                    "mm": m.total, "start": iso_utc(m.start), "end": iso_utc(m.end), "complete": m.complete}
                    for w, m in maxima.items()},
                "storms": [{"start": iso_utc(x.start), "end": iso_utc(x.end), "mm": x.total,
                            "peak_mm": x.peak, "peak_time": iso_utc(x.peak_time), "complete": x.complete}
                           for x in storms(rows, iv, dry_s)],
                "rain_day_start_hour": rain_day_start_hour,
                "days": [{"day": d.day.isoformat(), "mm": d.total, "expected": d.expected,
                          "received": d.received, "complete": d.complete}
                         for d in daily_totals(rows, iv, tz, first, last, rain_day_start_hour)],
            }
        elif meta.element == "water_level":
            zone_ = zone(tz)
            d0 = dt.datetime.fromtimestamp(start, zone_).date()
            d1 = dt.datetime.fromtimestamp(end, zone_).date()
            out["water_level"] = {
                "days": [{"day": d.day.isoformat(), "max": d.max,
                          "max_time": None if d.max_time is None else iso_utc(d.max_time),
                          "min": d.min, "min_time": None if d.min_time is None else iso_utc(d.min_time),
                          "mean": d.mean, "readings": d.readings} for d in level_days(rows, tz, d0, d1)],
                "time_above_s": time_above(rows, stages or {}, iv),
            }
    return out


def collect(store: Any, station: int, elements: Sequence[str], start: int, end: int) -> list[Series]:
    """Regular series of ``elements`` for one station from the store."""
    meta = station_meta(store, station)
    out: list[Series] = []
    for e in elements:
        rows = store.observations(station, e, start, end)
        sm = SeriesMeta(station, meta.name, e, unit_of(e), meta.record_interval_s,
                        meta.timezone or "UTC", meta.lat, meta.lon)
        out.append((sm, regular(rows, start, end, meta.record_interval_s)))
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hydrolink export",
        description="Export a station's readings as regular interval series in SI units with "
        "quality codes: every missing interval is a row with no value and quality 'missing'. "
        "Times without a zone are the station's local time.",
    )
    p.add_argument("--db", required=True, metavar="URL", help="center store: sqlite:///PATH or postgresql://...")
    p.add_argument("--station", required=True, type=int, metavar="ID")
    p.add_argument("--from", dest="start", required=True, metavar="TIME", help="ISO 8601 date or date-time")
    p.add_argument("--to", dest="end", required=True, metavar="TIME", help="ISO 8601; a date means its end")
    p.add_argument("--element", default=None, metavar="LIST",
                   help="comma-separated elements (rain, level, battery, ...); default rain,water_level")
    p.add_argument("--format", choices=FORMATS, default="csv")
    p.add_argument("--revisions", action="store_true", help="also list every revision of these readings")
    p.add_argument("--to-db", metavar="URL",
                   help="sl323: the target database (sqlite:///PATH or postgresql://...) whose SL 323 "
                   "tables are filled")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    return p


def _export(a: argparse.Namespace) -> int:
    if a.format == "sl323" and not a.to_db:
        raise ViewError("--format sl323 writes into a database: give --to-db URL")
    if a.format == "waterml2" and a.revisions:
        raise ViewError("WaterML 2.0 has no place for revisions; use --format csv or json with --revisions")
    store = open_db(a.db)
    try:
        meta = station_meta(store, a.station)
        tz = zone(meta.timezone)
        start, end = parse_time(a.start, tz), parse_time(a.end, tz, end=True)
        if end < start:
            raise ViewError(f"--to {a.end} is before --from {a.start}")
        if a.element:
            elements = [element_name(x) for x in a.element.split(",") if x.strip()]
        else:
            have = set(store.elements(a.station)) | set(meta.sensors)
            elements = [e for e in DEFAULT_ELEMENTS if e in have] or list(DEFAULT_ELEMENTS)
        if a.format == "sl323":
            from host_tools.center.sl323 import fill

            n = fill(store, a.to_db, [a.station], start, end)
            print(f"sl323: wrote {n} rows into {a.to_db.split('@')[-1]}", file=sys.stderr)
            return 0
        series = collect(store, a.station, elements, start, end)
        revs = None
        if a.revisions:
            revs = [(e, rv) for e in elements for rv in store.revisions(a.station, e, start, end)]
    finally:
        store.close()
    buf = io.StringIO()
    if a.format == "csv":
        buf.write("\ufeff")  # a byte order mark: spreadsheets then read the UTF-8 names right
        write_csv(buf, series, tz, revs)
    elif a.format == "json":
        obj = to_json(series, start, end, revs)
        obj["statistics"] = statistics(series, start, end, meta.rain_day_start_hour, stages=dict(meta.stages))
        buf.write(json.dumps(obj, ensure_ascii=False, indent=1) + "\n")
    else:
        from host_tools.center.waterml import document

        buf.write(document(series, generated=int(time.time()), start=start, end=end,
                           kinds={e: kind_of(e) for e in elements}))
    text = buf.getvalue()
    if a.output:
        try:
            with open(a.output, "w", encoding="utf-8", newline="") as f:
                f.write(text)
        except OSError as e:
            raise ViewError(f"cannot write {a.output}: {e.strerror or e}") from None
    else:
        sys.stdout.write(text)
    return 0


def cmd_export(argv: list[str]) -> int:
    """Entry point of ``hydrolink export``."""
    return run_view(_export, _parser().parse_args(argv))
