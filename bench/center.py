"""The center's receiver: readings stored per second from a real Mosquitto, and its floor.

``--stations`` stations' hourly ``data`` reports (12 rain + 12 level values each, from
``common.simulate_day``, as JSON exactly as the gateway publishes them through
``host_tools.gateway.payload.frame_payload``) are published QoS 1 into a Mosquitto
started here while the consumer's persistent session is offline; then the consumer
connects and the clock runs from its CONNACK until the last reading is in (the broker
delivers the backlog as fast as the consumer takes it).

* **center**: ``hydrolink center`` (a subprocess of the real CLI) into SQLite (WAL, on
  disk) and into PostgreSQL (a server started here with ``initdb``/``pg_ctl``): every
  reading checked against its unique key, acknowledged after the commit.
* **floor**, same run, same messages: the slower of (a) a bare paho subscriber that only
  counts the messages (auto-ack) and (b) the bare bulk insert of the same rows with the
  same driver (``executemany`` of plain INSERTs on SQLite, binary ``COPY`` on
  PostgreSQL), in transactions of the center's batch size. Target: ≥ 50,000 readings/s
  and ≥ 0.5 of the floor, on each database.
* **two workers**: two ``--share`` workers into one PostgreSQL vs one (printed).

Each figure is the best of ``--repeat`` (3) interleaved rounds, so a load spike on a
shared machine spoils one round, not one figure. On a 2-core machine the broker, the
center and PostgreSQL share the cores. Exits 1 if a target is missed. Needs mosquitto and PostgreSQL (Debian packages).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from bench.common import STORM_DATE, hourly_reports, simulate_day  # noqa: E402
from host_tools.center.messages import convert_all  # noqa: E402
from host_tools.gateway.payload import encode_json, frame_payload  # noqa: E402
from protocol.codec import DATA, EPOCH_UNIX, Frame  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGET_RPS = 50_000
TARGET_RATIO = 0.5
BATCH = 500


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(pred: object, timeout: float, what: str, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"bench/center: timed out waiting for {what}")
        time.sleep(step)


def messages(stations: int, hours: int) -> list[tuple[str, bytes]]:
    """Hourly reports of ``stations`` stations, as the gateway publishes them."""
    out = []
    for s in range(stations):
        sid = 10_001 + s
        day = simulate_day(sid, STORM_DATE, storm=s % 2 == 0)
        for i, r in enumerate(hourly_reports(day, seed=sid)[:hours]):
            frame = Frame(DATA, sid, i + 1, r.time, r.report())
            doc = frame_payload(frame, name=f"station {sid}", received=EPOCH_UNIX + r.time + 0.3, link="tcp:x")
            out.append((f"hydrolink/v1/{sid}/obs", encode_json(doc)))
    return out


class Broker:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        conf = workdir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
                        "max_inflight_messages 0\nmax_queued_bytes 0\n"
                        + ("user root\n" if os.geteuid() == 0 else ""))
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait(self._up, 10, "mosquitto")

    def _up(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def client(port: int, cid: str, **kw: object) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5, **kw)  # type: ignore[arg-type]
    c.max_inflight_messages_set(2000)
    c.max_queued_messages_set(0)
    return c


def session(port: int, cid: str, topic: str) -> None:
    """Create a persistent session subscribed to ``topic``, then leave it offline."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    c = client(port, cid)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    done = threading.Event()
    c.on_subscribe = lambda *a: done.set()
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    c.subscribe(topic, qos=1)
    done.wait(10)
    c.disconnect()
    c.loop_stop()


def publish(port: int, msgs: list[tuple[str, bytes]]) -> None:
    c = client(port, f"bench-pub-{time.monotonic_ns()}")
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish(t, p, qos=1) for t, p in msgs]
    for i in infos:
        i.wait_for_publish(60)
    c.disconnect()
    c.loop_stop()


