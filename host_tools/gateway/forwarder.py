"""Publish the spool to MQTT with aiomqtt, QoS 1, in spool order.

A row is marked forwarded only after the broker's PUBACK. While the broker is
away the spool grows; on reconnect the forwarder starts again from the oldest
unforwarded row, so a message whose PUBACK was lost is published again
(QoS 1: at least once, never lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Callable
from typing import Any

import aiomqtt

from .config import MqttTarget
from .metrics import Stats
from .spool import SpoolWriter

log = logging.getLogger("hydrolink.gateway")

BATCH = 1000        # rows read from the spool at a time
WINDOW = 256        # publishes awaiting their PUBACK (aiomqtt and paho scan them: O(n))
PUBACK_TIMEOUT = 30.0
STATE_EVERY = 5.0   # seconds between retained state updates of a station


class Forwarder:
    def __init__(
        self,
        target: MqttTarget,
        writer: SpoolWriter,
        stats: Stats,
        *,
        client_id: str,
        topic_prefix: str,
        state_of: Callable[[int], dict[str, Any]],
        ca: str | None = None,
        cert: str | None = None,
        key: str | None = None,
    ) -> None:
        self.target = target
        self.writer = writer
        self.stats = stats
        self.client_id = client_id
        self.topic_prefix = topic_prefix.rstrip("/")
        self.state_of = state_of
        self.tls: ssl.SSLContext | None = None
        if target.tls:
            self.tls = ssl.create_default_context(cafile=ca)
            if cert:
                self.tls.load_cert_chain(cert, key)
        self.wake = asyncio.Event()
        self.dirty: set[int] = set()
        self.stopping = False

    def notify(self, station: int) -> None:
        """A frame of ``station`` was stored."""
        self.dirty.add(station)
        self.wake.set()

    async def run(self) -> None:
        backoff = 0.2
        while not self.stopping:
            try:
                async with aiomqtt.Client(
                    self.target.host, self.target.port,
                    username=self.target.username, password=self.target.password,
                    identifier=self.client_id, tls_context=self.tls, keepalive=30,
                    timeout=10, max_inflight_messages=WINDOW, clean_session=True,
                    logger=logging.getLogger("hydrolink.mqtt"),
                ) as client:
                    # many publishes await their PUBACK at once, by design
                    client.pending_calls_threshold = WINDOW * 2
                    self.stats.mqtt_connected = True
                    self.stats.mqtt_error = ""
                    log.info("mqtt connected", extra={"fields": {
                        "broker": f"{self.target.host}:{self.target.port}"}})
                    backoff = 0.2
                    await self._session(client)
            except aiomqtt.MqttError as e:
                if self.stats.mqtt_connected or self.stats.mqtt_error != str(e):
                    log.warning("mqtt unavailable", extra={"fields": {
                        "broker": f"{self.target.host}:{self.target.port}", "error": str(e),
                        "pending": self.stats.spool_pending}})
                self.stats.mqtt_error = str(e)
            finally:
                self.stats.mqtt_connected = False
            if self.stopping:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _session(self, client: aiomqtt.Client) -> None:
        disconnected: asyncio.Future[Any] | None = getattr(client, "_disconnected", None)
        pump = asyncio.create_task(self._pump(client))
        state = asyncio.create_task(self._states(client))
        waits: set[asyncio.Future[Any]] = {pump, state}
        if disconnected is not None:
            waits.add(disconnected)
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (pump, state):
                t.cancel()
            for t in (pump, state):
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await t
        for d in done:
            if d is disconnected:
                raise aiomqtt.MqttError(f"connection lost: {d.exception()}")
            d.result()

    async def _pump(self, client: aiomqtt.Client) -> None:
        cursor = 0
        window = asyncio.Semaphore(WINDOW)
        failed: list[BaseException] = []
        tasks: set[asyncio.Task[None]] = set()

        async def publish(row_id: int, topic: str, payload: bytes) -> None:
            try:
                await client.publish(topic, payload, qos=1, timeout=PUBACK_TIMEOUT)
            except BaseException as e:  # noqa: BLE001 - handed to the pump
                failed.append(e)
            else:
                self.writer.mark_forwarded((row_id,))
                self.stats.forwarded += 1
            finally:
                window.release()

        try:
            while True:
                if failed:
                    raise failed[0]
                self.wake.clear()
                rows = await self.writer.call(self.writer.spool.pending, cursor, BATCH)
                if not rows:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), 1.0)
                    continue
                for row_id, topic, payload in rows:
                    await window.acquire()
                    if failed:
                        raise failed[0]
                    t = asyncio.create_task(publish(row_id, topic, payload))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
                    cursor = row_id
        finally:
            for t in list(tasks):
                t.cancel()

    async def _states(self, client: aiomqtt.Client) -> None:
        """Retained ``<prefix>/<station>/state``: last seen, link quality, clock offset."""
        while True:
            await asyncio.sleep(STATE_EVERY)
            dirty, self.dirty = self.dirty, set()
            for sid in sorted(dirty):
                payload = json.dumps(self.state_of(sid), separators=(",", ":"))
                await client.publish(f"{self.topic_prefix}/{sid}/state", payload, qos=1,
                                     retain=True, timeout=PUBACK_TIMEOUT)
