"""A fleet run: N virtual boards, the real gateway, a broker and the center, in one loop.

Each board (the real firmware on the MicroPython VM, ``sim.vboard``) runs on its own
thread in lockstep with its VM; its link (``sim.vlink``) hands what it writes to the
production gateway (``sim.gwhost``) at the board's virtual time. Boards run freely
between barriers: fleet-wide events (a broker outage, a gateway kill -9 and restart, a
gateway outage, the end of each simulated day for the progress line) happen when every
board has reached their time, so a run is a function of its seed whatever the threads
do. After the last day the boards run ``drain_h`` more hours on a clean link so that
what is still queued can go; readings after the last day are not counted.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from host_tools.registry import load_registry
from protocol.codec import EPOCH_UNIX
from sim import weather
from sim.broker import Broker
from sim.center_sink import CenterSink
from sim.gwhost import GatewayHost
from sim.mpy import BuildError, build_mpy
from sim.stations import StationSpec, fleet
from sim.vboard import SimError, VBoard
from sim.vlink import Outage, VLink

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
T0 = 52_012_800  # hydrolink s at virtual 0: 2025-08-25 00:00 UTC (day-aligned)


@dataclass
class Options:
    stations: int = 6
    days: float = 3.0
    seed: int = 1
    loss: float = 0.0
    ber: float = 0.0
    latency_ms: int = 150
    outages: list[Outage] = field(default_factory=list)
    power_cuts: int = 0
    gateway_restarts: int = 0
    mqtt: str | None = None
    workdir: Path | None = None
    faults: bool = True
    rain: list[float] | None = None  # one replayed series for every station
    storm: weather.Storm | None = None
    drain_h: float = 4.0
    clock_error_s: Callable[[float], float] | None = None  # the gateway clock's error
    progress: bool = True
    broker: str = "auto"
    db: str | None = None  # the center store's URL (default: SQLite in the work dir)
    sync_ms: int = HOUR_MS  # boards wait for each other this often (the gateway sees one fleet time)


def _reachable(url: str) -> tuple[str, int]:
    """Host and port of a plain-TCP broker URL that accepts connections (SimError if not)."""
    import socket

    from host_tools.gateway.config import ConfigError, parse_mqtt_url

    try:
        t = parse_mqtt_url(url)
    except ConfigError as e:
        raise SimError(str(e)) from None
    if t.tls or t.username:
        raise SimError(f"--mqtt {url}: the simulator's center subscribes without TLS or a login")
    try:
        socket.create_connection((t.host, t.port), timeout=3).close()
    except OSError as e:
        raise SimError(f"--mqtt {url}: cannot connect ({e.strerror or e})") from None
    return t.host, t.port


def ram_dir(stations: int) -> str | None:
    """/dev/shm when it has room for the run (flash images, spool), else None (the temp dir).

    In RAM the spool's fsync before each ACK costs nothing: the simulator's faults are
    process kills, which the page cache survives, not a power cut of the gateway host
    (about 1 s of every 5 station-days on this machine's disk, bench/sim_speed.py).
    """
    d = Path("/dev/shm")
    try:
        ok = d.is_dir() and os.access(d, os.W_OK) and shutil.disk_usage(d).free > (64 + 4 * stations) << 20
    except OSError:
        ok = False
    return str(d) if ok else None


class _HeldSigint:
    """A Ctrl-C while the run starts its services (broker, center, gateway) is held until they
    have started, then raised: stopping a client half-connected leaves noise on stderr. While
    the gateway spawns its forwarder SIGINT is ignored outright, as the child inherits that
    (else a Ctrl-C while it imports, before it ignores SIGINT itself, prints its traceback).
    Main thread only (elsewhere it does nothing)."""

    def __enter__(self) -> _HeldSigint:
        self.main = threading.current_thread() is threading.main_thread()
        self.got = False
        if self.main:
            self.old = signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, *_: object) -> None:
        self.got = True

    @contextlib.contextmanager
    def ignored(self) -> Iterator[None]:
        if self.main:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            yield
        finally:
            if self.main:
                signal.signal(signal.SIGINT, self._note)

    def __exit__(self, kind: object, *_: object) -> None:
        if self.main:
            signal.signal(signal.SIGINT, self.old)
        if self.got and kind is None:
            raise KeyboardInterrupt


def _cached_mpy(dest: Path) -> None:
    """Compile the firmware once per machine (a cache in the temp dir), copy it for this run."""
    import getpass

    cache = Path(tempfile.gettempdir()) / f"hydrolink-sim-mpy-{getpass.getuser()}"
    try:
        build_mpy(cache)
    except BuildError as e:
        raise SimError(str(e)) from None
    if not dest.exists():
        shutil.copytree(cache, dest)  # copy2 keeps the mtimes: build_mpy sees them current


class FleetBoard(VBoard):
    """A VBoard that stops at the fleet's barriers (every step of its time goes through ``_reply``)."""

    fleet: Fleet
    next_barrier: int = 0
    gate_ms: int = -1  # the next barrier's time: below it no lock is taken

    def _reply(self, ms: int) -> bytes:
        if ms > self.gate_ms:
            self.fleet.gate(self, ms)
        return super()._reply(ms)


@dataclass
class Event:
    ms: int
    what: str  # broker_down | broker_up | gateway_kill | gateway_down | gateway_up | day


class Fleet:
    def __init__(self, opts: Options) -> None:
        self.o = opts
        self.specs: list[StationSpec] = fleet(opts.stations, opts.days, opts.seed, faults=opts.faults,
                                              rain=opts.rain, storm=opts.storm)
        self.own_dir = opts.workdir is None
        self.dir = Path(tempfile.mkdtemp(prefix="hydrolink-sim-", dir=ram_dir(opts.stations))) \
            if opts.workdir is None else opts.workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.end_ms = int(opts.days * DAY_MS)
        self.until_ms = self.end_ms + int(opts.drain_h * HOUR_MS)
        rng = random.Random(f"faults:{opts.seed}")
        self.cuts: dict[int, list[int]] = {s.sid: [] for s in self.specs}
        for _ in range(opts.power_cuts):
            sid = rng.choice(self.specs).sid
            self.cuts[sid].append(int(rng.uniform(0.1, 0.95) * self.end_ms))
        events = [Event(d * DAY_MS, "day") for d in range(1, int(opts.days) + 1)]
        events += [Event(t, "tick") for t in range(opts.sync_ms, self.until_ms, opts.sync_ms) if t % DAY_MS]
        for _ in range(opts.gateway_restarts):
            events.append(Event(int(rng.uniform(0.1, 0.95) * self.end_ms), "gateway_kill"))
        for o in opts.outages:
            if o.kind == "broker":
                events += [Event(o.start_ms, "broker_down"), Event(o.end_ms, "broker_up")]
            elif o.kind == "gateway":
                events += [Event(o.start_ms, "gateway_down"), Event(o.end_ms, "gateway_up")]
        self.events = sorted(events, key=lambda e: (e.ms, e.what))
        self.done_events: list[Event] = []
        self.broker_down: list[tuple[int, int]] = []  # virtual ms intervals, for arrival times
        self.cond = threading.Condition()
        self.arrived: dict[int, int] = {}
        self.alive = 0
        self.error: BaseException | None = None
        self.boards: list[FleetBoard] = []
        self.links: list[VLink] = []
        self.broker: Broker | None = None
        self.center: CenterSink | None = None
        self.host: GatewayHost | None = None
        self.wall = 0.0
        self._down_since = 0
        self.now_ms = 0  # the furthest any board has got: the center's clock
        self.store_url = opts.db or f"sqlite:///{self.dir / 'center.db'}"
        self.receiver: Any = None
        self.phases: dict[str, float] = {}  # wall seconds: start (broker, center, gateway), boards, stop

    # ---- barriers -------------------------------------------------------
    def center_clock(self) -> float:
        return EPOCH_UNIX + T0 + self.now_ms / 1000

    def gate(self, board: FleetBoard, ms: int) -> None:
        with self.cond:
            if ms > self.now_ms:
                self.now_ms = ms
            while board.next_barrier < len(self.events) and self.events[board.next_barrier].ms < ms:
                i = board.next_barrier
                self.arrived[i] = self.arrived.get(i, 0) + 1
                if self.arrived[i] >= self.alive:
                    self._fire(i)
                else:
                    while len(self.done_events) <= i and self.error is None:
                        self.cond.wait(1.0)
                if self.error is not None:
                    raise SimError("another board failed")
                board.next_barrier += 1
            i = board.next_barrier
            board.gate_ms = self.events[i].ms if i < len(self.events) else 2**62

    def _leave(self, board: FleetBoard) -> None:
        with self.cond:
            self.alive -= 1
            i = len(self.done_events)
            if i < len(self.events) and self.alive and self.arrived.get(i, 0) >= self.alive:
                self._fire(i)

    def _fire(self, i: int) -> None:
        """Run barrier ``i``'s event (every live board is waiting at it), with the lock held."""
        while len(self.done_events) < i:  # earlier ones all boards passed by finishing
            self._fire(len(self.done_events))
        e = self.events[i]
        host = self.host
        assert host is not None
        if e.what == "broker_down" and self.broker is not None:
            self.broker.stop()
            self._down_since = e.ms
        elif e.what == "broker_up" and self.broker is not None:
            self.broker.start()
            self.broker_down.append((self._down_since, e.ms))
        elif e.what == "gateway_kill":
            host.kill9()
            host.restart()
        elif e.what == "gateway_down":
            host.kill9()
        elif e.what == "gateway_up":
            host.restart()
        host.fleet_t = EPOCH_UNIX + T0 + e.ms / 1000
        self.done_events.append(e)
        if e.what == "day":
            self._progress(e.ms)
        self.cond.notify_all()

    def _progress(self, ms: int) -> None:
        if not self.o.progress:
            return
        day = ms / DAY_MS
        n = int(30 * day / max(self.o.days, 1e-9))
        delivered = len(self.center.obs) if self.center else 0
        faults = sum(b.cuts_done for b in self.boards) + sum(
            1 for e in self.done_events if e.what in ("gateway_kill", "broker_down", "gateway_down"))
        sys.stderr.write(f"\r[{'#' * n:<30}] day {day:4.1f}/{self.o.days:g}  readings at center "
                         f"{delivered:7d}  faults {faults:3d}  {time.monotonic() - self.wall:5.0f} s")
        sys.stderr.flush()

    # ---- the run -----------------------------------------------------------
    def run(self) -> None:
        self.wall = time.monotonic()
        o = self.o
        reg_path = self.dir / "stations.toml"
        reg_path.touch(mode=0o600)
        reg_path.write_text("\n".join(s.registry_toml() for s in self.specs))
        registry = load_registry(reg_path)
        mqtt = o.mqtt
        try:
            with _HeldSigint() as held:
                if mqtt is None:
                    self.broker = Broker(self.dir / "broker", o.broker)
                    self.broker.start()
                    mqtt = self.broker.url
                host, port = _reachable(mqtt)
                self.center = CenterSink(port, client_id=f"hydrolink-sim-center-{o.seed}-{id(self)}", host=host)
                self.center.start()
                from host_tools.center.receiver import Center

                amqtt = self.broker is not None and self.broker.kind == "amqtt"
                self.receiver = Center(self.store_url, mqtt, registry=reg_path, clock=self.center_clock,
                                       protocol="3.1.1" if amqtt else "5",
                                       client_id=f"hydrolink-sim-store-{o.seed}-{id(self)}")
                self.receiver.start()
                if not self.receiver.wait_connected(30):
                    raise SimError("the center receiver did not connect to the broker")
                self.host = GatewayHost(self.dir, registry, mqtt, o.clock_error_s)
                self.host.fleet_t = EPOCH_UNIX + T0
                with held.ignored():
                    self.host.start()
            self.phases["start"] = time.monotonic() - self.wall
            self._run_boards()
            self.phases["boards"] = time.monotonic() - self.wall - self.phases["start"]
            self._drain()
        finally:
            t = time.monotonic()
            self.close()
            self.phases["stop"] = time.monotonic() - t

    def _run_boards(self) -> None:
        o = self.o
        assert self.host is not None
        _cached_mpy(self.dir / "mpy")
        for s in self.specs:
            link = VLink(self.host, s.sid, T0, o.seed, loss=o.loss, ber=o.ber, latency_ms=o.latency_ms,
                         outages=[x for x in o.outages if x.kind == "link"], clean_from_ms=self.end_ms)
            b = FleetBoard(self.dir / f"st{s.sid}", s.config, s.weather, cast(Any, link), t0=T0,
                           seed=o.seed * 7919 + s.sid)
            b.fleet = self
            self.boards.append(b)
            self.links.append(link)
        self.alive = len(self.boards)
        threads = [threading.Thread(target=self._board_main, args=(b,), name=f"board-{b.config['station']}",
                                    daemon=True) for b in self.boards]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.5)
        except KeyboardInterrupt:
            with self.cond:
                self.error = KeyboardInterrupt()
                self.cond.notify_all()
            for t in threads:
                t.join(10)
            raise
        if self.error is not None:
            raise self.error
        if o.progress:
            sys.stderr.write("\n")

    def _board_main(self, b: FleetBoard) -> None:
        try:
            b.run(self.until_ms, cuts=self.cuts[int(b.config["station"])])
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            with self.cond:
                if self.error is None:
                    self.error = e
                self.cond.notify_all()
        finally:
            self._leave(b)

    def _drain(self, timeout: float = 60.0) -> None:
        """Wait until the spool has nothing left for MQTT and the center has it all."""
        assert self.host is not None and self.center is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.host.pending_count() == 0:
                break
            time.sleep(0.1)
        last, stable = -1, 0.0
        while time.monotonic() < deadline:
            n = self.center.snapshot_count()
            if n == last:
                if time.monotonic() - stable > 1.0:
                    break
            else:
                last, stable = n, time.monotonic()
            time.sleep(0.1)

    def close(self) -> None:
        """Stop everything this run started (also after an error or Ctrl-C)."""
        if self.host is not None:
            try:
                self.host.stop()
            except Exception:  # noqa: BLE001 - best effort on the way out
                self.host.kill9()
        if self.receiver is not None:
            self.receiver.stop()
            self.receiver = None
        if self.center is not None:
            self.center.stop()
        if self.broker is not None:
            self.broker.stop()
        self.wall = time.monotonic() - self.wall

    def cleanup(self) -> None:
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
