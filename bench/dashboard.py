"""Dashboard pages under load: 1,000 stations with a year of 5-minute data each, on SQLite.

Measures, in one run, with ``--clients`` concurrent clients (default 20):

* the overview page ``/`` and the station page ``/station/N`` for 24 h, 7 d and 30 d
  (random stations) served over HTTP on loopback by ``uvicorn`` (one process, as
  ``hydrolink dashboard`` runs), each client signed in with its own session: p50 and p99;
* the floor: the bare SQL statements each page needs (the statements the pages run,
  captured from the page's own read function, straight on ``sqlite3`` with one connection
  per client thread), with the same concurrency: p50 and p99.

While the station pages are measured the server has the dispatch room's other work too:
an overview screen polling it every 1.5 s (so the overview is recomputed every 2 s) and
readings arriving (7 a second, one transaction a second: 1,000 stations x 2 elements
every 5 minutes), which also makes every reader's SQLite page cache start afresh. Before
each station row one untimed pass runs the floor's statements for the row's stations, so
the pages and their floor read equally warm pages.

The overview is computed once per ``ttl`` (2 s) for every viewer (single flight), so its
p99 is that of serving the shared table, and the time one recomputation takes is printed
too (it bounds how late a new reading shows up). Target: p99 <= 200 ms for the overview
and the station page over 24 h, 7 d and 30 d (the long spans read the hourly rollup).

The database (1,000 x 105,120 readings of rain and of water level, hourly status frames,
some active alarms; about 17 GB) is generated once with one ``INSERT ... SELECT`` over a
recursive CTE per station and element, and cached under ``build/`` between runs.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.dashboard_data import PASSWORD, STEP, bench_meta, db_path, generate  # noqa: E402

TARGET_P99_S = 0.200


# ---------------------------------------------------------------- the server (a subprocess)


def bench_app() -> Any:
    """The app of one server process, on the data's clock (``--workers``: one per process)."""
    import logging

    from host_tools.dashboard.app import create_app

    path, now = os.environ["HYDROLINK_BENCH_DB"], float(os.environ["HYDROLINK_BENCH_NOW"])
    logging.getLogger("hydrolink.dashboard").setLevel(logging.ERROR)  # the clients' logins
    return create_app(f"sqlite:///{path}", clock=lambda: now, login_limit=10_000)


def serve(path: Path, port: int, now: float, workers: int) -> None:
    import uvicorn

    os.environ["HYDROLINK_BENCH_DB"], os.environ["HYDROLINK_BENCH_NOW"] = str(path), str(now)
    uvicorn.run("bench.dashboard:bench_app", factory=True, workers=workers, host="127.0.0.1",
                port=port, log_level="warning", access_log=False, timeout_keep_alive=60)


# ---------------------------------------------------------------- clients


class Client:
    """One signed-in browser: a keep-alive connection and a session cookie."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookie = ""

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str, dict[str, str]]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.conn.request(method, path, body=body, headers=headers)
            r = self.conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self.conn.close()  # the server closed an idle keep-alive connection: open another
            self.conn.request(method, path, body=body, headers=headers)
            r = self.conn.getresponse()
        text = r.read().decode()
        got = dict(r.getheaders())
        m = re.search(r"hydrolink_session=([^;]+)", got.get("set-cookie", ""))
        if m:
            self.cookie = f"hydrolink_session={m.group(1)}"
        return r.status, text, got

    def login(self) -> None:
        from urllib.parse import urlencode

        _, page, _ = self.request("GET", "/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token
        status, _, _ = self.request("POST", "/login", urlencode(
            {"csrf_token": token.group(1), "user": "bench", "password": PASSWORD, "next": "/"}))
        assert status == 303, status


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def run_clients(clients: int, per_client: int, work: Any) -> list[float]:
    """``work(i, k)`` is one timed unit; returns every unit's seconds."""
    times: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def one(i: int) -> None:
        ctx = work.setup(i)
        start.wait()
        mine = []
        for k in range(per_client):
            t0 = time.perf_counter()
            work.unit(ctx, i, k)
            mine.append(time.perf_counter() - t0)
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times


