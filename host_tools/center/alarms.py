"""Center alarms: pure rules with hysteresis, evaluated on a station snapshot at a given time.

A rule raises when its value crosses the threshold and clears only once the value is
back beyond a band on the other side, so a value hovering at the threshold raises one
alarm, not one per tick. Silence raises when nothing was received for
``silent_intervals`` record intervals and clears when data comes again.

Silence: a station is silent when its next report is ``silent_intervals`` record intervals
overdue, i.e. nothing arrived for one report period plus that many intervals. A station
recording every 5 min usually reports hourly (the firmware default), so 15 min without a
message is normal; 75 min is not. The report period is learned from when its reports
arrived (:func:`report_period`); until it is known, the record interval is used.

Alarm kinds (one active alarm per station and kind):
``silent``, ``battery_low``, ``stage_<name>`` for each registry stage (action, warning,
guarantee, flood_limit), ``rain_1h`` and ``rain_3h``.

Nothing here reads a clock or a database: :class:`AlarmRules` gets a :class:`Snapshot`
and the set of active kinds, and returns the :class:`AlarmEvent` s to record.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

STAGES = ("action", "warning", "guarantee", "flood_limit")
RAIN_WINDOWS = {"rain_1h": 3600, "rain_3h": 3 * 3600}


@dataclass(frozen=True)
class AlarmConfig:
    """Hysteresis bands and defaults (the registry ``alarms`` table gives the thresholds)."""

    silent_intervals: float = 3.0      # default when the registry gives none
    battery_band_v: float = 0.2        # battery clears at low + band
    stage_band_m: float = 0.05         # a stage clears at stage - band
    rain_clear_fraction: float = 0.8   # rain clears below threshold x fraction


@dataclass(frozen=True)
class Snapshot:
    """What the rules look at for one station at ``now`` (None: not known)."""

    now: float
    interval_s: int
    last_received: float | None     # wall time the center last received anything
    battery_v: float | None = None  # latest battery reading
    level_m: float | None = None    # latest water level
    rain_mm: Mapping[str, float] | None = None  # "rain_1h"/"rain_3h" -> sliding total ending at the latest rain
    period_s: float | None = None   # the station's report period, if learned


@dataclass(frozen=True)
class AlarmEvent:
    """An alarm raised or cleared."""

    kind: str
    state: str            # "raised" | "cleared"
    value: float | None
    threshold: float | None
    detail: str


def high(active: bool, value: float, on: float, off: float) -> bool:
    """Hysteresis for a rising value: on at ``value >= on``, off again only below ``off``."""
    return value >= off if active else value >= on


def low(active: bool, value: float, on: float, off: float) -> bool:
    """Hysteresis for a falling value: on at ``value < on``, off again only at ``value >= off``."""
    return value < off if active else value < on


class AlarmRules:
    """The center's alarm rules for one station, from its registry ``stages`` and ``alarms``."""

    def __init__(self, stages: Mapping[str, float], alarms: Mapping[str, float],
                 config: AlarmConfig | None = None) -> None:
        self.stages = {k: float(v) for k, v in stages.items() if k in STAGES}
        self.alarms = {k: float(v) for k, v in alarms.items()}
        self.config = config or AlarmConfig()

    def silent_after(self, interval_s: int, period_s: float | None = None) -> float:
        """Seconds without any message after which the station counts as silent: one report
        period (at least one interval) and ``silent_intervals`` record intervals more."""
        n = self.alarms.get("silent_intervals", self.config.silent_intervals)
        return max(interval_s, period_s or 0) + n * interval_s

    def evaluate(self, snap: Snapshot, active: Collection[str]) -> list[AlarmEvent]:
        """The alarms that change state at ``snap.now``, given the kinds active before."""
        out: list[AlarmEvent] = []
        cfg = self.config

        def step(kind: str, was: bool, now_on: bool, value: float | None, threshold: float | None,
                 raised: str, cleared: str) -> None:
            if now_on != was:
                out.append(AlarmEvent(kind, "raised" if now_on else "cleared", value, threshold,
                                      raised if now_on else cleared))

        if snap.last_received is not None:
            period = max(snap.interval_s, snap.period_s or 0)
            limit = self.silent_after(snap.interval_s, snap.period_s)
            quiet = snap.now - snap.last_received
            was = "silent" in active
            # Raised past the limit; cleared by data received again (within one period).
            on = quiet >= limit if not was else quiet > period
            step("silent", was, on, round(quiet, 3), limit,
                 f"nothing received for {quiet / 60:.0f} min (limit {limit / 60:.0f} min)",
                 f"data again after silence (last {quiet:.0f} s ago)")

        low_v = self.alarms.get("battery_low_v")
        if low_v is not None and snap.battery_v is not None:
            was = "battery_low" in active
            on = low(was, snap.battery_v, low_v, low_v + cfg.battery_band_v)
            step("battery_low", was, on, snap.battery_v, low_v,
                 f"battery {snap.battery_v:.2f} V below {low_v:.2f} V",
                 f"battery {snap.battery_v:.2f} V back above {low_v + cfg.battery_band_v:.2f} V")

        if snap.level_m is not None:
            for name, stage in sorted(self.stages.items()):
                kind = f"stage_{name}"
                was = kind in active
                on = high(was, snap.level_m, stage, stage - cfg.stage_band_m)
                step(kind, was, on, snap.level_m, stage,
                     f"water level {snap.level_m:.3f} m reached {name} stage {stage:.3f} m",
                     f"water level {snap.level_m:.3f} m back below {name} stage {stage:.3f} m")

        if snap.rain_mm is not None:
            for kind, window in RAIN_WINDOWS.items():
                threshold = self.alarms.get(f"{kind}_mm")
                total = snap.rain_mm.get(kind)
                if threshold is None or total is None:
                    continue
                was = kind in active
                on = high(was, total, threshold, threshold * cfg.rain_clear_fraction)
                hours = window // 3600
                step(kind, was, on, total, threshold,
                     f"{total:.1f} mm of rain in {hours} h (threshold {threshold:.1f} mm)",
                     f"rain in {hours} h down to {total:.1f} mm")
        return out


def rain_totals(times: Sequence[int], values: Sequence[float | None]) -> dict[str, float]:
    """Sliding 1 h and 3 h rain totals ending at the latest reading.

    A rain value is the rain of the interval ending at its time, so the 1 h total at
    ``T`` sums the values with times in ``(T - 3600, T]``. Missing values count as 0.
    """
    if not times:
        return {}
    end = max(times)
    out = {}
    for kind, window in RAIN_WINDOWS.items():
        out[kind] = round(sum(v for t, v in zip(times, values, strict=True)
                              if v is not None and end - window < t <= end), 6)
    return out


def report_period(received: Sequence[float], interval_s: int) -> float | None:
    """A station's report period from the times its readings arrived (sorted, distinct).

    Arrivals closer than half a record interval are one report (frames of a burst, a
    backfill). Of the gaps between reports, the upper quartile: alarm reports in a
    storm shorten some gaps, and the regular period must still win. None with fewer
    than two gaps.
    """
    reports = [t for i, t in enumerate(received) if i == 0 or t - received[i - 1] >= interval_s / 2]
    gaps = sorted(b - a for a, b in zip(reports, reports[1:], strict=False))
    if len(gaps) < 2:
        return None
    return gaps[min(len(gaps) - 1, (3 * len(gaps)) // 4)]
