"""``hydrolink pull PORT --out FILE.csv`` and ``hydrolink center import FILE.csv``.

A station whose link has been down for weeks keeps its readings on flash; a technician
pulls them over the console (``dump``, ``firmware/console_set.py``) into a CSV a spreadsheet
opens: one row per reading, UTC times as ``YYYY-MM-DD HH:MM:SS``, values in SI units (the
element table, ``protocol/elements.csv``), quality by name (SPEC §5.3). ``center import``
stores such a file at the center through the store's ``upsert_observations``: a reading is
stored once, whether it came by the link, by an import, or both, in any order.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from host_tools.field.console import BAUD, ConsoleError, Session
from protocol.codec import EPOCH_UNIX
from protocol.elements import ELEMENTS, QUALITY_NAMES

COLUMNS = ["station", "element", "unit", "time_utc", "value", "quality", "time_unix"]


@dataclass(frozen=True)
class Row:
    """One reading as pulled: what the center would store."""

    station: int
    element: str
    time: int  # UNIX seconds
    value: float | None
    quality: str


def parse_dump(lines: list[str], station: int) -> list[Row]:
    """The board's ``dump`` lines (``time,element,value,quality``, scaled) -> rows in SI units."""
    out = []
    for ln in lines:
        if not ln or ln.startswith("#") or ln.startswith("time,"):
            continue
        t, el, v, q = ln.split(",")
        e = ELEMENTS.get(int(el))
        if e is None:
            continue  # an element this host does not know: not guessed at
        out.append(Row(station, e.name, int(t) + EPOCH_UNIX, e.to_si(int(v)) if v else None,
                       QUALITY_NAMES[int(q)]))
    return out


def write_csv(path: Path, rows: list[Row]) -> None:
    """Rows as a spreadsheet-friendly CSV (header, ISO-like UTC times, SI values)."""
    units = {e.name: e.unit for e in ELEMENTS.values()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow([r.station, r.element, units[r.element],
                        datetime.fromtimestamp(r.time, UTC).strftime("%Y-%m-%d %H:%M:%S"),
                        "" if r.value is None else r.value, r.quality, r.time])
    tmp.replace(path)


def read_csv(path: Path) -> list[Row]:
    """A pulled CSV back; ValueError (one line) on a file that is not one."""
    rows = []
    with path.open(newline="", encoding="utf-8") as f:
        rd = csv.DictReader(f)
        if rd.fieldnames is None or not set(COLUMNS) <= set(rd.fieldnames):
            raise ValueError(f"{path}: not a hydrolink pull CSV (columns {', '.join(COLUMNS)})")
        for i, d in enumerate(rd, 2):
            try:
                q = d["quality"]
                if d["element"] not in {e.name for e in ELEMENTS.values()} or q not in QUALITY_NAMES:
                    raise ValueError("unknown element or quality")
                rows.append(Row(int(d["station"]), d["element"], int(d["time_unix"]),
                                float(d["value"]) if d["value"] else None, q))
            except (ValueError, KeyError) as e:
                raise ValueError(f"{path} line {i}: {e}") from None
    return rows


def _progress(done: int, total: int, t0: float) -> None:
    total = max(total, done, 1)
    n = 30 * done // total
    rate = done / max(time.monotonic() - t0, 1e-6)
    sys.stderr.write(f"\rpull [{'#' * n}{'.' * (30 - n)}] {done}/{total} readings, {rate:,.0f}/s ")
    sys.stderr.flush()


def pull(url: str, since: str | None = None, baud: int = BAUD, progress: bool = True) -> list[Row]:
    """The station's kept readings over its console (``dump``), in SI units."""
    s = Session(url, baud, timeout=30.0)
    try:
        s.open()
        st = [ln for ln in s.command("status") if ln.startswith("station ")]
        if not st:
            raise ConsoleError("the board's status has no station line: is this a hydrolink console?")
        station = int(st[0].split()[1])
        total = [0]
        got = [0]
        t0 = time.monotonic()

        def line(ln: str) -> None:
            if ln.startswith("# station"):
                total[0] = int(ln.split("up to ")[1].split()[0])
            elif ln[:1].isdigit():
                got[0] += 1
                if progress and got[0] % 200 == 0:
                    _progress(got[0], total[0], t0)

        lines = s.command("dump" + (f" --since {since}" if since else ""), on_line=line)
        if progress:
            _progress(got[0], got[0], t0)
            sys.stderr.write("\n")
        if not lines or not lines[-1].startswith("# end:"):
            raise ConsoleError("the dump ended early: " + (lines[-1] if lines else "no answer"))
        rows = parse_dump(lines, station)
        if len(rows) != int(lines[-1].split()[2]):
            raise ConsoleError(f"the dump said {lines[-1].split()[2]} readings, {len(rows)} arrived")
        return rows
    finally:
        s.close()


def cmd_pull(argv: list[str]) -> int:
    """Entry point of ``hydrolink pull``."""
    ap = argparse.ArgumentParser(prog="hydrolink pull", description=__doc__.splitlines()[0])
    ap.add_argument("port", help="the console port: a device (/dev/ttyUSB0) or pyserial URL")
    ap.add_argument("--out", required=True, type=Path, help="CSV file to write")
    ap.add_argument("--since", help="only readings from this UTC time on (YYYY-MM-DD [HH:MM:SS])")
    ap.add_argument("--baud", type=int, default=BAUD, help=f"line rate (default {BAUD})")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    try:
        t = time.monotonic()
        rows = pull(a.port, a.since, a.baud, not a.quiet)
        write_csv(a.out, rows)
    except ConsoleError as e:
        print(f"hydrolink: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"hydrolink: cannot write {a.out}: {e.strerror}", file=sys.stderr)
        return 2
    print(f"{len(rows)} readings of station {rows[0].station if rows else '?'} in {a.out} "
          f"({time.monotonic() - t:.1f} s)")
    return 0


def cmd_import(argv: list[str]) -> int:
    """Entry point of ``hydrolink center import``: a pulled CSV into the center store."""
    ap = argparse.ArgumentParser(prog="hydrolink center import", description=cmd_import.__doc__)
    ap.add_argument("file", type=Path, help="a CSV written by hydrolink pull")
    ap.add_argument("--db", required=True, help="the center store: sqlite:///PATH or postgresql://...")
    a = ap.parse_args(argv)
    try:
        rows = read_csv(a.file)
    except OSError as e:
        print(f"hydrolink: cannot read {a.file}: {e.strerror}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"hydrolink: {e}", file=sys.stderr)
        return 2
    from host_tools.center.model import ObsRow
    from host_tools.center.store import open_store

    try:
        store = open_store(a.db)
    except Exception as e:  # noqa: BLE001 - StoreError/SchemaError: one line
        print(f"hydrolink: {e}", file=sys.stderr)
        return 2
    try:
        now = time.time()
        res = store.upsert_observations([ObsRow(r.station, r.element, r.time, r.value, r.quality, now)
                                         for r in rows])
    finally:
        store.close()
    print(f"{a.file}: {res.inserted} readings stored, {res.duplicates} already at the center, "
          f"{res.revised} revised")
    return 0
