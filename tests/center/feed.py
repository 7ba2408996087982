"""Messages exactly as the gateway publishes them, a publisher, and counting what was stored.

Payloads are built from real frames through ``host_tools.gateway.payload.frame_payload``
(the gateway's own code), so the center is tested against the real format.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from host_tools.gateway.payload import encode_json, frame_payload
from protocol import codec as c
from protocol.elements import BY_NAME
from tests.gateway.helpers import wait_for

T0 = 80_000_000  # hydrolink seconds (2026-07-14)
UNIX0 = c.EPOCH_UNIX + T0
Msg = tuple[str, bytes]


def obs(station: int, seq: int, start: int, n: int = 12, interval: int = 300,
        elements: Iterable[str] = ("water_level", "rain"), seed: int = 0, prefix: str = "hydrolink/v1",
        kind: int = c.DATA) -> Msg:
    """One ``obs`` message: ``n`` values per element from hydrolink time ``start``."""
    rnd = random.Random(f"{station}/{start}/{seed}")
    series = tuple(
        c.Series(BY_NAME[e].id, interval, start,
                 tuple(rnd.randrange(60_000, 80_000) if e == "water_level" else rnd.randrange(0, 30)
                       for _ in range(n)),
                 (0,) * n)
        for e in elements
    )
    frame = c.Frame(kind, station, seq, start + (n - 1) * interval + 3, c.Report(series))
    received = c.EPOCH_UNIX + frame.time + 0.25
    doc = frame_payload(frame, name=f"station {station}", received=received, link="tcp:127.0.0.1:1")
    topic = "alarm" if kind == c.ALARM else "obs"
    return f"{prefix}/{station}/{topic}", encode_json(doc)


def status(station: int, seq: int, t: int, battery_mv: int = 12_600) -> Msg:
    frame = c.Frame(c.STATUS, station, seq, t, c.Status({"battery_mv": battery_mv, "clock_offset": -2,
                                                         "queue_depth": 3, "firmware": "1.0"}))
    doc = frame_payload(frame, name=None, received=c.EPOCH_UNIX + t + 0.5, link="tcp:x")
    return f"hydrolink/v1/{station}/status", encode_json(doc)


def keys(messages: Iterable[Msg]) -> set[tuple[int, str, int]]:
    """The (station, element, UNIX time) of every reading in ``obs``/``alarm`` messages."""
    import json

    from host_tools.center.messages import unix_time

    out = set()
    for topic, payload in messages:
        if topic.endswith(("/obs", "/alarm")):
            doc = json.loads(payload)
            for s in doc["series"]:
                for v in s["values"]:
                    out.add((doc["station"], s["element"], int(unix_time(v["time"], "t"))))
    return out


@dataclass
class Fleet:
    """A deterministic run: ``stations`` stations, ``rounds`` obs messages each."""

    stations: range
    rounds: int
    n: int = 12
    messages: list[Msg] = field(default_factory=list)

    def __post_init__(self) -> None:
        for r in range(self.rounds):
            for s in self.stations:
                self.messages.append(obs(s, r + 1, T0 + r * self.n * 300, self.n))

    def __iter__(self) -> Iterator[Msg]:
        return iter(self.messages)

    @property
    def readings(self) -> int:
        return len(keys(self.messages))


class Publisher:
    """A paho QoS 1 publisher (what a gateway does), waiting for every PUBACK."""

    def __init__(self, port: int, client_id: str = "test-pub") -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.lock = threading.Lock()

    def publish(self, messages: Iterable[Msg], retain: bool = False, timeout: float = 60) -> int:
        infos = [self.client.publish(t, p, qos=1, retain=retain) for t, p in messages]
        wait_for(lambda: all(i.is_published() for i in infos), timeout, "PUBACKs from the broker")
        return len(infos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
