"""Seeded stochastic rainfall, or a replayed series: rain per minute over a horizon.

Storms arrive as a Poisson process whose rate follows the season (a wet and a dry
half of the year) and which now and then stops for a dry spell; each storm has a
duration (log-normal, 30 min to 24 h), a depth (gamma-like, deeper for longer storms)
and a within-storm profile: one of Huff's four quartile curves (median mass curves) or
an alternating-block design storm from an intensity-duration curve. A regional storm
reaches each station scaled and shifted in time (a storm moves). ``replay_csv`` reads
``time,mm`` rows instead. Everything is a pure function of the seed.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# Huff (1967) median cumulative mass curves, fraction of depth at 0, 10 ... 100 % of duration.
HUFF = {
    1: (0, .16, .38, .55, .66, .74, .80, .85, .90, .95, 1.0),
    2: (0, .03, .08, .17, .32, .52, .70, .83, .91, .96, 1.0),
    3: (0, .03, .06, .10, .14, .21, .32, .50, .75, .91, 1.0),
    4: (0, .02, .05, .08, .12, .16, .22, .30, .40, .62, 1.0),
}


@dataclass(frozen=True)
class Storm:
    """One storm: ``start_s`` from virtual time 0, ``depth_mm`` over ``duration_s``.

    ``profile``: "huff1" .. "huff4", "block" (alternating block, peak at mid-storm) or
    "triangle".
    """

    start_s: int
    duration_s: int
    depth_mm: float
    profile: str = "huff2"

    def minute_depths(self) -> list[float]:
        """Rain depth (mm) of each minute of the storm."""
        n = max(1, self.duration_s // 60)
        if self.profile.startswith("huff"):
            curve = HUFF[int(self.profile[4:])]

            def mass(x: float) -> float:
                i = min(9, int(x * 10))
                f = x * 10 - i
                return curve[i] + (curve[i + 1] - curve[i]) * f

            return [self.depth_mm * (mass((i + 1) / n) - mass(i / n)) for i in range(n)]
        if self.profile == "block":
            return alternating_block(n, self.depth_mm)
        w = [1 - abs(2 * (i + 0.5) / n - 1) for i in range(n)]
        s = sum(w) or 1.0
        return [self.depth_mm * x / s for x in w]


def alternating_block(n: int, depth_mm: float, b_min: float = 10.0, c: float = 0.75) -> list[float]:
    """An alternating-block hyetograph of ``n`` minutes from i = a / (t + b)^c, scaled to the depth."""
    cum = [(t / (t + b_min) ** c) for t in range(n + 1)]  # depth of the most intense t minutes
    blocks = sorted((cum[i + 1] - cum[i] for i in range(n)), reverse=True)
    out = [0.0] * n
    mid = (n - 1) // 2
    for k, d in enumerate(blocks):  # largest in the middle, then right, left, right ...
        j = mid + (k + 1) // 2 if k % 2 else mid - k // 2
        out[max(0, min(n - 1, j))] += d
    s = sum(out) or 1.0
    return [depth_mm * x / s for x in out]


@dataclass(frozen=True)
class Climate:
    """Storm statistics. ``storms_per_day``: mean arrival rate at mid-season; ``season``:
    0 = no seasonal change, 1 = no storms at the dry peak; ``wet_peak_doy``: day of year
    of the wettest time; ``dry_spell_p``: chance that after a storm a dry spell of
    ``dry_spell_days`` (mean) follows."""

    storms_per_day: float = 0.35
    mean_duration_h: float = 4.0
    mean_depth_mm: float = 14.0
    season: float = 0.6
    wet_peak_doy: int = 200
    dry_spell_p: float = 0.15
    dry_spell_days: float = 6.0


def storms(seed: int, days: float, climate: Climate = Climate(), start_doy: int = 200) -> list[Storm]:
    """Regional storms over ``days`` from virtual time 0 (day of year ``start_doy``)."""
    rng = random.Random(f"storms:{seed}")
    out: list[Storm] = []
    t = 0.0
    horizon = days * 86400
    peak = climate.storms_per_day * (1 + climate.season)
    while True:
        t += rng.expovariate(peak) * 86400  # thinning: candidates at the peak rate
        if t >= horizon:
            return out
        doy = start_doy + t / 86400
        rate = climate.storms_per_day * (1 + climate.season * math.cos(
            2 * math.pi * (doy - climate.wet_peak_doy) / 365.25))
        if rng.random() * peak > rate:
            continue
        dur_h = min(24.0, max(0.5, rng.lognormvariate(math.log(climate.mean_duration_h) - 0.32, 0.8)))
        depth = rng.gammavariate(2.0, climate.mean_depth_mm / 2) * (dur_h / climate.mean_duration_h) ** 0.4
        profile = rng.choice(("huff1", "huff2", "huff3", "huff4", "block"))
        out.append(Storm(int(t), int(dur_h * 3600), round(depth, 2), profile))
        t += dur_h * 3600
        if rng.random() < climate.dry_spell_p:
            t += rng.expovariate(1 / climate.dry_spell_days) * 86400


def rain_minutes(storm_list: list[Storm], days: float, *, scale: float = 1.0, shift_s: int = 0) -> list[float]:
    """Rain (mm) in each minute of the horizon at one station."""
    minutes = int(days * 1440) + 2
    rain = [0.0] * minutes
    for s in storm_list:
        m0 = (s.start_s + shift_s) // 60
        for i, d in enumerate(s.minute_depths()):
            if 0 <= m0 + i < minutes:
                rain[m0 + i] += d * scale
    return rain


def station_rain(seed: int, station: int, storm_list: list[Storm], days: float) -> list[float]:
    """The regional storms as one station sees them: depth x 0.7-1.3, up to 1 h later."""
    rng = random.Random(f"station-rain:{seed}:{station}")
    return rain_minutes(storm_list, days, scale=rng.uniform(0.7, 1.3), shift_s=rng.randrange(0, 3600))


class ReplayError(ValueError):
    """A rainfall CSV that cannot be read; ``str()`` is one line."""


def replay_csv(path: Path, t0_unix: int, days: float) -> list[float]:
    """Rain per minute from a ``time,mm`` CSV: each row's mm fell since the previous row's time.

    ``time`` is ISO 8601 (``2025-08-25T10:00:00Z``) or UNIX seconds; the run starts at
    ``t0_unix``. A header row is skipped.
    """
    rows: list[tuple[float, float]] = []
    try:
        with open(path, newline="") as f:
            for n, row in enumerate(csv.reader(f), 1):
                if not row or row[0].startswith("#"):
                    continue
                try:
                    rows.append((_time(row[0]), float(row[1])))
                except (ValueError, IndexError):
                    if n == 1:
                        continue  # header
                    raise ReplayError(f"{path}:{n}: expected time,mm, got {','.join(row)!r}") from None
    except OSError as e:
        raise ReplayError(f"{path}: {e.strerror}") from None
    minutes = int(days * 1440) + 2
    rain = [0.0] * minutes
    for (ta, _), (tb, mm) in zip(rows, rows[1:], strict=False):
        a, b = int((ta - t0_unix) // 60), int((tb - t0_unix) // 60)
        if b <= a or mm <= 0:
            continue
        for m in range(max(a, 0), min(b, minutes)):
            rain[m] += mm / (b - a)
    return rain


def _time(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        d = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp()
