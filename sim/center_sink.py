"""What reaches the center: an MQTT subscriber (QoS 1, persistent session) that keeps every
reading and alarm the gateway published, keyed as the center store keys them.

A reading is (station, element, time); one delivered again with the same value and quality
is a redelivery (MQTT is at-least-once; the center's upsert absorbs it), one delivered again
with another value or quality is a duplicate (the station recorded that time twice). Until
the center store (``host_tools.center``) has its receiver, the simulator counts here; ``save``
writes what arrived to a SQLite file (table ``observations``) for the plots.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiomqtt


def unix(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@dataclass
class Arrived:
    value: float | None
    quality: str
    received: float  # gateway receipt, its (virtual) clock


@dataclass
class AlarmMsg:
    station: int
    kind: str
    state: str
    time: float  # the frame's time
    received: float
    value: float | None


@dataclass
class CenterSink:
    port: int
    client_id: str = "hydrolink-sim-center"
    host: str = "127.0.0.1"
    obs: dict[tuple[int, str, int], Arrived] = field(default_factory=dict)
    redelivered: int = 0
    duplicates: list[tuple[int, str, int, float | None, float | None]] = field(default_factory=list)
    alarms: list[AlarmMsg] = field(default_factory=list)
    status: list[dict[str, Any]] = field(default_factory=list)
    messages: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _ready: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="sim-center",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the center did not subscribe to the broker")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    async def _main(self) -> None:
        try:
            await self._serve()
        finally:
            # a client dropped mid-connect is freed while its loop still runs (its socket
            # callback calls into the loop: after asyncio.run it would print a traceback)
            gc.collect()
            await asyncio.sleep(0)

    async def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=self.client_id,
                                          clean_session=False, keepalive=5) as client:
                    for kind in ("obs", "alarm", "status"):
                        await client.subscribe(f"hydrolink/v1/+/{kind}", qos=1)
                    self._ready.set()
                    it = client.messages.__aiter__()
                    while not self._stop.is_set():
                        try:
                            m = await asyncio.wait_for(it.__anext__(), 0.5)
                        except TimeoutError:
                            continue
                        self.take(str(m.topic), json.loads(bytes(m.payload)))  # type: ignore[arg-type,unused-ignore]
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    def take(self, topic: str, p: dict[str, Any]) -> None:
        """One published message."""
        with self._lock:
            self.messages += 1
            kind = topic.rsplit("/", 1)[-1]
            sid = int(p["station"])
            rec = unix(p["received"])
            if kind == "status":
                self.status.append(p)
                return
            for s in p.get("series", []):
                for v in s["values"]:
                    key = (sid, s["element"], int(unix(v["time"])))
                    old = self.obs.get(key)
                    if old is None:
                        self.obs[key] = Arrived(v["value"], v["quality"], rec)
                    elif old.value == v["value"] and old.quality == v["quality"]:
                        self.redelivered += 1
                    else:
                        self.duplicates.append((*key, old.value, v["value"]))
            if kind == "alarm":
                for a in p.get("alarms", []):
                    self.alarms.append(AlarmMsg(sid, a["kind"], a["state"], unix(p["time"]), rec, a.get("value")))

    def snapshot_count(self) -> int:
        with self._lock:
            return self.messages

    def save(self, path: Path) -> None:
        """What arrived, as a SQLite table ``observations(station, element, time, value, quality, received)``."""
        path.unlink(missing_ok=True)
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE observations (station INTEGER, element TEXT, time INTEGER, value REAL,"
                   " quality TEXT, received REAL, PRIMARY KEY (station, element, time))")
        db.execute("CREATE TABLE station_alarms (station INTEGER, kind TEXT, state TEXT, time REAL,"
                   " received REAL, value REAL)")
        with self._lock:
            db.executemany("INSERT INTO observations VALUES (?, ?, ?, ?, ?, ?)",
                           [(*k, a.value, a.quality, a.received) for k, a in sorted(self.obs.items())])
            db.executemany("INSERT INTO station_alarms VALUES (?, ?, ?, ?, ?, ?)",
                           [(a.station, a.kind, a.state, a.time, a.received, a.value) for a in self.alarms])
        db.commit()
        db.close()
