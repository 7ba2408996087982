"""Publish the spool to MQTT with aiomqtt, QoS 1, in spool order, from a child process.

A row is marked forwarded only after the broker's PUBACK. While the broker is
away the spool grows; on reconnect the forwarder starts again from the oldest
unforwarded row, so a message whose PUBACK was lost is published again
(QoS 1: at least once, never lost).

Why a separate process: building the JSON payloads and driving MQTT (paho, aiomqtt)
costs more CPU than receiving, verifying, storing and ACKing the frames. In one
process both share one core (the GIL); in two, the station side keeps its ACK
latency while the forwarder uses the other core. The two share nothing but the
spool file (SQLite WAL: one writer at a time, readers never block) and a pipe for
control (registry reload, retained state, stop) and status (connected, counts).
If the gateway dies, the pipe closes and the forwarder exits; if the forwarder
dies, the gateway starts another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import aiomqtt

from protocol.errors import FrameError

from ..registry import Registry, RegistryError, load_registry
from .config import ConfigError, tls_context
from .logs import setup_logging
from .payload import encode_json, frame_payload, stored_frame, topic_kind
from .spool import PendingRow, Spool, SpoolError
from .spool_commands import OutboxRow

log = logging.getLogger("hydrolink.gateway")

BATCH = 500         # rows read from the spool at a time
WINDOW = 64         # publishes awaiting their PUBACK (aiomqtt and paho scan them: O(n))
PUBACK_TIMEOUT = 30.0
MARK_EVERY = 0.05   # seconds between commits of PUBACKed row ids
IDLE_POLL = 0.02    # seconds between spool polls when nothing is waiting
STATUS_EVERY = 0.5  # seconds between status messages to the gateway
TAKEN_OVER = 142    # MQTT 5 reason code: Session taken over
TAKEOVER_WINDOW = 3.0  # s: a connection closed this soon after CONNACK is a quick drop
TAKEOVER_DROPS = 3     # quick drops in a row that mean another client has our id


def _taken_over(e: BaseException) -> bool:
    """A broker that says so (an MQTT 5 DISCONNECT with reason 142)."""
    rc = getattr(e.__cause__, "rc", None)
    return getattr(rc, "value", rc) == TAKEN_OVER


@dataclass(frozen=True)
class ForwarderOptions:
    """Everything the child process needs (picklable)."""

    spool: str
    registry: str
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    ca: str | None
    cert: str | None
    key: str | None
    client_id: str
    topic_prefix: str
    raw_hex: bool
    log_level: str
    log_format: str


# ---------------------------------------------------------------- the child


def child_main(conn: Connection, opts: ForwarderOptions) -> None:
    """Entry point of the forwarder process."""
    setup_logging(opts.log_level, opts.log_format)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the gateway decides when we stop
    profile = os.environ.get("HYDROLINK_PROFILE_FORWARDER")  # benchmarks: a cProfile file
    try:
        if profile:
            import cProfile

            cProfile.runctx("asyncio.run(Forwarder(opts, conn).main())", globals(),
                            {"opts": opts, "conn": conn}, profile)
        else:
            asyncio.run(Forwarder(opts, conn).main())
    except (SpoolError, RegistryError, ConfigError) as e:
        log.error("forwarder cannot start", extra={"fields": {"error": str(e)}})


class Forwarder:
    def __init__(self, opts: ForwarderOptions, conn: Connection) -> None:
        self.opts = opts
        self.conn = conn
        self.prefix = opts.topic_prefix.rstrip("/")
        # checked by the gateway before it started this process
        self.tls = tls_context(opts.ca, opts.cert, opts.key) if opts.tls else None
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="forwarder-spool")
        self.spool: Spool | None = None
        self.registry: Registry | None = None
        self.stop = asyncio.Event()
        self.acked: list[int] = []
        self.client: aiomqtt.Client | None = None
        self.connected = False
        self.error = ""
        self.forwarded = 0
        self._background: set[asyncio.Task[None]] = set()
        self._mark_warned = 0.0

    async def db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        self.spool = await self.db(lambda: Spool(self.opts.spool, durable=False))  # marks only
        self.registry = load_registry(self.opts.registry)
        threading.Thread(target=self._control, args=(loop,), daemon=True).start()
        tasks = [asyncio.create_task(t) for t in (self._mqtt(), self._marks(), self._status())]
        await self.stop.wait()
        # a moment for the PUBACKs of what is already out
        deadline = time.monotonic() + 2.0
        while self.client is not None and self.connected and time.monotonic() < deadline:
            if not self._inflight:
                break
            await asyncio.sleep(0.02)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self._flush_marks()
        self._send(("status", {"connected": False, "error": "stopped",
                               "forwarded": self.forwarded}))
        await self.db(self.spool.close)
        self.executor.shutdown()

    # ------------------------------------------------------------ the pipe

    def _control(self, loop: asyncio.AbstractEventLoop) -> None:
        """Reads the gateway's messages; EOF (the gateway died) stops the forwarder."""
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                loop.call_soon_threadsafe(self.stop.set)
                return
            loop.call_soon_threadsafe(self._on_message, msg)

    def _on_message(self, msg: Any) -> None:
        kind = msg[0]
        if kind == "stop":
            self.stop.set()
        elif kind == "registry":
            try:
                self.registry = load_registry(self.opts.registry)
            except RegistryError as e:
                log.error("forwarder kept the old registry", extra={"fields": {"error": str(e)}})

    def _send(self, msg: Any) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(msg)

    async def _status(self) -> None:
        while True:
            self._send(("status", {"connected": self.connected, "error": self.error,
                                   "forwarded": self.forwarded}))
            await asyncio.sleep(STATUS_EVERY)

    # ------------------------------------------------------------ MQTT

    async def _mqtt(self) -> None:
        backoff = 0.2
        o = self.opts
        quick_drops = 0  # connections the broker closed within seconds of accepting them
        while True:
            since = time.monotonic()
            try:
                async with aiomqtt.Client(
                    o.host, o.port, username=o.username, password=o.password,
                    identifier=o.client_id, tls_context=self.tls, keepalive=30, timeout=10,
                    max_inflight_messages=WINDOW, clean_session=True,
                    logger=logging.getLogger("hydrolink.mqtt"),
                ) as client:
                    # many publishes await their PUBACK at once, by design
                    client.pending_calls_threshold = WINDOW * 2
                    self.client, self.connected, self.error = client, True, ""
                    self._send(("status", {"connected": True, "error": "",
                                           "forwarded": self.forwarded}))
                    log.info("mqtt connected", extra={"fields": {"broker": f"{o.host}:{o.port}"}})
                    backoff = 0.2
                    await self._session(client)
            except aiomqtt.MqttError as e:
                # A broker drops the older of two clients with one id as soon as the other
                # connects; MQTT 3.1.1 says nothing more, so: dropped right after CONNACK,
                # again and again, while the broker accepts every new connection.
                quick = self.connected and time.monotonic() - since < TAKEOVER_WINDOW
                quick_drops = quick_drops + 1 if quick else 0
                if quick_drops >= TAKEOVER_DROPS or _taken_over(e):
                    why = (f"session taken over by another client with client id "
                           f"{o.client_id!r} (the broker closes each connection right after"
                           " accepting it; another gateway? give each its own"
                           " --mqtt-client-id)")
                    if self.error != why:
                        log.error("mqtt session taken over", extra={"fields": {
                            "broker": f"{o.host}:{o.port}", "error": why}})
                    self.error = why
                elif self.connected or self.error != str(e):
                    log.warning("mqtt unavailable", extra={"fields": {
                        "broker": f"{o.host}:{o.port}", "error": str(e)}})
                    self.error = str(e)
            finally:
                self.connected = False
                self.client = None
            if quick_drops >= TAKEOVER_DROPS:
                backoff = max(backoff, 5.0)  # do not fight the other client every 200 ms
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _session(self, client: aiomqtt.Client) -> None:
        disconnected: asyncio.Future[Any] | None = getattr(client, "_disconnected", None)
        pump = asyncio.create_task(self._pump(client))
        waits: set[asyncio.Future[Any]] = {pump}
        if disconnected is not None:
            waits.add(disconnected)
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await pump
        for d in done:
            if d is disconnected:
                exc = d.exception()
                err = aiomqtt.MqttError(f"connection lost: {exc}")
                err.__cause__ = exc
                raise err
            d.result()

    _inflight = 0

    async def _pump(self, client: aiomqtt.Client) -> None:
        assert self.spool is not None
        await self._flush_marks()  # rows PUBACKed before a reconnect are not sent again
        cursor = 0
        window = asyncio.Semaphore(WINDOW)
        failed: list[BaseException] = []
        tasks: set[asyncio.Task[None]] = set()

        async def publish(row_id: int, topic: str, payload: bytes) -> None:
            self._inflight += 1
            try:
                await client.publish(topic, payload, qos=1, timeout=PUBACK_TIMEOUT)
            except BaseException as e:  # noqa: BLE001 - handed to the pump
                failed.append(e)
            else:
                self.acked.append(row_id)
                self.forwarded += 1
            finally:
                self._inflight -= 1
                window.release()

        try:
            while True:
                if failed:
                    raise failed[0]
                rows: list[PendingRow] = await self.db(self.spool.pending, cursor, BATCH)
                await self._outbox(client)
                if not rows:
                    await asyncio.sleep(IDLE_POLL)
                    continue
                for row in rows:
                    message = await self._message(row)
                    cursor = row.id
                    if message is None:
                        self.acked.append(row.id)  # cannot be decoded: logged, skipped
                        continue
                    await window.acquire()
                    if failed:
                        raise failed[0]
                    t = asyncio.create_task(publish(row.id, *message))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
        finally:
            for t in list(tasks):
                t.cancel()

    async def _message(self, row: PendingRow) -> tuple[str, bytes] | None:
        try:
            frame = stored_frame(row.raw)
        except FrameError as e:  # the spool holds only verified frames: a damaged file?
            log.error("stored frame does not decode", extra={"fields": {
                "row": row.id, "station": row.station, "error": str(e)}})
            return None
        st = self.registry.get(row.station) if self.registry else None
        commands = None
        if frame.type_name == "result" and self.spool is not None:
            rows = await self.db(self.spool.commands, row.station)
            commands = {r.id: (r.op, r.args) for r in rows}
        payload = frame_payload(frame, name=st.name if st else None, received=row.received,
                                link=row.link, raw_hex=self.opts.raw_hex, commands=commands)
        return f"{self.prefix}/{row.station}/{topic_kind(row.type)}", encode_json(payload)

    async def _outbox(self, client: aiomqtt.Client) -> None:
        """Events (``command_sent``, ``command_expired`` ...) and retained ``state`` from the
        spool's outbox, deleted once PUBACKed: kept while the broker is not connected.
        Called after reading frames and before publishing them, so an event committed
        with or before a frame (a command sent, then its result) is published first."""
        assert self.spool is not None
        while True:
            rows: list[OutboxRow] = await self.db(self.spool.outbox, 200)
            if not rows:
                return
            await asyncio.gather(*(client.publish(
                f"{self.prefix}/{row.topic}", row.payload, qos=1, retain=row.retain,
                timeout=PUBACK_TIMEOUT) for row in rows))
            await self.db(self.spool.outbox_done, [r.id for r in rows])

    # ------------------------------------------------------------ marks

    async def _marks(self) -> None:
        while True:
            await asyncio.sleep(MARK_EVERY)
            await self._flush_marks()

    async def _flush_marks(self) -> None:
        if not self.acked or self.spool is None:
            return
        ids, self.acked = self.acked, []
        try:
            await self.db(self.spool.mark_forwarded, ids)
        except SpoolError as e:
            self.acked[:0] = ids  # try again; until then they may be published twice
            now = time.monotonic()
            if now - self._mark_warned > 10.0:  # every 50 ms would flood the log
                self._mark_warned = now
                log.warning("cannot mark forwarded rows", extra={"fields": {
                    "error": str(e), "rows": len(self.acked)}})
        else:
            self._mark_warned = 0.0
