"""Shared helpers for the benchmarks: a deterministic station day and its hourly reports.

Not a benchmark itself (``make bench`` runs every ``bench/*.py``; this one only says so).

The day model (all times UTC, one reading every 5 minutes, 288 per element):

* **Rain** (element 1, 0.1 mm). A storm day has a 6-hour storm starting about noon: a light
  background rain of 1-3 mm/h under the whole storm, plus four convective cells, each a Gaussian
  pulse in time (peak 20-40 mm/h, width 10-25 min), one at a random time in each 90-minute
  quarter of the storm. Each 5-minute slot's rate gets a gust factor (lognormal, sigma 0.2).
  The rain falls into a 0.5 mm tipping bucket that keeps its partial fill between slots, so
  every value is a whole number of tips: a multiple of 5 in 0.1 mm. The morning and the
  evening are dry (zeros).
* **Level** (element 2, mm). A reservoir at about 70.000 m. The catchment is one linear store
  (time constant 90 min): each slot its outflow is ``store × (1 − e^(−5/90))``, and that runoff
  raises the reservoir in proportion, the gain chosen so the whole storm raises it by 0.6 m (a
  catchment about ten times the lake's area). The dam releases a constant 0.5 mm/h. The logger
  reports ``round(true level + sensor noise + wind waves)``: the noise is Gaussian, sd 0.7 mm,
  clipped to ±2 mm; the waves are what is left of a wave after the logger's averaging, a random
  phase times an amplitude of 1 mm in calm air and up to 4 mm in the storm's gusts (the amplitude
  follows the rain rate).
* A **dry day** is the same without the storm: zeros for rain, a slow drawdown with noise and
  calm-air waves for the level.

Every figure is reproducible: the seed fixes the day.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256

from protocol.codec import DATA, Report, Series, encode_frame, from_datetime, wrap

INTERVAL = 300  # s: 5-minute readings
PER_HOUR = 3600 // INTERVAL  # 12
PER_DAY = 86400 // INTERVAL  # 288
RAIN, LEVEL = 1, 2  # element ids (protocol/elements.csv)
TIP = 5  # 0.1 mm per tip of a 0.5 mm bucket
STORM_DATE = datetime(2025, 7, 14, tzinfo=UTC)
DRY_DATE = datetime(2025, 7, 15, tzinfo=UTC)


def station_key(station: int) -> bytes:
    """A fixed 32-byte key per station (benchmarks only; real keys are random)."""
    return sha256(b"hydrolink bench key %d" % station).digest()


@dataclass(frozen=True)
class Day:
    """One station day: reading *i* of each element is at ``start + (i + 1) * INTERVAL``."""

    date: datetime  # 00:00 UTC of the day
    rain: tuple[int, ...]  # 0.1 mm per 5 minutes, multiples of TIP
    level: tuple[int, ...]  # mm
    storm: bool

    @property
    def start(self) -> int:
        """Hydrolink time of 00:00 UTC."""
        return from_datetime(self.date)

    def times(self) -> range:
        """Hydrolink time of each reading: 00:05 .. 24:00."""
        return range(self.start + INTERVAL, self.start + (PER_DAY + 1) * INTERVAL, INTERVAL)


def simulate_day(seed: int, date: datetime, storm: bool, level0_mm: float = 70_000.0) -> Day:
    """The model of the module docstring, fixed by ``seed``."""
    rng = random.Random(seed)
    slot_h = INTERVAL / 3600  # hours per slot
    # Slot i covers (i*5, (i+1)*5] minutes; its mid-time in hours:
    mid = [(i + 0.5) * slot_h for i in range(PER_DAY)]

    rate = [0.0] * PER_DAY  # mm/h
    if storm:
        t0 = rng.uniform(11.5, 12.5)
        t1 = t0 + 6.0
        background = rng.uniform(1.0, 3.0)
        # Four cells, one in each 90-minute quarter of the storm, so they seldom pile up.
        cells = [
            (t0 + 1.5 * (k + rng.uniform(0.25, 0.75)), rng.uniform(20.0, 40.0),
             rng.uniform(10, 25) / 60)
            for k in range(4)
        ]
        for i, t in enumerate(mid):
            if not t0 <= t <= t1:
                continue
            r = background
            for centre, peak, width in cells:
                r += peak * math.exp(-0.5 * ((t - centre) / width) ** 2)
            rate[i] = r * rng.lognormvariate(0.0, 0.2)

    rain: list[int] = []
    bucket = 0.0  # mm in the bucket, below one tip
    for r in rate:
        bucket += r * slot_h
        tips = int(bucket / 0.5)
        bucket -= tips * 0.5
        rain.append(tips * TIP)

    # Catchment: one linear store; runoff raises the reservoir by gain x runoff (mm / mm).
    total_mm = sum(rain) / 10
    gain = 600.0 / total_mm if total_mm else 0.0
    keep = math.exp(-slot_h / 1.5)  # time constant 90 min
    store = 0.0
    true_level = level0_mm
    level: list[int] = []
    for i in range(PER_DAY):
        store += rain[i] / 10
        runoff = store * (1 - keep)
        store -= runoff
        true_level += gain * runoff - 0.5 * slot_h
        noise = max(-2.0, min(2.0, rng.gauss(0.0, 0.7)))
        amplitude = 1.0 + 3.0 * min(1.0, rate[i] / 30.0)
        wave = amplitude * math.sin(rng.uniform(0.0, 2 * math.pi))
        level.append(round(true_level + noise + wave))
    return Day(date, tuple(rain), tuple(level), storm)


def storm_day(seed: int = 651) -> Day:
    return simulate_day(seed, STORM_DATE, storm=True)


def dry_day(seed: int = 652) -> Day:
    return simulate_day(seed, DRY_DATE, storm=False)


@dataclass(frozen=True)
class HourlyReport:
    """One hourly ``data`` report: 12 values per element ending at ``hour_end``."""

    hour_end: int  # hydrolink time of the hour's last value (HH:00)
    time: int  # header time: a few seconds after the hour, when the report was built
    rain: tuple[int, ...]
    level: tuple[int, ...]

    @property
    def first(self) -> int:
        """Time of the first value (HH-1:05)."""
        return self.hour_end - (PER_HOUR - 1) * INTERVAL

    def report(self) -> Report:
        n = len(self.rain)
        return Report(
            (
                Series(RAIN, INTERVAL, self.first, self.rain, (0,) * n),
                Series(LEVEL, INTERVAL, self.first, self.level, (0,) * n),
            )
        )


def hourly_reports(day: Day, seed: int = 0) -> list[HourlyReport]:
    """The day's 24 hourly reports, each built 2-9 s after its hour (seeded)."""
    rng = random.Random(seed)
    out = []
    for h in range(24):
        sl = slice(h * PER_HOUR, (h + 1) * PER_HOUR)
        hour_end = day.start + (h + 1) * 3600
        built = hour_end + rng.randint(2, 9)
        out.append(HourlyReport(hour_end, built, day.rain[sl], day.level[sl]))
    return out


def hydrolink_frames(
    reports: list[HourlyReport], station: int, key: bytes, seq0: int = 1
) -> list[bytes]:
    """Raw frames (no COBS) of the reports, sequence numbers from ``seq0``."""
    return [
        encode_frame(DATA, station, seq0 + i, r.time, r.report(), key)
        for i, r in enumerate(reports)
    ]


def hydrolink_wire(raw_frames: list[bytes]) -> list[bytes]:
    """Each frame as sent: COBS plus the 0x00 delimiter."""
    return [wrap(raw) for raw in raw_frames]


def day_after(d: datetime, n: int = 1) -> datetime:
    return d + timedelta(days=n)


if __name__ == "__main__":
    print("bench/common.py: shared helpers for the benchmarks, nothing to measure")
