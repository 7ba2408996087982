"""Deterministic sensor inputs of a virtual station.

Storms (seeded) give a rain rate, or ``rain_mm`` gives the rain of each minute
(``sim.weather``); a tipping-bucket gauge turns the rain into tips (quantised to
``tip_mm``, merged when closer than the bucket can tip) with contact bounce and an
optional jammed switch; a linear reservoir, or ``level_true`` (``sim.runoff``), gives
the water level, which the transducer reports with its ``faults`` (``sim.faults``).
``battery_true`` gives the battery mV per minute (``sim.faults.Battery``). Everything
is precomputed per minute for the horizon, so queries are cheap and repeatable, and
the true values stay here for the tests.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field

from sim.faults import Fault, measured_mm

MS_PER_MIN = 60_000


@dataclass(frozen=True)
class Storm:
    """A triangular storm: rain rate rises to ``peak_mm_h`` at mid-storm and falls back."""

    start_s: int
    duration_s: int
    peak_mm_h: float


@dataclass
class Weather:
    """Rain, tips, level, battery and temperature over ``days`` from virtual time 0 (ms).

    Args:
        seed: seeds every random choice.
        days: horizon.
        tip_mm: rain per tip.
        storms: explicit storms; default: one every ~3 days, seeded.
    """

    seed: int
    days: float
    tip_mm: float = 0.2
    storms: list[Storm] | None = None
    base_level_mm: int = 3000
    bounce_max: int = 3
    closed_ms: int = 80
    battery_mv: list[tuple[int, int]] = field(default_factory=list)  # (from_ms, mV) overrides
    stuck: list[tuple[int, int]] = field(default_factory=list)  # (from_ms, to_ms): switch jammed closed
    rain_mm: list[float] | None = None  # rain of each minute, mm (replaces the storms)
    level_true: list[float] | None = None  # true level of each minute, mm (replaces the reservoir)
    battery_true: list[int] | None = None  # battery mV of each minute
    faults: list[Fault] = field(default_factory=list)  # of the level transducer
    tips: list[int] = field(init=False)  # closing time of each tip, ms
    edges: list[int] = field(init=False)  # every closing edge, bounce included, ms
    _level: list[float] = field(init=False)  # per minute

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        minutes = int(self.days * 1440) + 2
        if self.storms is None:
            self.storms = []
            t = rng.uniform(0.3, 1.5) * 86400
            while t < self.days * 86400:
                self.storms.append(Storm(int(t), rng.randint(2, 10) * 3600, rng.uniform(4.0, 40.0)))
                t += rng.uniform(1.5, 4.0) * 86400
        rate = [0.0] * minutes  # mm/h
        if self.rain_mm is not None:
            self.storms = []
            rate = [r * 60 for r in self.rain_mm[:minutes]] + [0.0] * max(0, minutes - len(self.rain_mm))
        for s in self.storms:
            m0 = s.start_s // 60
            n = max(1, s.duration_s // 60)
            for i in range(n):
                if 0 <= m0 + i < minutes:
                    x = i / n
                    rate[m0 + i] += s.peak_mm_h * (1 - abs(2 * x - 1))
        self.rain = [r / 60 for r in rate]  # the true rain of each minute, mm
        # tips: the bucket fills; each tip at a random ms inside its minute
        self.tips = []
        acc = 0.0
        for m, rr in enumerate(rate):
            acc += rr / 60
            while acc >= self.tip_mm:
                acc -= self.tip_mm
                self.tips.append(m * MS_PER_MIN + rng.randrange(1, MS_PER_MIN))
        self.tips.sort()
        # a tip closer than the closure to the previous one is merged by the bucket
        merged: list[int] = []
        for t in self.tips:
            if merged and t - merged[-1] < 1500:
                t = merged[-1] + 1500
            merged.append(t)
        self.tips = merged
        # a jammed switch closes once (no tips counted while jammed: the bucket
        # cannot tip) and chatters a little when it closes
        self.tips = [t for t in self.tips if not any(a <= t < b for a, b in self.stuck)]
        self.edges = [a + k * 7 for a, _ in self.stuck for k in range(3)]
        for t in self.tips:
            self.edges.append(t)
            b = t
            for _ in range(rng.randint(0, self.bounce_max)):
                b += rng.randint(1, 6)
                self.edges.append(b)  # bounce: more closing edges within a few ms
        self.edges.sort()
        # level: linear reservoir, 6 h time constant, 40 mm of level per mm of rain
        self._level = []
        lv = 0.0
        k = 6 * 60.0
        for rr in rate:
            lv += rr / 60 * 40 - lv / k
            self._level.append(self.base_level_mm + lv)
        if self.level_true is not None:
            self._level = list(self.level_true[:minutes])

    def level_mm(self, ms: int) -> float:
        """Water level at ``ms``, interpolated between minutes."""
        i = ms // MS_PER_MIN
        if i + 1 >= len(self._level):
            return self._level[-1]
        f = (ms % MS_PER_MIN) / MS_PER_MIN
        return self._level[i] * (1 - f) + self._level[i + 1] * f

    def level_uv(self, ms: int, shunt_ohm: int = 100, lo_mm: int = 0, hi_mm: int = 10_000) -> int:
        """Shunt voltage (µV) of the 4-20 mA transducer at ``ms`` (its faults included)."""
        mm = self.level_mm(ms)
        if self.faults:
            got = measured_mm(mm, ms, self.faults, self.seed, self.level_mm)
            if got is None:
                return 0  # open loop: no current through the shunt
            mm = got
        ua = 4000 + (mm - lo_mm) * 16000 / (hi_mm - lo_mm)
        return max(0, int(round(ua * shunt_ohm)))

    def pin_closed(self, ms: int) -> bool:
        """Whether the reed switch is closed at ``ms``."""
        if any(a <= ms < b for a, b in self.stuck):
            return True
        i = bisect.bisect_right(self.tips, ms) - 1
        return i >= 0 and ms - self.tips[i] < self.closed_ms

    def battery(self, ms: int) -> int:
        """Battery mV: a solar day cycle, or an override from ``battery_mv``."""
        if self.battery_true is not None:
            i = min(len(self.battery_true) - 1, ms // MS_PER_MIN)
            v = self.battery_true[i]
        else:
            v = 12600 + int(300 * math.sin(2 * math.pi * (ms / 86_400_000 - 0.25)))
        for t0, mv in self.battery_mv:
            if ms >= t0:
                v = mv
        return v

    def temperature(self, ms: int) -> int:
        """Logger temperature, 0.1 degC."""
        return 250 + int(80 * math.sin(2 * math.pi * (ms / 86_400_000 - 0.3)))

    def tips_between(self, a_ms: int, b_ms: int) -> int:
        """Tips with a_ms < time <= b_ms."""
        return bisect.bisect_right(self.tips, b_ms) - bisect.bisect_right(self.tips, a_ms)
