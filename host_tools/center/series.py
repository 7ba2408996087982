"""Readings as regular interval series, with every missing interval an explicit row.

Pure functions over lists of ``(time, value, quality)`` (UNIX seconds, SI float or
None, a quality name of SPEC §5.3); the store's ``Obs`` rows fit as they are. A
station records on multiples of its record interval, so the expected times are
known in advance: a slot with no reading becomes ``(time, None, "missing")``, never
an absent row. Readings off the grid (a manual reading at 10:02) are kept in
time order among the slots.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple, TypeAlias

MISSING = "missing"

QUALITY_CODES: dict[str, str] = {
    "good": "passed all checks",
    "suspect": "failed a spike, rate-of-change or flat-line check; kept for a person to judge",
    "out_of_range": "outside the sensor's or the configured plausible range",
    "missing": "no measurement (station off, not sampled, or not received)",
    "fault": "the sensor failed (open loop, over-range, no answer)",
    "manual": "entered or set by a technician",
    "maintenance": "measured while a technician worked on the station",
}
"""The quality codes of SPEC §5.3, with the meaning an export explains."""

USABLE = frozenset({"good", "suspect", "manual", "maintenance"})
"""Qualities whose value counts in totals and statistics (out_of_range does not)."""


class Reading(NamedTuple):
    """One reading of a series: UNIX time, SI value (None when there is none), quality."""

    time: int
    value: float | None
    quality: str


Row: TypeAlias = "Reading | tuple[int, float | None, str] | tuple[int, float | None, str, str]"
"""A reading as a plain tuple; the store's ``Obs`` (time, value, quality, flags) fits."""


def usable(row: Row) -> bool:
    """True if the row has a value that statistics may use."""
    return row[1] is not None and row[2] in USABLE


def grid(start: int, end: int, interval: int) -> range:
    """The expected times in ``[start, end]``: multiples of ``interval`` (UNIX epoch)."""
    if interval <= 0:
        raise ValueError(f"record interval must be positive, not {interval}")
    first = -(-start // interval) * interval
    return range(first, end + 1, interval)


def regular(rows: Iterable[Row], start: int, end: int, interval: int) -> list[Reading]:
    """The readings in ``[start, end]`` with a ``missing`` row for every empty slot.

    Args:
        rows: readings in any order (one per time; a later duplicate wins).
        start: first time wanted (UNIX seconds, inclusive).
        end: last time wanted (inclusive).
        interval: the station's record interval in seconds.

    Returns:
        One row per expected time plus any off-grid reading, oldest first.
    """
    by_time: dict[int, Reading] = {}
    for r in rows:
        t = int(r[0])
        if start <= t <= end:
            by_time[t] = Reading(t, None if r[1] is None else float(r[1]), str(r[2]))
    for t in grid(start, end, interval):
        if t not in by_time:
            by_time[t] = Reading(t, None, MISSING)
    return [by_time[t] for t in sorted(by_time)]


class Gap(NamedTuple):
    """A run of expected times without a usable reading: ``start``..``end`` are slot times."""

    start: int
    end: int
    slots: int


def gaps(rows: Sequence[Row], start: int, end: int, interval: int, *,
         min_slots: int = 1) -> list[Gap]:
    """Runs of expected slots in ``[start, end]`` that have no value.

    A slot counts as received if any reading sits on it with a value (whatever its
    quality); ``missing`` and ``fault`` rows, and absent rows, are gaps.

    Args:
        rows: readings (any order).
        start: first expected time considered (inclusive).
        end: last (inclusive).
        interval: record interval in seconds.
        min_slots: report only runs at least this many slots long.
    """
    have = {int(r[0]) for r in rows if r[1] is not None}
    out: list[Gap] = []
    run_start: int | None = None
    prev = 0
    for t in grid(start, end, interval):
        if t in have:
            if run_start is not None:
                n = (prev - run_start) // interval + 1
                if n >= min_slots:
                    out.append(Gap(run_start, prev, n))
                run_start = None
        elif run_start is None:
            run_start = t
        prev = t
    if run_start is not None:
        n = (prev - run_start) // interval + 1
        if n >= min_slots:
            out.append(Gap(run_start, prev, n))
    return out


def expected_count(start: int, end: int, interval: int) -> int:
    """How many readings a station with this interval records in ``[start, end]``."""
    return len(grid(start, end, interval))


class SeriesMeta(NamedTuple):
    """What an export says about a series besides its readings."""

    station: int
    name: str
    element: str
    unit: str
    interval_s: int
    timezone: str = "UTC"
    lat: float | None = None
    lon: float | None = None
