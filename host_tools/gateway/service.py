"""The gateway process: inputs -> pipeline -> spool -> ACK, and spool -> MQTT.

One asyncio loop runs everything; SQLite runs on its own thread (group commits),
serial ports on theirs. The order for each valid new frame is: verify, submit to
the spool, and only when its group commit is on disk, accept it (replay window)
and send the ACK on the link it came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from protocol.codec import Frame, ReplayWindow, Results
from protocol.errors import FrameError

from ..registry import Registry, RegistryError, load_registry
from .commands import CommandBook
from .config import Config, default_client_id
from .forwarder import ForwarderOptions
from .inputs import Link, SerialLink, TcpServer
from .metrics import Stats, StatsCollector
from .names import iso
from .payload import console_events
from .pipeline import Duplicate, New, Pipeline, Rejected
from .spool import Spool, SpoolError
from .spool_commands import event_statement, state_statement
from .state import Summary, restore_stats, state_message
from .supervisor import ForwarderProcess
from .writer import SpoolWriter

log = logging.getLogger("hydrolink.gateway")

STATS_EVERY = 5.0      # seconds between status snapshots into the spool
COMMANDS_EVERY = 1.0   # seconds between checks for newly queued commands
PRUNE_EVERY = 600.0
MAX_BAD_STREAK = 200   # rejected frames in a row after which a TCP connection is closed
DRAIN_ON_STOP = 3.0    # seconds SIGTERM waits for the forwarder to empty the spool


def _hex(obj: object) -> str:
    if isinstance(obj, bytes):
        return obj.hex()
    raise TypeError(f"{type(obj).__name__} is not JSON")


class GatewayError(Exception):
    """The gateway cannot start. ``str()`` is one line."""


class Gateway:
    def __init__(self, cfg: Config, registry: Registry | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clock = clock  # every wall time stamped or compared (the simulator's is virtual)
        try:
            self.registry = registry or load_registry(cfg.registry or "")
        except RegistryError as e:
            raise GatewayError(str(e)) from None
        self.stats = Stats(started=clock())
        self.commands = CommandBook()
        max_bytes = int(cfg.spool_max_mb * 1024 * 1024) if cfg.spool_max_mb else None
        try:
            self.spool = Spool(cfg.spool, max_bytes=max_bytes, exclusive=True,
                               reserve_bytes=int(cfg.spool_reserve_mb * 1024 * 1024))
        except SpoolError as e:
            raise GatewayError(str(e)) from None
        self.window = ReplayWindow()
        self.pipeline = Pipeline(self.registry, self.stats, self.commands, window=self.window,
                                 clock=clock)
        self.pending: dict[tuple[int, int], asyncio.Future[None]] = {}
        self.writer: SpoolWriter | None = None
        self.forwarder: ForwarderProcess | None = None
        self.dirty: set[int] = set()  # stations whose retained state changed
        self.tcp: TcpServer | None = None
        self.serials: list[SerialLink] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.stopped = asyncio.Event()
        self.ready = asyncio.Event()
        self._spool_down = False
        self._data_version = -1
        self._metrics_server: Any = None

    # ------------------------------------------------------------ the hot path

    def feed(self, link: Link, data: bytes) -> None:
        """Bytes from a link: deframe, and handle every frame in them."""
        for item in link.deframer.feed(data):
            if isinstance(item, FrameError):
                self.pipeline.deframe_error(item, link.name, link.station)
                ok = False
            else:
                ok = self.handle(link, item)
            link.bad_streak = 0 if ok else link.bad_streak + 1
            if link.bad_streak == MAX_BAD_STREAK and link.name.startswith("tcp:"):
                # a TCP peer that sends nothing valid is not a station (or is broken)
                log.warning("connection closed", extra={"fields": {
                    "link": link.name, "reason": f"{MAX_BAD_STREAK} bad frames in a row"}})
                link.close()
                return

    def handle(self, link: Link, raw: bytes) -> bool:
        """One raw frame; False if it was rejected."""
        t0 = time.perf_counter()
        verdict = self.pipeline.check(raw, link.name, link.station)
        if isinstance(verdict, Rejected):
            return False
        frame = verdict.frame
        if link.station != frame.station:
            log.info("station connected", extra={"fields": {
                "station": frame.station, "link": link.name}})
        link.station = frame.station
        key = (frame.station, frame.seq)
        inflight = self.pending.get(key)
        if inflight is not None:
            # Sent again before its first copy was on disk: ACK when that commit lands.
            inflight.add_done_callback(lambda f: self._after_commit(f, link, frame, t0, False))
            return True
        if isinstance(verdict, Duplicate):
            self.pipeline.duplicate(frame, link.name, self.clock())
            self._ack(link, frame, t0)
            return True
        assert isinstance(verdict, New) and self.writer is not None
        if isinstance(frame.body, Results):
            now = self.clock()
            for r in frame.body.results:  # same group commit as the frame
                detail = None if r.detail is None else json.dumps(r.detail, default=_hex)
                self.writer.execute(
                    "UPDATE commands SET result = ?, detail = ?, done = ? WHERE station = ?"
                    " AND id = ? AND result IS NULL", (r.code, detail, now, frame.station, r.id))
        if self.forwarder is not None:  # console changes: events, in the frame's group commit
            for event in console_events(frame):
                self.writer.execute(*event_statement(frame.station, event))
        fut = self.writer.submit(verdict.record)
        self.pending[key] = fut
        received = verdict.record.received
        fut.add_done_callback(lambda f: self._stored(f, link, frame, t0, received))
        return True

    def _stored(self, fut: asyncio.Future[None], link: Link, frame: Frame, t0: float,
                received: float) -> None:
        self.pending.pop((frame.station, frame.seq), None)
        if self._after_commit(fut, link, frame, t0, True, received):
            self.dirty.add(frame.station)

    def _after_commit(self, fut: asyncio.Future[None], link: Link, frame: Frame, t0: float,
                      first: bool, received: float = 0.0) -> bool:
        exc = fut.exception()
        if exc is not None:
            self.stats.refused += 1
            if not self._spool_down:
                self._spool_down = True
                self.stats.spool_error = str(exc)
                log.error("spool cannot store frames: NOT acknowledging until it can",
                          extra={"fields": {"error": str(exc)}})
            return False
        if self._spool_down:
            self._spool_down = False
            self.stats.spool_error = ""
            log.warning("spool writable again: acknowledging", extra={"fields": {
                "refused": self.stats.refused}})
        if first:
            self.pipeline.committed(frame, link.name, received)
        else:
            self.pipeline.duplicate(frame, link.name, self.clock())
        self._ack(link, frame, t0)
        return True

    def _ack(self, link: Link, frame: Frame, t0: float) -> None:
        try:
            wire, command_ids = self.pipeline.ack(frame.station, frame.seq)
        except (FrameError, ValueError) as e:
            log.warning("no ACK", extra={"fields": {"station": frame.station, "error": str(e)}})
            return
        link.send(wire)
        self.stats.observe_latency(time.perf_counter() - t0)
        if command_ids and self.writer is not None:
            marks = ",".join("?" * len(command_ids))
            self.writer.execute(
                f"UPDATE commands SET sent = ?, sends = sends + 1 WHERE station = ? AND id IN"
                f" ({marks})", (self.clock(), frame.station, *command_ids),
            )
            first = self.commands.first_sends(frame.station, command_ids)
            if first and self.forwarder is not None:  # kept in the spool until published
                self.writer.execute(*event_statement(frame.station, {
                    "event": "command_sent", "ack_seq": frame.seq, "sent": iso(self.clock()),
                    "commands": first}))

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        cfg = self.cfg
        self.writer = SpoolWriter(self.spool)
        self.tasks.append(asyncio.create_task(self.writer.run(), name="spool"))
        highest, seen = await self.writer.call(self.spool.window)
        for sid, h in highest.items():
            self.window.accept(sid, h)
        for sid, seq in seen:
            self.window.accept(sid, seq)
        for sid, (h, bits) in (await self.writer.call(self.spool.pruned_window)).items():
            self.window.merge(sid, h, bits)  # frames deleted from the spool stay seen
        saved = await self.writer.call(self.spool.meta, "stats")
        stations = await self.writer.call(self.spool.station_stats)
        restore_stats(self.stats, saved, stations)
        await self._reload_commands()
        # where ``hydrolink command`` finds the stations when it is given only the spool
        self.writer.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('registry', ?)",
                            (json.dumps(str(self.registry.path.resolve())),))
        reserve = await self.writer.call(self.spool.keep_reserve)
        log.info("spool open", extra={"fields": {
            "path": cfg.spool, "stations": len(highest), "window_rows": len(seen),
            "reserve_mb": cfg.spool_reserve_mb if reserve else 0}})
        target = cfg.mqtt_target()
        if target is not None:
            self.forwarder = ForwarderProcess(ForwarderOptions(
                spool=str(cfg.spool), registry=str(self.registry.path), host=target.host,
                port=target.port, tls=target.tls, username=target.username,
                password=target.password, ca=cfg.mqtt_ca, cert=cfg.mqtt_cert, key=cfg.mqtt_key,
                client_id=cfg.mqtt_client_id or default_client_id(cfg.spool),
                topic_prefix=cfg.topic_prefix, raw_hex=cfg.raw_hex, log_level=cfg.log_level,
                log_format=cfg.log_format,
            ), self.stats)
            self.forwarder.start()
            self.tasks.append(asyncio.create_task(self.forwarder.supervise(), name="forwarder"))
        addr = cfg.listen_address()
        if addr is not None:
            self.tcp = TcpServer(addr[0], addr[1], self.feed, idle_timeout=cfg.idle_timeout,
                                 max_connections=cfg.max_connections,
                                 on_connections=self._connections)
            try:
                await self.tcp.start()
            except OSError as e:
                raise GatewayError(f"--listen {cfg.listen}: {e.strerror or e}") from None
        loop = asyncio.get_running_loop()
        for spec in cfg.serial_specs():
            link = SerialLink(spec, self.feed, loop)
            link.start()
            self.serials.append(link)
        await loop.run_in_executor(None, lambda: [s.tried.wait(2.0) for s in self.serials])
        self._note_inputs()
        maddr = cfg.metrics_address()
        if maddr is not None:
            self._start_metrics(*maddr)
        self.tasks.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        await self.save_stats()  # --status (and hydrolink command) have it at once
        await self.writer.flush()
        self.ready.set()
        not_open = [s.spec.url for s in self.serials if not s.connected.is_set()]
        log.info("gateway running", extra={"fields": {
            "stations": len(self.registry.stations), "serial": len(self.serials),
            **({"not_open": ",".join(not_open)} if not_open else {}),
            "listen": f"{self.tcp.host}:{self.tcp.port}" if self.tcp else None,
            "mqtt": f"{target.host}:{target.port}" if target else None}})

    def _note_inputs(self) -> None:
        """Each input's state, for ``--status``: open, or not open and why."""
        inputs = {f"serial:{s.spec.url}": "open" if s.connected.is_set() else
                  f"NOT OPEN: {s.error or 'opening'}" for s in self.serials}
        if self.tcp is not None:
            inputs[f"tcp:{self.tcp.host}:{self.tcp.port}"] = "listening"
        self.stats.inputs = inputs

    def _connections(self, n: int) -> None:
        self.stats.connections = n

    def _start_metrics(self, host: str, port: int) -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        reg = CollectorRegistry()
        reg.register(StatsCollector(self.stats))
        try:
            self._metrics_server, _ = start_http_server(port, host, registry=reg)
        except OSError as e:
            raise GatewayError(f"--metrics {host}:{port}: {e.strerror or e}") from None

    def reload_registry(self) -> None:
        """SIGHUP: read the registry again; keep the old one if the new one is bad."""
        try:
            reg = load_registry(self.registry.path)
        except RegistryError as e:
            log.error("registry not reloaded", extra={"fields": {"error": str(e)}})
            return
        self.registry = reg
        self.pipeline.set_registry(reg)
        if self.forwarder is not None:
            self.forwarder.send(("registry",))
        log.info("registry reloaded", extra={"fields": {"stations": len(reg.stations)}})

    async def _reload_commands(self) -> None:
        assert self.writer is not None
        version = await self.writer.call(self.spool.data_version)
        rows = await self.writer.call(self.spool.commands, None, False)
        self._data_version = version
        self.commands.load(rows)

    async def _housekeeping(self) -> None:
        assert self.writer is not None
        last_stats = last_summary = time.monotonic()
        summary = Summary(self.stats)
        last_prune = self.clock()  # retention follows the gateway's clock (virtual in the sim)
        while True:
            await asyncio.sleep(COMMANDS_EVERY)
            try:
                version = await self.writer.call(self.spool.data_version)
                if version != self._data_version:
                    await self._reload_commands()
                due = self.commands.next_expiry()
                if due is not None and due <= self.clock():
                    await self.writer.flush()  # the sends before the expiry are on record
                    ended = await self.writer.call(self.spool.expire_commands, self.clock(),
                                                   self.forwarder is not None)
                    for row in ended:
                        log.info("command expired", extra={"fields": {
                            "station": row.station, "id": row.id, "sends": row.sends}})
                    await self._reload_commands()
                now = time.monotonic()
                if now - last_summary >= self.cfg.summary_interval:
                    last_summary = now
                    log.info("summary", extra={"fields": summary.fields(self.registry,
                                                                         self.clock())})
                if now - last_stats >= STATS_EVERY:
                    last_stats = now
                    self._note_inputs()
                    if self.forwarder is not None and self.dirty:
                        dirty, self.dirty = self.dirty, set()
                        for sid in sorted(dirty):
                            self.writer.execute(*state_statement(self.state_of(sid)))
                    self.stats.spool_pending = await self.writer.call(self.spool.pending_count)
                    await self.save_stats()
                wall = self.clock()
                if wall - last_prune >= PRUNE_EVERY or wall < last_prune:
                    last_prune = wall
                    cutoff = self.clock() - self.cfg.retain_days * 86400
                    await self.writer.call(self.spool.prune, cutoff)
                if (self.spool.reserve_bytes and not self.spool.reserve_path.exists()
                        and await self.writer.call(self.spool.keep_reserve)):
                    log.info("disk has room again: spool reserve held", extra={"fields": {
                        "reserve": str(self.spool.reserve_path)}})
            except SpoolError as e:
                log.warning("housekeeping", extra={"fields": {"error": str(e)}})

    async def save_stats(self) -> None:
        assert self.writer is not None
        self.writer.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                            ("stats", json.dumps(self.stats.snapshot(self.clock()))))
        dirty, self.stats.dirty = self.stats.dirty, set()
        for sid in sorted(dirty):
            if sid in self.stats.stations:
                self.writer.execute(
                    "INSERT OR REPLACE INTO station_stats (station, value) VALUES (?, ?)",
                    (sid, json.dumps(self.stats.station_row(sid))))

    def state_of(self, station: int) -> dict[str, Any]:
        """The retained ``state`` message of a station."""
        return state_message(self.stats, self.registry, self.commands, station)

    async def stop(self) -> None:
        """Stop inputs, commit and ACK what is in flight, close the spool."""
        if self.tcp is not None:
            await self.tcp.stop()
        for link in self.serials:
            link.stop()
        for link in self.serials:
            await asyncio.get_running_loop().run_in_executor(None, link.join)
        if self.writer is not None:
            await self.writer.flush()
        if self.forwarder is not None and self.writer is not None:
            # Drain to the broker for a moment if it is there (what is left stays spooled).
            deadline = time.monotonic() + DRAIN_ON_STOP
            while self.stats.mqtt_connected and time.monotonic() < deadline:
                if not await self.writer.call(self.spool.pending_count):
                    break
                await asyncio.sleep(0.05)
            await self.forwarder.stop()
        for t in self.tasks:
            if t.get_name() != "spool":
                t.cancel()
        for t in self.tasks:
            if t.get_name() != "spool":
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        if self.writer is not None:
            await self.save_stats()
            await self.writer.close()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        self.stopped.set()
        log.info("gateway stopped", extra={"fields": {"acks": self.stats.acks}})
