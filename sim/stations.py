"""The default stations of a simulated fleet: their kinds, configurations, inputs and truth.

Station 1 is the reservoir (level held by its spillway at the 70 m flood-limit level);
then river level stations and rain gauges alternate. All share the regional storms
(``sim.weather``); each sees them scaled and shifted. Every station has a rain gauge;
the river and reservoir stations a 4-20 mA level transducer. Sensor faults are drawn
from the seed (``faults=True``). :class:`Truth` keeps what really happened: the rain,
the level and the battery of every minute, and the alarm crossings they contain.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from sim import runoff, weather
from sim.faults import Battery, Fault
from sim.sensors import Weather

KEY_SEED = "hydrolink-sim-key"
BASE_ID = 1001
RECORD_S = 300
RAIN_ALARM_MM = 10.0  # firmware default: 10 mm in 30 min
RAIN_WINDOW_S = 1800
RAIN_HYST_MM = 2.0


@dataclass
class StationSpec:
    """One virtual station: identity, kind, firmware config, inputs."""

    sid: int
    name: str
    kind: str  # rain | river | reservoir
    key: bytes
    config: dict[str, Any]
    weather: Weather
    faults: list[Fault] = field(default_factory=list)
    level_alarm_mm: int | None = None

    def registry_toml(self) -> str:
        lines = [f"[[station]]\nid = {self.sid}\nname = \"{self.name}\"\nkey = \"{self.key.hex()}\"",
                 f"kind = \"{self.kind}\"", f"record_interval_s = {RECORD_S}"]
        if self.kind == "reservoir":
            lines.append("stages = { flood_limit = 70.0, warning = 70.3, guarantee = 71.5 }")
        elif self.kind == "river" and self.level_alarm_mm is not None:
            lines.append(f"stages = {{ warning = {self.level_alarm_mm / 1000:.3f} }}")
        lines.append("alarms = { rain_1h_mm = 30.0, battery_low_v = 11.8, silent_intervals = 3 }")
        return "\n".join(lines) + "\n"


def kinds(n: int) -> list[str]:
    """The kind of each of ``n`` stations: the reservoir first, then river / rain alternately."""
    out = ["reservoir"]
    while len(out) < n:
        out.append("river" if len(out) % 2 else "rain")
    return out[:n]


def fleet(n: int, days: float, seed: int, *, faults: bool = True, rain: list[float] | None = None,
          storm: weather.Storm | None = None) -> list[StationSpec]:
    """``n`` stations over ``days`` (plus a margin); ``rain``: one replayed series for all;
    ``storm``: a storm added to the regional ones (the demo's)."""
    horizon = days + 1
    regional = weather.storms(seed, horizon)
    if storm is not None:
        regional.append(storm)
    out = []
    for i, kind in enumerate(kinds(n)):
        sid = BASE_ID + i
        r = list(rain) if rain is not None else weather.station_rain(seed, sid, regional, horizon)
        out.append(_station(sid, i, kind, r, horizon, seed, faults))
    return out


def _station(sid: int, i: int, kind: str, rain: list[float], days: float, seed: int,
             faults: bool) -> StationSpec:
    rng = random.Random(f"station:{seed}:{sid}")
    key = random.Random(f"{KEY_SEED}:{sid}").randbytes(32)
    cfg: dict[str, Any] = {"station": sid, "key": key.hex(), "holdoff_s": 30, "rain_alarm_tenths": 100}
    level: list[float] | None = None
    alarm_mm: int | None = None
    if kind == "rain":
        cfg["level_sensor"] = "none"
        name = f"Rain gauge {i}"
    elif kind == "river":
        c = runoff.Catchment(area_km2=rng.uniform(60, 250), k_h=rng.uniform(1.5, 4.0))
        level = runoff.river_level(rain, c)
        base = level[0]
        alarm_mm = int(base + 600)
        cfg.update(level_4ma_mm=0, level_20ma_mm=10000, level_alarm_mm=alarm_mm)
        name = f"River {i}"
    else:
        level = runoff.reservoir_level(rain)
        alarm_mm = 70300
        cfg.update(level_4ma_mm=60000, level_20ma_mm=80000, level_alarm_mm=alarm_mm,
                   qc_level_min_mm=60000, qc_level_max_mm=80000)
        name = "Reservoir"
    battery = Battery(start_soc=rng.uniform(0.6, 0.9)).millivolts(rain)
    fl: list[Fault] = []
    stuck: list[tuple[int, int]] = []
    if faults and level is not None:
        fl.append(Fault("noise", 0, size=rng.choice((1.0, 2.0, 3.0))))
        if i % 4 == 1:
            fl.append(Fault("drift", int(days * 0.3 * 86_400_000), size=2.0))
        if i % 3 == 0:
            d = rng.uniform(0.5, max(0.6, days - 1.5)) * 86_400_000
            fl.append(Fault("spike", int(d), size=1500.0))
        if i % 5 == 3:
            d = int(rng.uniform(0.5, max(0.6, days - 1.5)) * 86_400_000)
            fl.append(Fault("flat", d, d + 3 * 3_600_000))
        if i % 5 == 4:
            d = int(rng.uniform(0.5, max(0.6, days - 1.5)) * 86_400_000)
            fl.append(Fault("open", d, d + 2 * 3_600_000))
    if faults and kind == "rain" and i % 4 == 2:
        d = int(rng.uniform(0.5, max(0.6, days - 1.5)) * 86_400_000)
        stuck.append((d, d + 1_800_000))
    w = Weather(seed=seed * 1000 + sid, days=days, rain_mm=rain, level_true=level,
                battery_true=battery, faults=fl, stuck=stuck)
    return StationSpec(sid, name, kind, key, cfg, w, fl, alarm_mm)


def fault_list(specs: list[StationSpec]) -> list[str]:
    """Every sensor fault injected, one line each."""
    out = []
    for s in specs:
        out += [f"{s.sid} level {f.describe()}" for f in s.faults]
        out += [f"{s.sid} rain switch stuck day {a / 86_400_000:.2f}-{b / 86_400_000:.2f}"
                for a, b in s.weather.stuck]
    return out
