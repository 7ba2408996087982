"""The gateway's handle on its forwarder process: start, restart if it dies, relay status."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import threading
from multiprocessing.connection import Connection
from typing import Any

from .forwarder import ForwarderOptions, child_main
from .metrics import Stats

log = logging.getLogger("hydrolink.gateway")


class ForwarderProcess:
    """Starts the forwarder process, restarts it if it dies, relays its status."""

    def __init__(self, opts: ForwarderOptions, stats: Stats) -> None:
        self.opts = opts
        self.stats = stats
        self.proc: Any = None
        self.conn: Connection | None = None
        self.stopping = False
        self.base_forwarded = stats.forwarded  # restored from the last run
        self.run_forwarded = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=child_main, args=(child, self.opts),
                                name="hydrolink-forwarder", daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent
        self.base_forwarded += self.run_forwarded
        self.run_forwarded = 0
        threading.Thread(target=self._reader, args=(parent,), daemon=True).start()

    def _reader(self, conn: Connection) -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                return
            if self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._apply, msg)

    def _apply(self, msg: Any) -> None:
        if msg[0] == "status":
            s = msg[1]
            self.stats.mqtt_connected = bool(s["connected"])
            self.stats.mqtt_error = str(s["error"])
            self.run_forwarded = int(s["forwarded"])
            self.stats.forwarded = self.base_forwarded + self.run_forwarded

    def send(self, msg: Any) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError, ValueError):
                self.conn.send(msg)

    async def supervise(self) -> None:
        """Start another forwarder if this one dies."""
        loop = asyncio.get_running_loop()
        while True:
            proc = self.proc
            await loop.run_in_executor(None, proc.join)
            if self.stopping:
                return
            log.error("forwarder exited; starting another", extra={"fields": {
                "exitcode": proc.exitcode}})
            self.stats.mqtt_connected = False
            await asyncio.sleep(1.0)
            if self.stopping:
                return
            self.start()

    async def stop(self) -> None:
        self.stopping = True
        self.send(("stop",))
        loop = asyncio.get_running_loop()
        if self.proc is not None:
            await loop.run_in_executor(None, self.proc.join, 10)
            if self.proc.is_alive():
                self.proc.terminate()
                await loop.run_in_executor(None, self.proc.join, 5)
            await asyncio.sleep(0.05)  # its last status message, for the saved counters
        if self.conn is not None:
            self.conn.close()
