"""``hydrolink qc``: a named person approves, marks provisional, or corrects stored readings.

    hydrolink qc --db URL approve     --station ID --element E --from T --to T --by NAME [--note TEXT]
    hydrolink qc --db URL provisional --station ID --element E --time T --by NAME [--note TEXT]
    hydrolink qc --db URL correct     --station ID --element E --time T --value V --by NAME --note TEXT
    hydrolink qc --db URL show        --station ID --element E --from T --to T

Every change goes through the store and leaves a revision (who, when, why, old, new); a
corrected value gets quality ``manual`` and is not overwritten by station data sent
again. Times: ISO 8601; without a zone they are in the station's time zone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import zoneinfo
from typing import Any

ACTIONS = ("approve", "provisional", "correct", "show")


class QcError(Exception):
    """A bad request; ``str()`` is one line."""


def _fail(msg: str, code: int) -> int:
    print(f"hydrolink: {msg}", file=sys.stderr)
    return code


def parse_time(text: str, tz: dt.tzinfo) -> int:
    """UNIX seconds of an ISO 8601 date-time (naive: in ``tz``) or a bare date (its midnight)."""
    s = text.strip()
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise QcError(f"cannot read time {text!r}; use ISO 8601 such as 2026-07-14T08:00 (station time) "
                      "or 2026-07-14T00:00Z") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=tz)
    return int(t.timestamp())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hydrolink qc",
        description="Review stored readings: approve them, mark them provisional again, or correct a "
        "value with a note. Each change is kept as a revision (who, when, why, old, new); values are "
        "never changed by approval. 'show' lists readings with quality, center flags and review state.",
    )
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("--db", required=True, metavar="URL", help="sqlite:///PATH or postgresql://...")
    p.add_argument("--station", required=True, type=int, metavar="ID")
    p.add_argument("--element", required=True, metavar="E", help="e.g. water_level, rain")
    p.add_argument("--time", metavar="T", help="one reading's time")
    p.add_argument("--from", dest="start", metavar="T", help="first reading's time (with --to)")
    p.add_argument("--to", dest="end", metavar="T", help="last reading's time (inclusive)")
    p.add_argument("--value", metavar="V", help="correct: the new value in SI units, or 'none'")
    p.add_argument("--by", metavar="NAME", help="who reviews (required to change anything)")
    p.add_argument("--note", metavar="TEXT", help="why (required for correct)")
    return p


def _range(a: argparse.Namespace, tz: dt.tzinfo) -> tuple[int, int]:
    if a.time is not None:
        if a.start is not None or a.end is not None:
            raise QcError("give --time T or --from T --to T, not both")
        t = parse_time(a.time, tz)
        return t, t
    if a.start is None or a.end is None:
        raise QcError("give --time T, or --from T and --to T")
    start, end = parse_time(a.start, tz), parse_time(a.end, tz)
    if end < start:
        raise QcError("--to is before --from")
    return start, end


def _value(text: str) -> float | None:
    if text.lower() in ("none", "null"):
        return None
    try:
        v = float(text)
    except ValueError:
        raise QcError(f"--value {text!r} is not a number (or 'none' for no value)") from None
    if not math.isfinite(v):
        raise QcError(f"--value {text!r} must be a finite number")
    return v


def cmd_qc(argv: list[str]) -> int:
    """Approve, mark provisional, or correct stored readings (each change a revision)."""
    a = _parser().parse_args(argv)
    from .store import SchemaError, StoreError, open_store

    try:
        if a.action != "show" and not (a.by or "").strip():
            raise QcError(f"{a.action} needs --by NAME: every change names the person who made it")
        if a.action == "correct" and (a.value is None or not (a.note or "").strip()):
            raise QcError("correct needs --value V and --note TEXT (why the value is wrong)")
        if a.action != "correct" and a.value is not None:
            raise QcError("--value is only for correct")
        store = open_store(a.db)
    except (QcError, StoreError, SchemaError) as e:  # a bad request, or a database we cannot open
        return _fail(str(e), 2)
    try:
        return _run(store, a)
    except QcError as e:
        return _fail(str(e), 2)
    except (StoreError, SchemaError) as e:
        return _fail(str(e), 1)
    finally:
        store.close()


def _run(store: Any, a: argparse.Namespace) -> int:
    meta = store.station(a.station)
    try:
        tz: dt.tzinfo = zoneinfo.ZoneInfo(meta.timezone) if meta and meta.timezone else dt.UTC
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = dt.UTC
    start, end = _range(a, tz)
    obs = store.observations(a.station, a.element, start, end)
    where = f"station {a.station} {a.element} {_iso(start)}" + ("" if end == start else f" .. {_iso(end)}")
    if not obs:
        return _fail(f"no stored readings of {where}; nothing changed (check --station, --element, "
                     "the times and their zone)", 1)
    if a.action == "show":
        marks = {m[0]: m for m in store.marks(a.station, a.element, start, end)}
        print("time\tvalue\tquality\tflags\treview\tby")
        for o in obs:
            m = marks.get(o.time)
            print(f"{_iso(o.time)}\t{'' if o.value is None else o.value}\t{o.quality}\t{o.flags}\t"
                  f"{m[1] if m else 'provisional'}\t{m[2] if m and m[2] else ''}")
        return 0
    who, note = a.by.strip(), (a.note or "").strip() or None
    if a.action in ("approve", "provisional"):
        state = "approved" if a.action == "approve" else "provisional"
        n = store.review(a.station, a.element, start, end, state, who, note)
        print(f"{state}: {n} readings of {where} by {who}")
        return 0
    value = _value(a.value)
    changed = 0
    with store.transaction():
        for o in obs:
            changed += bool(store.correct(a.station, a.element, o.time, value, who, note))
    print(f"corrected: {changed} of {len(obs)} readings of {where} to "
          f"{'no value' if value is None else value} by {who} ({note})")
    return 0


def _iso(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
