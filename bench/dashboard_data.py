"""The dashboard bench's database: 1,000 stations x a year of 5-minute rain and level,
hourly status, some active alarms, in the center store's schema (with its hourly rollup),
generated once with one ``INSERT ... SELECT`` over a recursive CTE per station and element and cached under
``build/`` (``bench/dashboard.py`` measures the pages over it)."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

START = 1_735_689_600  # 2025-01-01T00:00Z
STEP = 300
PASSWORD = "bench-password-1"


def db_path(stations: int, days: int) -> Path:
    return ROOT / "build" / "bench-dashboard" / f"center-{stations}x{days}d.db"


def registry_rows(stations: int) -> list[tuple[Any, ...]]:
    rows = []
    for s in range(1, stations + 1):
        rows.append((s, f"Station {s:04d}", "reservoir" if s % 3 else "river", 30.0 + s / 1000,
                     120.0 + s / 1000, None, "Asia/Shanghai", 300, 8,
                     json.dumps(["rain", "water_level"]),
                     json.dumps({"warning": 66.5 + (s % 10) * 0.3, "flood_limit": 66.2 + (s % 10) * 0.3}),
                     json.dumps({"rain_1h_mm": 30.0, "battery_low_v": 11.8}), "{}", "", START))
    return rows


def generate(path: Path, stations: int, days: int) -> float:
    """Build the database at ``path`` (the store's schema); returns the seconds it took."""
    from host_tools.center import rollup
    from host_tools.center.store import open_store
    from host_tools.dashboard import users

    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", ".tmp", ".tmp-wal", ".tmp-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    tmp = Path(str(path) + ".tmp")
    t0 = time.monotonic()
    store = open_store(f"sqlite:///{tmp}")
    users.add_user(store.db, "bench", "viewer", PASSWORD)
    store.close()
    db = sqlite3.connect(tmp, isolation_level=None)
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-1000000")
    db.executemany("INSERT INTO stations VALUES (" + ", ".join("?" * 15) + ")", registry_rows(stations))
    n = days * 86400 // STEP
    end = START + n * STEP
    level = ("65.0 + (? % 10) * 0.3 + abs(((i * 7 + ? * 131) % 2000) - 1000) / 1000.0"
             " + CASE WHEN ? = 1 AND i > ? - 36 THEN 1.2 ELSE 0.0 END")
    rain = "CASE WHEN (i / 12 + ?) % 53 < 3 THEN ((i * 31 + ?) % 40) / 10.0 ELSE 0.0 END"
    for s in range(1, stations + 1):
        db.execute("BEGIN")
        for element, expr, params in (("rain", rain, (s, s)), ("water_level", level, (s, s, int(s % 50 == 0), n))):
            db.execute(
                "INSERT INTO observations (station, element, time, value, quality, flags, received, source)"
                " WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?)"
                f" SELECT ?, ?, ? + 300 * i, {expr}, 'good', '', ? + 300 * i + 20, 'station' FROM k",
                (n, s, element, START, *params, START))
        db.execute(
            "INSERT INTO status (station, time, seq, received, battery_v, clock_offset_s, queue_depth)"
            " WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?)"
            " SELECT ?, ? + 3600 * i, i, ? + 3600 * i + 20, 12.6 - (i % 24) * 0.02, 0.5, 0 FROM k",
            (days * 24, s, START, START))
        if s % 50 == 0:  # every 50th station: above its stage for the last 3 hours
            db.execute("INSERT INTO center_alarms (station, kind, state, raised, value, threshold, detail)"
                       " VALUES (?, 'stage_warning', 'active', ?, 68.0, 67.0, 'bench')", (s, end - 10800))
        db.execute("COMMIT")
        if s % 50 == 0:
            print(f"  generated {s}/{stations} stations ({time.monotonic() - t0:.0f} s)", file=sys.stderr)
    db.execute("INSERT INTO dashboard_settings VALUES ('bench', ?)",
               (json.dumps({"stations": stations, "days": days, "end": end}),))
    db.close()
    store = open_store(f"sqlite:///{tmp}")  # the hourly rollup of what was written around the store
    with store.transaction():
        rollup.rebuild(store.db)
    store.close()
    tmp.rename(path)
    return time.monotonic() - t0


def bench_meta(path: Path) -> dict[str, int] | None:
    if not path.exists():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT value FROM dashboard_settings WHERE key = 'bench'").fetchall()
    except sqlite3.Error:
        return None
    finally:
        db.close()
    return json.loads(rows[0][0]) if rows else None
