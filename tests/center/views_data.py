"""A small store filled for the views tests: two stations, one rain day, a gap, a revision."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

from host_tools.center import ObsRow, Store
from host_tools.registry import load_registry

KEY = "ab" * 32
REGISTRY = f"""
[[station]]
id = 1001
name = "Gaoqiao 高桥"
key = "{KEY}"
sensors = ["rain", "water_level", "battery_voltage"]
timezone = "Asia/Shanghai"
location = {{ lat = 29.871, lon = 119.642 }}
kind = "reservoir"
stages = {{ warning = 68.0, guarantee = 71.5, flood_limit = 70.0 }}

[[station]]
id = 1002
name = "Xiacun"
key = "{KEY}"
sensors = ["rain", "water_level"]
timezone = "Asia/Shanghai"
kind = "river"
record_interval_s = 600
stages = {{ warning = 12.0, guarantee = 14.0 }}
"""

DAY = dt.date(2026, 7, 14)
D0 = int(dt.datetime(2026, 7, 14, 0, 0, tzinfo=dt.UTC).timestamp())  # 08:00 Asia/Shanghai
IV = 300
GAP = range(D0 + 100 * IV, D0 + 112 * IV, IV)  # one hour without level or rain at station 1001


def rain_mm(k: int) -> float:
    """Rain of slot k (ending at D0 + k*IV): a storm from slot 40 to 70."""
    return round(0.5 * (1 + (k % 5)), 1) if 40 <= k < 70 else 0.0


def level_m(k: int) -> float:
    return round(69.0 + 1.5 * math.sin(k / 288 * 2 * math.pi), 3)


def fill(store: Store, tmp_path: Path) -> None:
    reg = tmp_path / "stations.toml"
    reg.write_text(REGISTRY, encoding="utf-8")
    reg.chmod(0o600)
    store.sync_stations(load_registry(reg).stations.values())
    rows: list[ObsRow] = []
    for k in range(1, 289):  # the rain day 2026-07-14: 08:05 .. 08:00 next morning
        t = D0 + k * IV
        if t in GAP:
            continue
        rows.append(ObsRow(1001, "rain", t, rain_mm(k), "good", t + 20))
        rows.append(ObsRow(1001, "water_level", t, level_m(k), "good", t + 20))
    rows.append(ObsRow(1001, "battery_voltage", D0 + 3600, 12.4, "good", D0 + 3620))
    rows.append(ObsRow(1001, "battery_voltage", D0 + 7200, 11.9, "good", D0 + 7220))
    for k in range(1, 145):  # station 1002: 10-minute data
        t = D0 + k * 600
        rows.append(ObsRow(1002, "rain", t, 0.2 if k < 10 else 0.0, "good", t + 5))
        rows.append(ObsRow(1002, "water_level", t, 11.0 + k / 100, "good" if k != 50 else "fault", t + 5))
    store.upsert_observations(rows)
    # a revision: the reading at slot 10 comes back changed
    store.upsert_observations([ObsRow(1001, "water_level", D0 + 10 * IV, 70.5, "suspect", D0 + 99999)],
                              who="qc", why="spike")
