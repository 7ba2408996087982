"""A station's state at a glance: the conditions it is in, worst first.

Pure: the overview gives it what the store says about a station and ``now``. The
conditions, from worst to least bad:

- ``alarm``: a center alarm other than silence and battery is active (a stage crossed,
  heavy rain), or the latest level is at or above one of the registry stages;
- ``silent``: nothing received for one report period plus ``silent_intervals`` record
  intervals (registry ``alarms.silent_intervals``, default 3; the center watch's rule),
  never received, or a center ``silent`` alarm;
- ``fault``: the latest value of some element has quality ``fault``;
- ``battery``: the latest battery reading is below ``alarms.battery_low_v``, or a center
  ``battery_low`` alarm is active;
- ``late``: the next report is overdue by half a record interval (not yet silent);
- ``ok``: reporting.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

STATES = ("alarm", "silent", "fault", "battery", "late", "ok")
RANK = {s: i for i, s in enumerate(STATES)}
LABEL_KEY = {"alarm": "st_alarm", "silent": "st_silent", "fault": "st_fault",
             "battery": "st_battery", "late": "st_late", "ok": "st_ok"}
LATE_INTERVALS = 0.5
DEFAULT_SILENT_INTERVALS = 3.0


@dataclass(frozen=True)
class Facts:
    """What is known about one station for its state (None: not known)."""

    now: float
    interval_s: int
    last_seen: float | None
    active_alarms: Collection[str] = ()
    qualities: Mapping[str, str] | None = None   # element -> quality of its latest value
    level_m: float | None = None
    battery_v: float | None = None
    stages: Mapping[str, float] | None = None
    alarms: Mapping[str, float] | None = None    # the registry ``alarms`` thresholds
    period_s: float | None = None                # the learned report period


def conditions(f: Facts) -> list[str]:
    """The station's conditions, worst first; ``["ok"]`` when none applies."""
    alarms = f.alarms or {}
    out: list[str] = []
    stages = f.stages or {}
    if any(k not in ("silent", "battery_low") for k in f.active_alarms) or (
            f.level_m is not None and any(f.level_m >= v for v in stages.values())):
        out.append("alarm")
    age = None if f.last_seen is None else f.now - f.last_seen
    expected = max(float(f.interval_s), f.period_s or 0.0)  # the next report is due after this
    silent_after = expected + float(alarms.get("silent_intervals", DEFAULT_SILENT_INTERVALS)) * f.interval_s
    silent = age is None or age >= silent_after or "silent" in f.active_alarms
    if silent:
        out.append("silent")
    if f.qualities and "fault" in f.qualities.values():
        out.append("fault")
    low = alarms.get("battery_low_v")
    if "battery_low" in f.active_alarms or (
            low is not None and f.battery_v is not None and f.battery_v < low):
        out.append("battery")
    if not silent and age is not None and age > expected + LATE_INTERVALS * f.interval_s:
        out.append("late")
    return out or ["ok"]


def sort_key(conds: list[str], name: str, station: int) -> tuple[int, int, str, int]:
    """Worst first: by the worst condition, then how many, then name and id."""
    return (RANK[conds[0]], -len(conds), name, station)


def stage_position(level: float | None, stages: Mapping[str, float],
                   ) -> tuple[str | None, str | None, float | None]:
    """(highest stage reached, reference stage, level minus the reference): the reference is
    the nearest stage above the level (a negative difference: metres to go), or the highest
    stage once all are reached."""
    if level is None or not stages:
        return None, None, None
    reached = [(v, k) for k, v in stages.items() if level >= v]
    above = sorted((v, k) for k, v in stages.items() if v > level)
    top = max(reached)[1] if reached else None
    ref_v, ref = above[0] if above else max((v, k) for k, v in stages.items())
    return top, ref, round(level - ref_v, 3)
