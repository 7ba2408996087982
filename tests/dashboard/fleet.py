"""A small fleet in a center store, one station in each state, for the dashboard tests.

Written through the store's own write API (sync_stations, upsert_observations,
store_batch, add_center_alarm), the way the receiver and the watcher write.
"""

from __future__ import annotations

import math
from pathlib import Path

from host_tools.center.model import Batch, StatusRow
from host_tools.center.store import Store, as_rows, open_store
from host_tools.registry import load_registry

KEY = "ab" * 32
NOW = 1_780_000_000 - 1_780_000_000 % 300  # 2026-05-28T20:25Z, a whole 5 minutes
STEP = 300

# id: (name, what its data does, expected state)
STATIONS = {
    1001: ("高桥水库 Gaoqiao", "above the flood-limit stage, center alarm active", "alarm"),
    1002: ("西桥 Xiqiao", "reporting", "ok"),
    1003: ("山北 Shanbei", "nothing for 3 hours", "silent"),
    1004: ("东溪 Dongxi", "last reading 10 minutes ago", "late"),
    1005: ("南山 Nanshan", "level sensor fault", "fault"),
    1006: ("北岭 Beiling", "battery 11.2 V", "battery"),
}
EXPECTED = {sid: s[2] for sid, s in STATIONS.items()}


def registry_toml() -> str:
    out = []
    for sid, (name, _, _) in STATIONS.items():
        out.append(f'''[[station]]
id = {sid}
name = "{name}"
key = "{KEY}"
sensors = ["rain", "water_level", "battery_voltage"]
timezone = "Asia/Shanghai"
stages = {{ action = 66.5, warning = 68.0, flood_limit = 70.0, guarantee = 71.5 }}
alarms = {{ rain_1h_mm = 30.0, battery_low_v = 11.8, silent_intervals = 3 }}
''')
    return "\n".join(out)


def level_at(sid: int, t: int, now: int = NOW) -> float:
    """A smooth daily wave; station 1001 peaks above the 70 m flood limit at the end."""
    base = 70.2 if sid == 1001 else 64.0 + (sid % 7) * 0.3
    return round(base + 0.8 * math.sin(2 * math.pi * (t - now) / 86400 + sid), 3)


def rain_at(sid: int, t: int, now: int = NOW) -> float:
    hour = (t - now) // 3600
    return 1.2 if sid in (1001, 1002) and -6 <= hour < -2 else 0.0


def fill(url: str, tmp: Path, hours: int = 24, now: int = NOW) -> Path:
    """Create the store at ``url`` with the fleet; returns the registry file."""
    reg_path = tmp / "stations.toml"
    reg_path.write_text(registry_toml(), encoding="utf-8")
    reg = load_registry(reg_path)
    store = open_store(url)
    try:
        store.sync_stations(reg.stations.values())
        for sid in STATIONS:
            write_station(store, sid, hours, now)
        store.add_center_alarm(1001, "stage_flood_limit", now - 3 * 3600, level_at(1001, now - 3 * 3600, now),
                               70.0, "water level reached flood_limit stage 70.000 m")
        cleared = store.add_center_alarm(1002, "rain_1h", now - 5 * 3600, 31.0, 30.0, "rain 31 mm in 1 h")
        store.clear_center_alarm(cleared, now - 4 * 3600, 12.0)
    finally:
        store.close()
    return reg_path


def write_station(store: Store, sid: int, hours: int, now: int = NOW) -> None:
    last = {1003: now - 3 * 3600, 1004: now - 600}.get(sid, now)
    times = list(range(now - hours * 3600 + STEP, last + 1, STEP))
    level = [(t, level_at(sid, t, now), "good") for t in times]
    if sid == 1005:
        level[-1] = (times[-1], None, "fault")
    values = {
        "water_level": level,
        "rain": [(t, rain_at(sid, t, now), "good") for t in times],
        "battery_voltage": [(t, 11.2 if sid == 1006 else 12.6, "good") for t in times],
    }
    rows = []
    for element, vals in values.items():
        rows += [r._replace(received=r.time + 20) for r in as_rows({element: vals}, sid, 0)]
    store.upsert_observations(rows)
    status = [StatusRow(sid, t, i, t + 20, 11.2 if sid == 1006 else 12.6, 20.0, 0.4 + 0.1 * (i % 3),
                        0, None, 3600 * i, "1.0", "power_on", 40000, 100000, None, None)
              for i, t in enumerate(range(times[0], last + 1, 3600))]
    store.store_batch(Batch(status=status))