def bare_subscriber(port: int, msgs: list[tuple[str, bytes]]) -> float:
    """Messages/s of a subscriber that only counts (the MQTT half of the floor)."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    cid = f"bench-bare-{time.monotonic_ns()}"
    session(port, cid, "hydrolink/v1/+/obs")
    publish(port, msgs)
    got = [0]
    done = threading.Event()
    t0 = [0.0]

    def on_message(*_: object) -> None:
        got[0] += 1
        if got[0] == len(msgs):
            done.set()

    c = client(port, cid)
    c.on_message = on_message
    c.on_connect = lambda *a: t0.__setitem__(0, time.perf_counter())
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    done.wait(300)
    elapsed = time.perf_counter() - t0[0]
    c.disconnect()
    c.loop_stop()
    return len(msgs) / elapsed


def bare_insert(url: str, msgs: list[tuple[str, bytes]]) -> float:
    """Readings/s of the bare bulk insert of the messages' rows into a fresh table, same driver."""
    from host_tools.center import open_store

    open_store(url).close()  # the same schema, empty
    batches = []
    for i in range(0, len(msgs), BATCH):
        rows = convert_all(msgs[i:i + BATCH], time.time()).observations
        batches.append([tuple(r) for r in rows])
    n = sum(map(len, batches))
    cols = "(station, element, time, value, quality, received)"
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # as the center: durable before the ack
        t0 = time.perf_counter()
        for b in batches:
            conn.execute("BEGIN")
            conn.executemany(f"INSERT INTO observations {cols} VALUES (?, ?, ?, ?, ?, ?)", b)
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        conn.close()
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as pg:
            t0 = time.perf_counter()
            for b in batches:
                with pg.transaction(), pg.cursor() as cur, cur.copy(
                        f"COPY observations {cols} FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int8", "text", "int8", "float8", "text", "float8"])
                    for r in b:
                        copy.write_row(r)
            elapsed = time.perf_counter() - t0
    return n / elapsed


class Worker:
    """``hydrolink center`` as a subprocess; its CONNACK time read from its log."""

    def __init__(self, workdir: Path, db: str, port: int, cid: str, *extra: str) -> None:
        self.log = workdir / f"{cid}.log"
        self.args = [sys.executable, "-m", "host_tools.cli", "center", "--db", db, "--mqtt",
                     f"mqtt://127.0.0.1:{port}", "--client-id", cid, "--batch", str(BATCH), *extra]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)

    def lines(self, word: str) -> list[str]:
        return [ln for ln in self.log.read_text().splitlines() if word in ln] if self.log.exists() else []

    def connected_at(self) -> float:
        ts = self.lines("mqtt connected")[-1].split()[0]
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)


