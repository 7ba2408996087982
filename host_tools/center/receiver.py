"""The center's MQTT receiver: store each message, THEN acknowledge it.

paho-mqtt runs the connection on its own thread with ``manual_ack=True``: a QoS 1
message is put on a queue and NOT acknowledged. A converter thread takes up to
``batch_max`` messages (or what arrived within ``batch_wait`` seconds of the first) and
converts them (:func:`host_tools.center.messages.convert`); the writer thread stores
each batch in one transaction, and only after the COMMIT sends its PUBACKs, in arrival
order (the next batch is converted while the database works on this one). The
session is persistent (MQTT 5: clean start off and a session expiry; 3.1.1:
``clean_session=False``), so whatever was not acknowledged when the center died,
or while the database was away, the broker delivers again; the store's unique
keys make the second copy harmless. QoS 2 would not do: paho sends PUBREC on
receipt, after which the broker never sends the message again.

A database error keeps the batch in memory, reconnects with back-off and writes it
again; the broker stops sending when the unacknowledged window (``inflight``) is full.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
import time as _time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ..gateway.config import MqttTarget, parse_mqtt_url
from ..registry import load_registry
from .db import StoreError
from .gaps import GapPolicy
from .messages import PREFIX, convert_all, topics
from .model import Batch
from .pahofast import install as _fast_properties
from .store import Store, open_store
from .watchtask import SpoolPaths, WatchTask

log = logging.getLogger("hydrolink.center")
Clock = Callable[[], float]
Message = tuple[int, mqtt.MQTTMessage]  # (connection generation, message)


class Center:
    """One receiver worker: MQTT in, store out, acks after commit. Thread-based.

    ``clock`` stamps what the center records (arrival of station messages, rejects,
    revisions); the simulator passes its virtual clock. ``start()`` returns once
    running; ``stop()`` writes what was received, acknowledges it and disconnects.
    """

    def __init__(self, db_url: str, mqtt_url: str, *, registry: str | Path | None = None,
                 share: str | None = None, client_id: str | None = None, clock: Clock = _time.time,
                 protocol: str = "5", batch_max: int = 500, batch_wait: float = 0.05,
                 inflight: int = 5000, session_expiry: int = 7 * 86400, status_every: float = 5.0,
                 topic_prefix: str = PREFIX, watch: bool = False, gateway_spool: SpoolPaths | None = None,
                 watch_every: float = 10.0, gap_policy: GapPolicy | None = None) -> None:
        if share and protocol != "5":
            raise ValueError("--share needs MQTT 5 (shared subscriptions)")
        self.db_url, self.target = db_url, parse_mqtt_url(mqtt_url)
        self.registry = Path(registry) if registry else None
        self.share, self.clock, self.protocol, self.prefix = share, clock, protocol, topic_prefix
        self.client_id = client_id or f"hydrolink-center-{socket.gethostname()}"
        self.batch_max, self.batch_wait, self.inflight = batch_max, batch_wait, inflight
        self.session_expiry, self.status_every = session_expiry, status_every
        self.stats: Counter[str] = Counter()
        self.rejects: Counter[str] = Counter()
        self.timing: dict[str, float] = {"convert_s": 0.0, "store_s": 0.0}  # seconds spent
        self.connected = threading.Event()
        self.store: Store | None = None
        self._queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._gen = 0
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._writer: threading.Thread | None = None
        self._converter: threading.Thread | None = None
        self._ready: queue.Queue[tuple[list[Message], Batch] | None] = queue.Queue(maxsize=2)
        self._writer_done = threading.Event()
        self._client = self._make_client()
        # gaps, center alarms, QC flags (host_tools/center/watchtask.py), on this worker's clock
        self.watch = WatchTask(clock, self._publish, gateway_spool=gateway_spool, every=watch_every,
                               policy=gap_policy, topic_prefix=topic_prefix) if watch else None
        self._stored: list[Any] = []  # the last committed batch's readings, for the watch
        self.started = clock()

    # ------------------------------------------------------------ MQTT side (paho's thread)

    def _make_client(self) -> mqtt.Client:
        v5 = self.protocol == "5"
        if v5:
            _fast_properties()  # paho's per-message Properties tables: a third of its time
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                        clean_session=None if v5 else False, manual_ack=True)
        t: MqttTarget = self.target
        if t.username is not None:
            c.username_pw_set(t.username, t.password)
        if t.tls:
            c.tls_set()
        c.reconnect_delay_set(1, 10)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.on_connect_fail = self._on_connect_fail
        return c

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("mqtt refused", extra={"fields": {"reason": str(reason)}})
            return
        self._gen += 1
        prefix = f"$share/{self.share}/" if self.share else ""
        client.subscribe([(prefix + t, 1) for t in topics(self.prefix)])
        self.stats["connects"] += 1
        log.info("mqtt connected", extra={"fields": {"broker": f"{self.target.host}:{self.target.port}",
                                                      "client_id": self.client_id, "share": self.share}})

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        self.stats["connect_failures"] += 1
        if self.stats["connect_failures"] in (1, 10) or self.stats["connect_failures"] % 100 == 0:
            log.warning("mqtt connect failed, retrying", extra={"fields": {
                "broker": f"{self.target.host}:{self.target.port}", "attempts": self.stats["connect_failures"]}})

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: list[Any], _p: Any) -> None:
        bad = [str(r) for r in reasons if r.is_failure]
        if bad:
            log.error("mqtt subscription refused", extra={"fields": {"reason": bad[0], "share": self.share}})
            return
        self.connected.set()
        log.info("mqtt subscribed", extra={"fields": {"topics": f"{self.prefix}/+/..", "share": self.share}})

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("mqtt disconnected", extra={"fields": {"reason": str(reason)}})

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._queue.put((self._gen, msg))

    def _publish(self, topic: str, payload: bytes, retain: bool) -> None:
        self._client.publish(topic, payload, qos=1, retain=retain)  # the watch's center_alarm/center_state

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Open the store (one-line :class:`StoreError` if it cannot), connect, start writing."""
        self.store = open_store(self.db_url, clock=self.clock)
        self._sync_registry()
        props = None
        if self.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.session_expiry
            props.ReceiveMaximum = min(self.inflight, 65535)
        self._client.connect_async(self.target.host, self.target.port, keepalive=15,
                                   clean_start=False if self.protocol == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                                   properties=props)
        self._client.loop_start()
        self._writer = threading.Thread(target=self._write_loop, name="center-writer", daemon=True)
        self._converter = threading.Thread(target=self._convert_loop, name="center-convert", daemon=True)
        self._writer.start()
        self._converter.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write and acknowledge what arrived, then disconnect and close the store."""
        self._stop.set()
        for t in (self._converter, self._writer):
            if t is not None:
                t.join(timeout)
        with contextlib.suppress(Exception):
            self._client.disconnect()
        self._client.loop_stop()
        if self.watch is not None:
            self.watch.close()
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.close()
            self.store = None

    def reload_registry(self) -> None:
        """Ask the writer to read the registry file again (SIGHUP)."""
        self._reload.set()

    def wait_connected(self, timeout: float) -> bool:
        """True once subscribed to the broker."""
        return self.connected.wait(timeout)

    def snapshot(self) -> dict[str, Any]:
        """The counters (``--status`` and metrics): messages, readings, rejects by reason..."""
        timing = {k: round(v, 3) for k, v in self.timing.items()}
        return {**self.stats, **timing, "rejects": dict(self.rejects), "connected": self.connected.is_set(),
                "client_id": self.client_id, "pid": os.getpid(), "queued": self._queue.qsize()}

    # ------------------------------------------------------------ writer thread

    def _sync_registry(self) -> None:
        if self.registry is None or self.store is None:
            return
        try:
            reg = load_registry(self.registry)
        except Exception as e:  # a bad edit must not stop the receiver: keep the old metadata
            log.error("registry not loaded", extra={"fields": {"error": str(e)}})
            return
        n = self.store.sync_stations(reg.stations.values())
        log.info("registry synced", extra={"fields": {"file": str(self.registry), "stations": n}})

    def _take(self, limit: int) -> list[Message]:
        try:
            batch = [self._queue.get(timeout=0.1)]
        except queue.Empty:
            return []
        deadline = _time.monotonic() + self.batch_wait
        while len(batch) < limit:
            left = deadline - _time.monotonic()
            try:
                batch.append(self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _convert_loop(self) -> None:
        left: int | None = None  # once stopping: how many received messages are still to write
        while not self._writer_done.is_set():
            if left is None and self._stop.is_set():
                left = self._queue.qsize()
            if left is not None and left <= 0:
                break
            batch = self._take(self.batch_max if left is None else min(left, self.batch_max))
            if left is not None:
                left = left - len(batch) if batch else 0
            if batch:
                t0 = _time.perf_counter()
                rows = convert_all(((m.topic, bytes(m.payload)) for _, m in batch), self.clock(), self.prefix)
                self.timing["convert_s"] += _time.perf_counter() - t0
                if not self._hand_over((batch, rows)):
                    return
        self._hand_over(None)  # the writer's signal to finish

    def _hand_over(self, item: tuple[list[Message], Batch] | None) -> bool:
        while not self._writer_done.is_set():
            try:
                self._ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def _write_loop(self) -> None:
        try:
            self._write()
        finally:
            self._writer_done.set()

    def _write(self) -> None:
        last_status = 0.0
        while True:
            if self._reload.is_set():
                self._reload.clear()
                self._sync_registry()
            try:
                item = self._ready.get(timeout=0.1)
            except queue.Empty:
                item = ([], Batch())
            if item is None:  # stopping, everything received is written
                self._save_status()
                return
            batch, rows = item
            if batch:
                if not self._store_until_committed(batch, rows):
                    return  # stopping with the database away: the broker keeps them
                self._ack(batch)
            if self.watch is not None and self.store is not None:
                self.watch.poll(self.store, self._stored)
                self._stored = []
            if _time.monotonic() - last_status >= self.status_every:
                last_status = _time.monotonic()
                self._save_status()

    def _store_until_committed(self, batch: list[Message], rows: Batch) -> bool:
        t1 = _time.perf_counter()
        delay = 0.2
        while True:
            try:
                if self.store is None:
                    self.store = open_store(self.db_url, clock=self.clock)
                result = self.store.store_batch(rows)
                self.timing["store_s"] += _time.perf_counter() - t1
                break
            except Exception as e:  # database away or broken: keep the batch, retry
                self.stats["db_errors"] += 1
                log.warning("store failed, will retry", extra={"fields": {
                    "error": (str(e).strip().splitlines() or [type(e).__name__])[0], "messages": len(batch)}})
                if self.store is not None:
                    with contextlib.suppress(Exception):
                        self.store.close()
                    self.store = None
                if self._stop.wait(delay):
                    return False
                delay = min(delay * 2, 5.0)
        self._count(batch, rows, result)
        self._stored = rows.observations
        return True

    def _count(self, batch: list[Message], rows: Batch, result: Any) -> None:
        s = self.stats
        s["messages"] += len(batch)
        s["batches"] += 1
        s["readings_inserted"] += result.inserted
        s["readings_duplicate"] += result.duplicates
        s["readings_revised"] += result.revised
        s["status_rows"] += len(rows.status)
        s["station_alarms"] += len(rows.alarms)
        s["events"] += len(rows.events)
        for r in rows.rejects:
            self.rejects[r.reason] += 1
            s["rejected"] += 1
            log.warning("message rejected", extra={"fields": {"topic": r.topic, "reason": r.reason,
                                                               "detail": r.detail}})

    def _ack(self, batch: list[Message]) -> None:
        gen = self._gen
        for g, m in batch:
            if g == gen and m.qos:  # older connections' copies come again and are acked then
                self._client.ack(m.mid, m.qos)
                self.stats["acked"] += 1

    def _save_status(self) -> None:
        if self.store is None:
            return
        try:
            self.store.save_worker(self.client_id, self.started, self.snapshot())
        except Exception as e:
            log.warning("status not saved", extra={"fields": {"error": str(e).splitlines()[0] if str(e) else e}})


__all__ = ["Center", "StoreError"]
