"""The gateway's inputs: a TCP server for cellular stations and serial ports.

Each connection or port is a :class:`Link` with its own :class:`Deframer`; all of
them feed the same :class:`~host_tools.gateway.service.Gateway`, which sends the
ACK back on the link the frame came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import serial

from protocol.codec import Deframer

from .config import SerialSpec

log = logging.getLogger("hydrolink.gateway")


class Link(Protocol):
    name: str
    station: int | None
    deframer: Deframer
    bad_streak: int  # rejected frames since the last valid one

    def send(self, data: bytes) -> None: ...

    def close(self) -> None: ...


Feed = Callable[["Link", bytes], None]

# A station that does not read its ACKs should not make the gateway buffer without limit.
MAX_WRITE_BUFFER = 64 * 1024


class TcpLink(asyncio.Protocol):
    """One station connection."""

    def __init__(self, server: TcpServer) -> None:
        self.server = server
        self.name = "tcp"
        self.station: int | None = None
        self.deframer = Deframer()
        self.bad_streak = 0
        self.transport: asyncio.Transport | None = None
        self.last = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.name = f"tcp:{peer[0]}:{peer[1]}" if peer else "tcp"
        sock = transport.get_extra_info("socket")
        if sock is not None:
            _keepalive(sock)
        if len(self.server.links) >= self.server.max_connections:
            log.warning("connection refused", extra={"fields": {
                "link": self.name, "reason": "max_connections"}})
            transport.abort()
            return
        self.server.links.add(self)
        self.server.stats_connections(len(self.server.links))
        # debug: the info line is "station connected", once the first frame names it
        log.debug("connection opened", extra={"fields": {"link": self.name}})

    def data_received(self, data: bytes) -> None:
        self.last = time.monotonic()
        self.server.feed(self, data)

    def eof_received(self) -> bool | None:
        return False  # half-close: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.links.discard(self)
        self.server.stats_connections(len(self.server.links))

    def send(self, data: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        t.write(data)
        if t.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.warning("connection closed", extra={"fields": {
                "link": self.name, "reason": "station does not read its ACKs"}})
            t.abort()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def _keepalive(sock: socket.socket) -> None:
    """TCP keepalive finds half-open connections (a modem that lost power)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 15)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


class TcpServer:
    """The listener, its connections, and the idle sweeper."""

    def __init__(self, host: str, port: int, feed: Feed, *, idle_timeout: float,
                 max_connections: int, on_connections: Callable[[int], None]) -> None:
        self.host, self.port = host, port
        self.feed = feed
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.stats_connections = on_connections
        self.links: set[TcpLink] = set()
        self.server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: TcpLink(self), self.host, self.port, backlog=4096, reuse_address=True
        )
        sock = self.server.sockets[0]
        self.port = sock.getsockname()[1]
        self._sweeper = asyncio.create_task(self._sweep())
        log.info("listening", extra={"fields": {"address": f"{self.host}:{self.port}"}})

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.idle_timeout / 4))
            deadline = time.monotonic() - self.idle_timeout
            for link in [lk for lk in self.links if lk.last < deadline]:
                log.info("connection closed", extra={"fields": {
                    "link": link.name, "reason": "idle", "station": link.station}})
                link.close()

    async def stop(self) -> None:
        if self._sweeper:
            self._sweeper.cancel()
        if self.server:
            self.server.close()
            for link in list(self.links):
                link.close()
            await self.server.wait_closed()


class SerialLink:
    """One serial port (any pyserial URL), reopened with backoff when it fails.

    pyserial is blocking, so a reader thread hands bytes to the event loop and a
    writer thread sends the ACKs; the event loop never waits on the port.
    """

    def __init__(self, spec: SerialSpec, feed: Feed, loop: asyncio.AbstractEventLoop) -> None:
        self.spec = spec
        self.name = f"serial:{spec.url}"
        self.station: int | None = None
        self.deframer = Deframer()
        self.bad_streak = 0
        self.feed = feed
        self.loop = loop
        self.port: Any = None
        self.connected = threading.Event()
        self.tried = threading.Event()  # the first open was tried (start line, --status)
        self.error = ""                 # why the port is not open
        self.stopping = threading.Event()
        self.opens = 0
        self._out: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read_loop, name=self.name, daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name=self.name + ":w",
                                        daemon=True)

    def start(self) -> None:
        self._reader.start()
        self._writer.start()

    def send(self, data: bytes) -> None:
        self._out.put(data)

    def stop(self) -> None:
        self.stopping.set()
        self._out.put(None)
        port = self.port
        if port is not None:
            with contextlib.suppress(Exception):  # not every backend can cancel a read
                port.cancel_read()

    def close(self) -> None:
        """A serial line cannot be hung up on; its noise is only counted."""

    def join(self, timeout: float = 2.0) -> None:
        self._reader.join(timeout)
        self._writer.join(timeout)

    def _open(self) -> Any:
        s = self.spec
        extra: dict[str, Any] = {}
        if not s.url.startswith("rfc2217:"):  # pyserial's RFC 2217 client has none
            extra["write_timeout"] = 2
        return serial.serial_for_url(
            s.url, baudrate=s.baudrate, bytesize=s.bytesize, parity=s.parity,
            stopbits=s.stopbits, rtscts=s.rtscts, xonxoff=s.xonxoff, timeout=0.2, **extra,
        )

    def _read_loop(self) -> None:
        backoff = 0.2
        while not self.stopping.is_set():
            try:
                port = self._open()
            except Exception as e:  # noqa: BLE001 - whatever the backend raises, retry later
                self.error = (str(e).splitlines() or [type(e).__name__])[0]
                self.tried.set()
                log.warning("serial port unavailable", extra={"fields": {
                    "link": self.name, "error": self.error, "retry_s": backoff}})
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            self.port = port
            self.opens += 1
            self.deframer = Deframer()
            self.connected.set()
            self.error = ""
            self.tried.set()
            log.info("serial port open", extra={"fields": {"link": self.name}})
            backoff = 0.2
            try:
                while not self.stopping.is_set():
                    data = port.read(1)
                    if not data:
                        continue
                    while len(data) < 65536:
                        n = port.in_waiting
                        if not n:
                            break
                        more = port.read(n)
                        if not more:
                            break
                        data += more
                    self.loop.call_soon_threadsafe(self.feed, self, data)
            except Exception as e:  # noqa: BLE001 - a port failing must not end the thread
                # (pyserial's socket backend raises TypeError/AttributeError after close)
                if not self.stopping.is_set():
                    log.warning("serial port lost", extra={"fields": {
                        "link": self.name, "error": str(e).splitlines()[0] if str(e) else
                        type(e).__name__}})
            finally:
                self.connected.clear()
                self.port = None
                with contextlib.suppress(Exception):  # closing a dead port
                    port.close()
            self.stopping.wait(backoff)

    def _write_loop(self) -> None:
        while True:
            data = self._out.get()
            if data is None:
                return
            port = self.port
            if port is None:
                continue  # port down: the ACK is lost, the station sends again
            try:
                port.write(data)
            except Exception as e:  # noqa: BLE001 - the reader notices and reopens the port
                log.warning("serial write failed", extra={"fields": {
                    "link": self.name, "error": str(e) or type(e).__name__}})
