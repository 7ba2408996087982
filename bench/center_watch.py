"""How long one watch tick takes per station (gaps, center alarms, QC) over station-years of data.

``--stations N`` stations (4), each with one year of 5-minute rain, water level and
battery (315,360 rows per station, 0.1 % of the slots missing, hourly reports) in a
SQLite center store. Then, in this process, with time passed in:

* the first tick (it scans the 2-day horizon and QC-flags it);
* an idle tick (nothing new arrived), best of ``--repeat``;
* a tick after one new hourly report per station, best of ``--repeat``;

against the floor measured in the same run: the bare ``sqlite3`` reads of the same index
ranges that a tick reads (per station and element, the last day of readings and of
received stamps), with no logic. The receiver ticks every 10 s, so the target is a tick
under 10 ms per station (1,000 stations in one period); the script exits 1 if the idle
tick misses it.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host_tools.center import ObsRow, open_store  # noqa: E402
from host_tools.center.watch import Watch  # noqa: E402
from host_tools.registry import parse_registry  # noqa: E402

IV = 300
SLOTS = 365 * 86400 // IV
T0 = 1_767_225_600  # 2026-01-01T00:00Z
ELEMENTS = ("rain", "water_level", "battery_voltage")
TARGET_MS = 10.0


def registry_text(stations: list[int]) -> str:
    return "\n".join(
        f'[[station]]\nid = {s}\nname = "s{s}"\nkey = "{"ab" * 32}"\n'
        'sensors = ["rain", "water_level", "battery_voltage"]\n'
        "stages = { warning = 68.0, flood_limit = 70.0 }\n"
        "alarms = { rain_1h_mm = 30.0, rain_3h_mm = 50.0, battery_low_v = 11.8 }\n"
        "qc = { water_level = { min = 60.0, max = 80.0, step = 0.5, flat_hours = 6.0 } }\n"
        for s in stations)


def rows(station: int, first: int, last: int, rnd: random.Random) -> list[ObsRow]:
    out = []
    for i in range(first, last):
        if rnd.random() < 0.001:
            continue
        t = T0 + i * IV
        received = t - t % 3600 + 3600 + 2.0  # sent with the next hourly report
        level = 66.0 + 1.5 * rnd.random()
        out += [ObsRow(station, "rain", t, round(rnd.random() * 0.4, 1), "good", received),
                ObsRow(station, "water_level", t, round(level, 3), "good", received),
                ObsRow(station, "battery_voltage", t, 12.6, "good", received)]
    return out


def best(fn: Callable[[], object], repeat: int) -> float:
    out = float("inf")
    for _ in range(repeat):
        a = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - a)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stations", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    stations = list(range(1001, 1001 + a.stations))
    rnd = random.Random(11)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "center.db"
        store = open_store(f"sqlite:///{path}")
        t = time.perf_counter()
        for s in stations:
            store.upsert_observations(rows(s, 0, SLOTS - 12, rnd))
        print(f"filled {a.stations} station-years ({store.count_observations():,} rows) "
              f"in {time.perf_counter() - t:.1f} s")
        reg = parse_registry(registry_text(stations))
        now = float(T0 + (SLOTS - 12) * IV + 60)
        watch = Watch(store, reg, lambda: now)
        first = best(lambda: watch.tick(now), 1)
        now += 10

        def idle() -> None:
            nonlocal now
            now += 10
            watch.tick(now)

        idle_s = best(idle, a.repeat)
        fresh: list[float] = []
        for k in range(a.repeat):
            new = [r for s in stations for r in rows(s, SLOTS - 12 + k, SLOTS - 11 + k, rnd)]
            store.upsert_observations(new)
            watch.on_batch(new)
            now += 300
            t = time.perf_counter()
            watch.tick(now)
            fresh.append(time.perf_counter() - t)
        store.close()

        db = sqlite3.connect(path)

        def floor() -> None:
            since = int(now - 86400)
            for s in stations:
                for e in ELEMENTS:
                    db.execute("SELECT time, value, quality, flags FROM observations WHERE station = ?"
                               " AND element = ? AND time >= ? AND time <= ?", (s, e, since, int(now))).fetchall()
                    db.execute("SELECT DISTINCT received FROM observations WHERE station = ? AND element = ?"
                               " AND time >= ?", (s, e, since)).fetchall()

        floor_s = best(floor, a.repeat)
        db.close()
    n = a.stations
    per = idle_s / n * 1000
    print(f"first tick: {first:.3f} s ({first / n * 1000:.0f} ms per station)")
    print(f"idle tick: {per:.2f} ms per station; floor (bare reads of the same ranges): "
          f"{floor_s / n * 1000:.2f} ms per station; ratio floor/tick {floor_s / idle_s:.2f}")
    print(f"tick after a new report per station: {min(fresh) / n * 1000:.2f} ms per station")
    print(f"target: idle tick under {TARGET_MS:.0f} ms per station: {'met' if per < TARGET_MS else 'MISSED'}")
    return 0 if per < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