class Probe:
    """Reads the center's database while it works, on ONE connection and cheaply: a
    primary-key lookup of the backlog's last reading, then one ``COUNT(*)`` (a fresh
    connection and a full count every poll cost PostgreSQL a backend start and a scan,
    CPU the center shares on a 2-core machine)."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            self.conn: Any = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
            self.mark = "?"
        else:
            import psycopg

            self.conn = psycopg.connect(url, autocommit=True)
            self.mark = "%s"

    def has(self, key: tuple[int, str, int]) -> bool:
        m = self.mark
        return self.conn.execute(f"SELECT 1 FROM observations WHERE station = {m} AND element = {m}"
                                 f" AND time = {m}", key).fetchone() is not None

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM observations").fetchone()[0])

    def close(self) -> None:
        self.conn.close()


def stored_at(url: str, msgs: list[tuple[str, bytes]], readings: int, timeout: float) -> float:
    """When every reading was in the database (UNIX s): the last message's last reading is
    polled by its key, then the count confirms (several workers: until it is complete)."""
    last = convert_all(msgs[-1:], time.time()).observations[-1]
    probe = Probe(url)
    try:
        wait(lambda: probe.has((last[0], last[1], last[2])), timeout, "the last reading", step=0.01)
        end = time.time()
        if probe.count() < readings:  # several workers: the last message was not the last stored
            wait(lambda: probe.count() >= readings, timeout, "every reading", step=0.01)
            end = time.time()
        return end
    finally:
        probe.close()


def center_run(workdir: Path, url: str, port: int, msgs: list[tuple[str, bytes]], readings: int,
               workers: int = 1, tag: str = "") -> float:
    """Readings/s of ``workers`` center processes taking the backlog (``--share`` if several)."""
    extra = ("--share", f"g{tag}") if workers > 1 else ()
    ws = [Worker(workdir, url, port, f"center-{tag}-{i}", *extra) for i in range(workers)]
    for w in ws:  # first start: the sessions and subscriptions exist from now on
        w.start()
    wait(lambda: all(w.lines("mqtt subscribed") for w in ws), 60, "the center to subscribe")
    for w in ws:
        w.stop()
    publish(port, msgs)
    try:
        for w in ws:
            w.start()
        end = stored_at(url, msgs, readings, 600)
        wait(lambda: all(len(w.lines("mqtt connected")) >= 2 for w in ws), 10, "the log lines")
        start = min(w.connected_at() for w in ws)
    finally:
        for w in ws:
            w.stop()
    return readings / (end - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stations", type=int, default=500)
    ap.add_argument("--hours", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each figure is the best round (3)")
    ap.add_argument("--keep", metavar="DIR", help="keep databases and logs here")
    args = ap.parse_args()
    from tests.servers import Postgres, pg_available

    workdir = Path(args.keep or tempfile.mkdtemp(prefix="bench-center-"))
    workdir.mkdir(parents=True, exist_ok=True)
    msgs = messages(args.stations, args.hours)
    readings = len(convert_all(msgs, time.time()).observations)
    print(f"bench/center: {len(msgs):,} messages, {readings:,} readings ({args.stations} stations x "
          f"{args.hours} hourly reports x 24 values)")
    broker = Broker(workdir)
    missed = []
    reason = pg_available()
    pg = None if reason else Postgres().start()
    try:
        dbs: list[tuple[str, Callable[[str], str]]] = [("sqlite", lambda n: f"sqlite:///{workdir}/{n}.db")]
        if pg is not None:
            dbs.append(("postgresql", lambda n: pg.new_database()))
        else:
            print(f"  postgresql: skipped, {reason}")
            missed.append("postgresql (not installed)")
        best: dict[str, float] = {}

        def keep(key: str, value: float) -> None:
            best[key] = max(best.get(key, 0.0), value)

        for r in range(args.repeat):  # interleaved, best of each: a load spike hits one round
            keep("sub", bare_subscriber(broker.port, msgs) * readings / len(msgs))
            for name, new in dbs:
                keep(f"{name}.insert", bare_insert(new(f"floor{r}"), msgs))
                keep(f"{name}.center", center_run(workdir, new(f"center{r}"), broker.port, msgs, readings,
                                                  tag=f"{name}{r}"))
            if pg is not None:
                keep("one", center_run(workdir, pg.new_database(), broker.port, msgs, readings, 1, f"one{r}"))
                keep("two", center_run(workdir, pg.new_database(), broker.port, msgs, readings, 2, f"two{r}"))
        sub = best["sub"]
        print(f"  bare paho subscriber (counts only)    {sub:>10,.0f} readings/s")
        for name, _ in dbs:
            ins, got = best[f"{name}.insert"], best[f"{name}.center"]
            floor = min(sub, ins)
            ratio = got / floor
            ok = got >= TARGET_RPS and ratio >= TARGET_RATIO
            print(f"  {name + ': bare bulk insert':<37} {ins:>10,.0f} readings/s")
            print(f"  {name + ': hydrolink center':<37} {got:>10,.0f} readings/s = {ratio:.2f} x floor "
                  f"{floor:,.0f} (target >= {TARGET_RPS:,} and >= {TARGET_RATIO}) {'ok' if ok else 'MISSED'}")
            if not ok:
                missed.append(name)
        if pg is not None:
            one, two = best["one"], best["two"]
            print(f"  postgresql --share: 1 worker {one:,.0f}, 2 workers {two:,.0f} readings/s "
                  f"({two / one:.2f} x)")
    finally:
        broker.stop()
        if pg is not None:
            pg.remove()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if missed:
        print(f"bench/center: targets missed: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
