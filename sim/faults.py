"""Sensor faults of the level transducer, and a solar-charged battery.

A :class:`Fault` acts on the transducer reading between ``start_ms`` and ``end_ms``:
``noise`` (mm, standard deviation), ``drift`` (mm per day since the start), ``spike``
(mm added for one minute), ``flat`` (the reading stays at its value at the start),
``open`` (the 4-20 mA loop is open: no current). Noise is a hash of the time, so a
query gives the same answer every time. The battery is a lead-acid 12 V battery with a
panel: it charges in daylight, less under rain clouds, and the logger and radio draw
on it all the time, so a long storm sags it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

KINDS = ("noise", "drift", "spike", "flat", "open")


@dataclass(frozen=True)
class Fault:
    kind: str
    start_ms: int
    end_ms: int = 2**62
    size: float = 0.0

    def describe(self) -> str:
        d = self.start_ms / 86_400_000
        span = "" if self.end_ms >= 2**61 else f"-{self.end_ms / 86_400_000:.2f}"
        unit = {"noise": " mm sd", "drift": " mm/day", "spike": " mm"}.get(self.kind, "")
        size = f" {self.size:g}{unit}" if unit else ""
        return f"{self.kind}{size} day {d:.2f}{span}"


def _hash01(seed: int, k: int) -> float:
    """A uniform [0, 1) number from two ints (splitmix64)."""
    x = (seed * 0x9E3779B97F4A7C15 + k) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return ((x ^ (x >> 31)) >> 11) / float(1 << 53)


def measured_mm(true_mm: float, ms: int, faults: list[Fault], seed: int,
                true_at: Callable[[int], float] | None = None) -> float | None:
    """What the transducer reports at ``ms`` (None: the loop is open)."""
    v = true_mm
    for f in faults:
        if not f.start_ms <= ms < f.end_ms:
            continue
        if f.kind == "open":
            return None
        if f.kind == "flat" and true_at is not None:
            v = true_at(f.start_ms)
        elif f.kind == "drift":
            v += f.size * (ms - f.start_ms) / 86_400_000
        elif f.kind == "spike" and ms - f.start_ms < 60_000:
            v += f.size
        elif f.kind == "noise":
            k = ms // 1000
            v += f.size * (sum(_hash01(seed, 3 * k + i) for i in range(3)) - 1.5) * 2.0
    return v


@dataclass(frozen=True)
class Battery:
    """``capacity_ah``; ``load_a``: mean draw; ``panel_a``: panel current at noon, clear sky."""

    capacity_ah: float = 7.0
    load_a: float = 0.12
    panel_a: float = 0.6
    start_soc: float = 0.8

    def millivolts(self, rain: list[float], days_offset_h: float = 0.0) -> list[int]:
        """Battery mV per minute; clouds follow the rain of the last 3 hours."""
        soc = self.start_soc * self.capacity_ah
        out: list[int] = []
        recent = 0.0  # rain of the last ~3 h (exponential window), mm
        for m, r in enumerate(rain):
            recent += r - recent / 180.0
            hour = (m / 60.0 + days_offset_h) % 24
            sun = max(0.0, math.sin(math.pi * (hour - 6) / 12)) if 6 <= hour <= 18 else 0.0
            cloud = min(0.9, 0.1 + recent / 10.0)
            charge = self.panel_a * sun * (1 - cloud)
            soc += (charge - self.load_a) / 60.0
            soc = min(self.capacity_ah, max(0.0, soc))
            frac = soc / self.capacity_ah
            mv = 11500 + 1250 * frac + (350 if charge > self.load_a and frac > 0.95 else 0)
            out.append(int(mv + 200 * min(1.0, charge / self.panel_a)))
        return out
