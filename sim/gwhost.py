"""The production gateway (``host_tools.gateway``) in-process, on a virtual clock.

One asyncio loop on its own thread runs :class:`~host_tools.gateway.service.Gateway`
(pipeline, spool, group commits, ACKs, the forwarder process to MQTT). Virtual boards
hand it the bytes they write with the virtual time of the write (:meth:`GatewayHost.deliver`);
the gateway's clock reads that time from a context variable, so each frame is received
and ACKed at its own board's time even while frames of many boards share a group commit.
``clock_error_s`` makes the gateway's clock wrong (hours behind, a year ahead) for the
wrong-clock tests. :meth:`kill9` abandons the service object as ``kill -9`` would (the
forwarder process SIGKILLed, uncommitted frames gone, nothing saved) and
:meth:`restart` starts a new one over the same spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from host_tools.gateway.config import Config
from host_tools.gateway.service import Gateway
from host_tools.registry import Registry
from protocol.codec import Deframer

T = TypeVar("T")
NOW: contextvars.ContextVar[float] = contextvars.ContextVar("sim_now")


class SimLink:
    """The gateway's end of one board's virtual link (the ``Link`` protocol of the inputs)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.station: int | None = None
        self.deframer = Deframer()
        self.bad_streak = 0
        self.out: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.out.append(data)

    def close(self) -> None:
        self.deframer = Deframer()


class GatewayHost:
    """Runs, feeds, kills and restarts the real gateway.

    Args:
        workdir: the spool goes here.
        registry: the station registry.
        mqtt: broker URL for the forwarder, or None.
        clock_error_s: a function of true time (UNIX s) giving the gateway clock's error.
    """

    def __init__(self, workdir: Path, registry: Registry, mqtt: str | None,
                 clock_error_s: Callable[[float], float] | None = None) -> None:
        self.cfg = Config(registry=str(registry.path), spool=str(workdir / "spool.db"), mqtt=mqtt,
                          listen=None, spool_reserve_mb=0, log_level="warning",
                          mqtt_client_id=f"hydrolink-sim-{os.getpid()}")
        self.registry = registry
        self.fleet_t = 0.0  # the fleet's time, for what the gateway does on its own (housekeeping)
        self.clock_error_s = clock_error_s
        self.down = False  # gateway process down: bytes to it are lost
        self.gw: Gateway | None = None
        self.restarts = 0
        self.refused = 0  # frames the spool could not store (not ACKed)
        self.deliver_s = 0.0  # wall time boards spent waiting on the gateway (bench/sim_speed.py)
        self.delivers = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sim-gateway", daemon=True)
        logging.getLogger("hydrolink").setLevel(logging.ERROR)

    # ---- the clock ----------------------------------------------------------
    def clock(self) -> float:
        t = NOW.get(self.fleet_t)
        return t + (self.clock_error_s(t) if self.clock_error_s else 0.0)

    # ---- lifecycle ------------------------------------------------------------
    def call(self, coro: Any, timeout: float = 120) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def start(self) -> None:
        if not self.thread.is_alive():
            self.thread.start()
        self.call(self._start())

    async def _start(self) -> None:
        self.gw = Gateway(self.cfg, self.registry, clock=self.clock)
        await self.gw.start()

    def stop(self) -> None:
        """A clean stop (SIGTERM): commit, drain to MQTT briefly, close."""
        if self.gw is not None:
            self.refused += self.gw.stats.refused
            self.call(self.gw.stop())
            self.gw = None
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        if not self.loop.is_running():
            self.loop.close()

    def kill9(self) -> None:
        """The gateway dies where it is: no flush, no saved stats, forwarder SIGKILLed."""
        if self.gw is not None:
            self.refused += self.gw.stats.refused
            self.call(self._kill(self.gw))
            self.gw = None

    async def _kill(self, gw: Gateway) -> None:
        if gw.forwarder is not None:
            gw.forwarder.stopping = True
            proc = gw.forwarder.proc
            if proc is not None and proc.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                await asyncio.get_running_loop().run_in_executor(None, proc.join, 10)
        for t in gw.tasks:
            t.cancel()
        for t in gw.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if gw.writer is not None:  # the process's file descriptors close as it dies
            await asyncio.get_running_loop().run_in_executor(gw.writer.executor, gw.spool.close)
            gw.writer.executor.shutdown(wait=False)

    def restart(self) -> None:
        """A new service object over the same spool (after :meth:`kill9` or a stop)."""
        self.restarts += 1
        self.call(self._start())

    # ---- the hot path -----------------------------------------------------------
    def deliver(self, link: SimLink, t_unix: float, data: bytes) -> list[bytes]:
        """Bytes a board wrote at true time ``t_unix``; returns what the gateway sent back."""
        if self.down or self.gw is None:
            return []
        t0 = time.perf_counter()
        out = list(self.call(self._deliver(link, t_unix, data)))
        self.deliver_s += time.perf_counter() - t0
        self.delivers += 1
        return out

    async def _deliver(self, link: SimLink, t_unix: float, data: bytes) -> list[bytes]:
        NOW.set(t_unix)
        gw = self.gw
        assert gw is not None
        link.out = []
        gw.feed(link, data)
        while True:
            mine = [f for (sid, _), f in gw.pending.items() if sid == link.station]
            if not mine:
                break
            await asyncio.gather(*mine, return_exceptions=True)
            await asyncio.sleep(0)
        await asyncio.sleep(0)  # the done-callbacks (ACKs) of the last commit
        return link.out

    def pending_count(self) -> int:
        """Frames in the spool not yet PUBACKed by the broker."""
        gw = self.gw
        if gw is None or gw.writer is None:
            return -1
        return int(self.call(gw.writer.call(gw.spool.pending_count)))