class Pages:
    def __init__(self, port: int, path_for: Any) -> None:
        self.port, self.path_for = port, path_for

    def setup(self, i: int) -> Client:
        c = Client(self.port)
        c.login()
        c.request("GET", self.path_for(i, 0))  # warm: the first overview is computed, not served
        return c

    def unit(self, c: Client, i: int, k: int) -> None:
        status, body, _ = c.request("GET", self.path_for(i, k))
        assert status == 200 and len(body) > 1000, status


class Floor:
    """The bare SQL of a page, on one sqlite3 connection per client."""

    def __init__(self, path: Path, statements: Any) -> None:
        self.path, self.statements = path, statements

    def setup(self, i: int) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)

    def warm(self, pages: Any) -> None:
        """Run each page's statements once, untimed (the pages and the floor then read the
        same warm pages)."""
        db = self.setup(0)
        for statements in pages:
            for sql, params in statements:
                db.execute(sql, params).fetchall()
        db.close()

    def unit(self, db: sqlite3.Connection, i: int, k: int) -> None:
        for sql, params in self.statements(i, k):
            db.execute(sql, params).fetchall()


def capture_sql(path: Path, fn: Any) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements (and parameters) ``fn(store)`` runs, as the pages run them."""
    from host_tools.center.store import open_store

    store = open_store(f"sqlite:///{path}")
    seen: list[tuple[str, tuple[Any, ...]]] = []
    query = store.db.query

    def recording(sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        seen.append((sql, tuple(params)))
        return query(sql, params)

    store.db.query = recording  # type: ignore[method-assign]
    try:
        fn(store)
    finally:
        store.close()
    return seen


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stations", type=int, default=1000)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--requests", type=int, default=20, help="per client and page")
    p.add_argument("--workers", type=int, default=1, help="server processes (hydrolink dashboard --workers)")
    p.add_argument("--serve", nargs=4, metavar=("DB", "PORT", "NOW", "WORKERS"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.serve:
        serve(Path(a.serve[0]), int(a.serve[1]), float(a.serve[2]), int(a.serve[3]))
        return 0

    path = db_path(a.stations, a.days)
    meta = bench_meta(path)
    if meta is None:
        print(f"generating {a.stations} stations x {a.days} days of 5-minute rain and level "
              f"into {path.relative_to(ROOT)} (cached for later runs)", file=sys.stderr)
        took = generate(path, a.stations, a.days)
        meta = bench_meta(path)
        assert meta is not None
        print(f"generated in {took:.0f} s, {path.stat().st_size / 1e9:.1f} GB", file=sys.stderr)
    now = float(meta["end"]) + 60
    rows_per_element = a.days * 86400 // STEP

    # one overview computation, timed: cold (report periods learned too), then as the
    # cache recomputes it every 2 s; the SQL of the latter is the overview's floor
    from host_tools.dashboard.database import Periods, overview_facts
    from host_tools.dashboard.overview import build_rows

    periods = Periods()
    t0 = time.perf_counter()
    capture_sql(path, lambda s: build_rows(overview_facts(s, int(now), periods), now))
    cold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ov_sql = capture_sql(path, lambda s: build_rows(overview_facts(s, int(now), periods), now))
    build_s = time.perf_counter() - t0
    rng = random.Random(7)
    picks = [[rng.randint(1, a.stations) for _ in range(a.requests)] for _ in range(a.clients)]

    metas: dict[int, Any] = {}
    capture_sql(path, lambda s: metas.update({m.station: m for m in s.stations()}))
    from host_tools.dashboard.stationdata import read_page
    from host_tools.dashboard.views import SPANS

    def station_sql(station: int, span: str) -> list[tuple[str, tuple[Any, ...]]]:
        # what a station page reads per request (its metadata is cached)
        return capture_sql(path, lambda s: read_page(s, metas[station], int(now) - SPANS[span], int(now)))

    port = _free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(path), str(port), str(now),
                               str(a.workers)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    load = [os.getloadavg()]
    try:
        _wait_listening(port, server)
        n = a.clients * a.requests
        results = {}
        results["overview"] = run_clients(a.clients, a.requests, Pages(port, lambda i, k: "/"))
        results["overview floor"] = run_clients(a.clients, a.requests, Floor(path, lambda i, k: ov_sql))
        with DispatchRoom(port, path, int(now), a.stations):
            for span in SPANS:
                sql = {s: station_sql(s, span) for s in {x for row in picks for x in row}}
                Floor(path, None).warm(sql.values())
                results[f"station {span}"] = run_clients(
                    a.clients, a.requests, Pages(port, lambda i, k, span=span: f"/station/{picks[i][k]}?span={span}"))
                results[f"station {span} floor"] = run_clients(
                    a.clients, a.requests, Floor(path, lambda i, k, sql=sql: sql[picks[i][k]]))
    finally:
        server.terminate()
        server.wait(10)
    load.append(os.getloadavg())

    print(f"dashboard over {a.stations} stations x {rows_per_element:,} readings x 2 elements "
          f"(SQLite, {path.stat().st_size / 1e9:.1f} GB), {a.workers} server process(es), "
          f"{a.clients} concurrent clients, {n} requests per row")
    print(f"  one overview computation (all {a.stations} stations): {build_s * 1000:.0f} ms "
          f"({cold_s * 1000:.0f} ms the first time, learning each station's report period)")
    print(f"  load average (1, 5, 15 min) at the start {' '.join(f'{x:.2f}' for x in load[0])}, "
          f"at the end {' '.join(f'{x:.2f}' for x in load[1])}")
    print(f"  {'':<20} {'p50 ms':>8} {'p99 ms':>8}")
    for name, xs in results.items():
        print(f"  {name:<20} {statistics.median(xs) * 1000:>8.1f} {pct(xs, 99) * 1000:>8.1f}")
    ok = True
    for page in ("overview", "station 24h", "station 7d", "station 30d"):
        p99, floor = pct(results[page], 99), pct(results[f"{page} floor"], 99)
        good = p99 <= TARGET_P99_S
        ok &= good
        verdict = f"target <= {TARGET_P99_S * 1000:.0f} ms: {'met' if good else 'MISSED'}"
        print(f"  {page}: p99 {p99 * 1000:.0f} ms ({verdict}), {p99 / floor:.2f} x its bare SQL's "
              f"p99 {floor * 1000:.0f} ms")
    return 0 if ok else 1


class DispatchRoom:
    """The server's other work while station pages are timed: an overview screen polling
    every 1.5 s, and 7 readings a second stored in one transaction a second (times after the
    pages' window, so what the pages show does not change)."""

    def __init__(self, port: int, path: Path, now: int, stations: int) -> None:
        self.port, self.path, self.now, self.stations = port, path, now, stations
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._poll), threading.Thread(target=self._write)]

    def __enter__(self) -> DispatchRoom:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def _poll(self) -> None:
        c = Client(self.port)
        c.login()
        version = ""
        while not self.stop.wait(1.5):
            status, _, headers = c.request("GET", f"/overview/table?v={version}")
            version = headers.get("X-Overview-Version", version) if status == 200 else version

    def _write(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        db.execute("PRAGMA synchronous=FULL")  # as the center's store commits
        rng = random.Random(11)
        written: list[tuple[int, str, int]] = []
        k = 0
        while not self.stop.wait(1.0):
            k += 1
            rows = [(rng.randint(1, self.stations), e, self.now + 300 * k,
                     0.0 if e == "rain" else 66.0 + rng.random(), self.now + k)
                    for e in ("rain", "water_level") for _ in range(4)][:7]
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO observations (station, element, time, value, quality, flags,"
                           " received, source) VALUES (?, ?, ?, ?, 'good', '', ?, 'station')"
                           " ON CONFLICT DO NOTHING", rows)
            db.execute("COMMIT")
            written += [r[:3] for r in rows]
        # the cached database as it was (each row by its key)
        db.executemany("DELETE FROM observations WHERE station = ? AND element = ? AND time = ?", written)
        db.execute("DELETE FROM obs_hourly WHERE hour > ?", (self.now,))  # what the dashboard rolled up
        db.execute("UPDATE obs_hourly_marks SET last = (SELECT MAX(rowid) FROM observations)"
                   " WHERE name = 'observations'")  # (SQLite hands the deleted rowids out again)
        db.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the dashboard server exited")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the dashboard server did not listen")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
