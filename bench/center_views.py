"""How fast ``hydrolink report`` and ``hydrolink plot`` answer over one station-year of 5-minute data.

One station, 2026 in full: 105,120 five-minute slots of rain and water level (210,240
rows, a seeded storm every few days, 0.5 % of the slots missing) in a SQLite center
store, written once through the store's own upsert. Then, each timed as the best of
``--repeat`` runs, in this process:

* ``report``: ``hydrolink report --day`` for one rain day (what the dispatcher runs each
  morning; the store holds the whole year), against the floor of a bare SQL read of the
  same day's rows with ``sqlite3``;
* ``plot``: ``hydrolink plot`` of the whole year to a PNG, against the bare SQL read of
  the year's rows (the plot's own reads and drawing are the rest);
* ``export csv``: the year as CSV, for scale.

Target: report and plot each under 2 s; the script exits 1 if either misses it.
``--pg URL`` runs the same against a PostgreSQL database (an empty one is filled).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import math
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host_tools.center import ObsRow, open_store  # noqa: E402
from host_tools.cli import main  # noqa: E402
from host_tools.registry import load_registry  # noqa: E402

STATION = 1001
IV = 300
YEAR0 = int(dt.datetime(2025, 12, 31, 16, 0, tzinfo=dt.UTC).timestamp())  # 2026-01-01 00:00 +08
SLOTS = 365 * 86400 // IV
TARGET_S = 2.0
REGISTRY = f"""
[[station]]
id = {STATION}
name = "Gaoqiao"
key = "{'ab' * 32}"
sensors = ["rain", "water_level"]
timezone = "Asia/Shanghai"
kind = "reservoir"
stages = {{ warning = 68.0, guarantee = 71.5, flood_limit = 70.0 }}
"""


def year_rows(seed: int = 7) -> list[ObsRow]:
    """A seeded year of rain and level (storms raise the level), 0.5 % of slots missing."""
    rnd = random.Random(seed)
    rows: list[ObsRow] = []
    level = 68.0
    storm = 0
    for k in range(1, SLOTS + 1):
        t = YEAR0 + k * IV
        if storm == 0 and rnd.random() < 1 / 900:
            storm = rnd.randint(24, 200)
        rain = round(rnd.uniform(0.0, 1.0), 1) if storm else 0.0
        storm = max(0, storm - 1)
        level += rain * 0.012 - (level - 68.0) * 0.0015 + 0.0002 * math.sin(k / 288 * 2 * math.pi)
        if rnd.random() < 0.005:
            continue
        rows.append(ObsRow(STATION, "rain", t, rain, "good", t + 10))
        rows.append(ObsRow(STATION, "water_level", t, round(level, 3), "good", t + 10))
    return rows


COLD: dict[str, float] = {}


def best(fn: Callable[[], object], repeat: int, name: str = "") -> float:
    """The fastest of ``repeat`` runs; the first (imports included) is kept in COLD[name]."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    COLD[name] = times[0]
    return min(times)


def quiet(argv: list[str]) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    if code != 0:
        raise SystemExit(f"hydrolink {argv[0]} failed with {code}")


def bare_read(url: str, start: int, end: int) -> Callable[[], object]:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]

        def read() -> object:
            with sqlite3.connect(path) as conn:
                return conn.execute(
                    "SELECT element, time, value, quality FROM observations WHERE station = ? "
                    "AND element IN ('rain', 'water_level') AND time > ? AND time <= ? ORDER BY element, time",
                    (STATION, start, end)).fetchall()
        return read
    import psycopg

    def read_pg() -> object:
        with psycopg.connect(url) as conn:
            return conn.execute(
                "SELECT element, time, value, quality FROM observations WHERE station = %s "
                "AND element IN ('rain', 'water_level') AND time > %s AND time <= %s ORDER BY element, time",
                (STATION, start, end)).fetchall()
    return read_pg


def run(url: str, work: Path, repeat: int) -> bool:
    store = open_store(url)
    reg = work / "stations.toml"
    reg.write_text(REGISTRY)
    reg.chmod(0o600)  # it holds a (dummy) station key
    store.sync_stations(load_registry(reg).stations.values())
    if store.count_observations(STATION) == 0:
        t = time.perf_counter()
        store.upsert_observations(year_rows())
        print(f"  filled {store.count_observations(STATION):,} rows in {time.perf_counter() - t:.1f} s")
    store.close()
    day = dt.date(2026, 1, 1) + dt.timedelta(days=200)
    day0 = YEAR0 + 200 * 86400 + 8 * 3600  # its rain day starts at 08:00 local
    out = work / "year.png"

    t_report = best(lambda: quiet(["report", "--db", url, "--day", day.isoformat()]), repeat, "report")
    t_day_sql = best(bare_read(url, day0, day0 + 86400), repeat)
    t_plot = best(lambda: quiet(["plot", "--db", url, "--station", str(STATION), "--from", "2026-01-01",
                                 "--to", "2026-12-31", "--out", str(out)]), repeat, "plot")
    t_year_sql = best(bare_read(url, YEAR0, YEAR0 + SLOTS * IV), repeat)
    t_csv = best(lambda: quiet(["export", "--db", url, "--station", str(STATION), "--from", "2026-01-01",
                                "--to", "2026-12-31", "--format", "csv"]), 1)
    print(f"  report --day {day}:        {t_report:6.3f} s   bare SQL read of the day's rows "
          f"{t_day_sql * 1000:7.1f} ms  (x{t_report / t_day_sql:,.0f})")
    print(f"  plot of the year:            {t_plot:6.3f} s   bare SQL read of the year's rows "
          f"{t_year_sql:7.3f} s   (x{t_plot / t_year_sql:.1f})   first run (imports matplotlib) "
          f"{COLD['plot']:.3f} s")
    print(f"  export csv of the year:      {t_csv:6.3f} s")
    ok = t_report < TARGET_S and t_plot < TARGET_S
    print(f"  target: report and plot under {TARGET_S:.0f} s: {'met' if ok else 'MISSED'}")
    return ok


def cli() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--pg", metavar="URL", help="also run on this PostgreSQL database")
    a = p.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("SQLite:")
        ok &= run(f"sqlite:///{work}/center.db", work, a.repeat)
        if a.pg:
            print("PostgreSQL:")
            ok &= run(a.pg, work, a.repeat)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(cli())
