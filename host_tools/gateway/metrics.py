"""Counters of the gateway, kept as plain numbers on the hot path.

:class:`Stats` is updated by the pipeline for every frame; the Prometheus
collector and ``hydrolink gateway --status`` read it (the latter from the snapshot
the gateway saves into the spool every few seconds).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

# Every reason a frame can be refused: the SPEC §9 errors, plus the gateway's own.
REJECT_REASONS = (
    "malformed", "truncated", "oversize", "bad_crc", "unknown_version", "bad_tag",
    "unknown_station", "downlink_type", "replay",
)
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass
class StationStats:
    last_seen: float = 0.0        # Unix time of the last valid frame
    last_seq: int = 0
    link: str = ""
    frames: int = 0               # accepted (new) frames
    duplicates: int = 0
    bad_crc: int = 0              # line errors attributed to this station
    rejected: int = 0             # other rejections (bad tag, replay, malformed)
    clock_offset: float | None = None  # station clock minus gateway clock, s (see pipeline)
    offsets: list[float] = field(default_factory=list)  # header - received, last few frames

    def bad_crc_rate(self) -> float:
        n = self.frames + self.duplicates + self.bad_crc
        return self.bad_crc / n if n else 0.0


@dataclass
class Stats:
    started: float = field(default_factory=time.time)
    rejected: Counter[str] = field(default_factory=Counter)
    accepted: Counter[str] = field(default_factory=Counter)  # by frame type name
    duplicates: int = 0
    acks: int = 0
    refused: int = 0              # frames not ACKed because the spool could not store them
    spool_error: str = ""         # why, while it lasts
    forwarded: int = 0
    mqtt_connected: bool = False
    mqtt_error: str = ""
    spool_pending: int = 0
    links: Counter[str] = field(default_factory=Counter)  # bytes received per link kind
    connections: int = 0
    inputs: dict[str, str] = field(default_factory=dict)  # input -> "open", "NOT OPEN: why"
    stations: dict[int, StationStats] = field(default_factory=dict)
    dirty: set[int] = field(default_factory=set)  # stations changed since the last save
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0
    latency_count: int = 0

    def station(self, sid: int) -> StationStats:
        """The station's counters, to update: marks it for the next save."""
        self.dirty.add(sid)
        s = self.stations.get(sid)
        if s is None:
            s = self.stations[sid] = StationStats()
        return s

    def station_row(self, sid: int) -> dict[str, Any]:
        st = self.stations[sid]
        return asdict(st) | {"bad_crc_rate": round(st.bad_crc_rate(), 6)}

    def observe_latency(self, seconds: float) -> None:
        i = 0
        for i, bound in enumerate(LATENCY_BUCKETS):  # noqa: B007
            if seconds <= bound:
                break
        else:
            i = len(LATENCY_BUCKETS)
        self.latency_buckets[i] += 1
        self.latency_sum += seconds
        self.latency_count += 1

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """JSON-able view of the gateway-wide counters for ``--status`` (the stations are
        saved one row each, only when they change: a national network has 100,000)."""
        return {
            "saved": time.time() if now is None else now, "started": self.started,
            "rejected": {r: self.rejected.get(r, 0) for r in REJECT_REASONS},
            "accepted": dict(self.accepted), "duplicates": self.duplicates, "acks": self.acks,
            "refused": self.refused, "spool_error": self.spool_error,
            "forwarded": self.forwarded, "mqtt_connected": self.mqtt_connected,
            "mqtt_error": self.mqtt_error, "spool_pending": self.spool_pending,
            "connections": self.connections, "inputs": self.inputs,
        }


class StatsCollector(Collector):
    """Builds the Prometheus metrics from :class:`Stats` at scrape time."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Any]:
        s = self.stats
        c = CounterMetricFamily("hydrolink_frames_rejected", "Frames rejected, by reason",
                                labels=["reason"])
        for r in REJECT_REASONS:
            c.add_metric([r], s.rejected.get(r, 0))
        yield c
        c = CounterMetricFamily("hydrolink_frames_accepted", "New frames stored, by type",
                                labels=["type"])
        for t, n in sorted(s.accepted.items()):
            c.add_metric([t], n)
        yield c
        yield CounterMetricFamily("hydrolink_frames_duplicate", "Duplicates ACKed again",
                                  value=s.duplicates)
        yield CounterMetricFamily("hydrolink_acks_sent", "ACK frames sent", value=s.acks)
        yield CounterMetricFamily("hydrolink_frames_refused",
                                  "Frames not ACKed because the spool could not store them",
                                  value=s.refused)
        yield CounterMetricFamily("hydrolink_mqtt_published", "Rows forwarded (PUBACK received)",
                                  value=s.forwarded)
        yield GaugeMetricFamily("hydrolink_mqtt_connected", "1 while connected to the broker",
                                value=int(s.mqtt_connected))
        yield GaugeMetricFamily("hydrolink_spool_pending", "Rows waiting for the broker",
                                value=s.spool_pending)
        yield GaugeMetricFamily("hydrolink_spool_ok", "0 while the spool refuses writes",
                                value=int(not s.spool_error))
        yield GaugeMetricFamily("hydrolink_tcp_connections", "Open station connections",
                                value=s.connections)
        h = HistogramMetricFamily("hydrolink_ack_latency_seconds",
                                  "Frame received to ACK written")
        cum, buckets = 0, []
        for bound, n in zip((*LATENCY_BUCKETS, float("inf")), s.latency_buckets, strict=True):
            cum += n
            buckets.append(("+Inf" if bound == float("inf") else str(bound), cum))
        h.add_metric([], buckets, s.latency_sum)
        yield h
        seen = GaugeMetricFamily("hydrolink_station_last_seen_seconds",
                                 "Unix time of the station's last valid frame", labels=["station"])
        quality = GaugeMetricFamily("hydrolink_station_bad_crc_ratio",
                                    "Bad-CRC frames / all frames from the station",
                                    labels=["station"])
        offset = GaugeMetricFamily("hydrolink_station_clock_offset_seconds",
                                   "Station clock minus gateway clock", labels=["station"])
        frames = CounterMetricFamily("hydrolink_station_frames", "New frames from the station",
                                     labels=["station"])
        for sid, st in s.stations.items():
            label = [str(sid)]
            seen.add_metric(label, st.last_seen)
            quality.add_metric(label, st.bad_crc_rate())
            frames.add_metric(label, st.frames)
            if st.clock_offset is not None:
                offset.add_metric(label, st.clock_offset)
        yield seen
        yield quality
        yield offset
        yield frames
