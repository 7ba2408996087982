"""Prometheus metrics of a center worker (``hydrolink center --metrics HOST:PORT``).

Read from :meth:`Center.snapshot`, the same counters ``--status`` shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .messages import REJECT_REASONS

_COUNTERS = {
    "messages": "MQTT messages written (acknowledged after their commit)",
    "readings_inserted": "readings stored for the first time",
    "readings_duplicate": "readings that were stored already (redelivery, backfill)",
    "readings_revised": "readings that came again with another value or quality (a revision)",
    "batches": "transactions committed",
    "db_errors": "database errors (the batch is kept and written again)",
    "connects": "MQTT connections made",
}


class CenterCollector(Collector):
    """Turns a snapshot into metric families at each scrape."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        snap = self.snapshot()
        for name, doc in _COUNTERS.items():
            c = CounterMetricFamily(f"hydrolink_center_{name}", doc)
            c.add_metric([], float(snap.get(name, 0)))
            yield c
        rej = CounterMetricFamily("hydrolink_center_rejected", "messages or parts not stored, by reason",
                                  labels=["reason"])
        for reason in REJECT_REASONS:
            rej.add_metric([reason], float(snap["rejects"].get(reason, 0)))
        yield rej
        up = GaugeMetricFamily("hydrolink_center_mqtt_connected", "1 while subscribed to the broker")
        up.add_metric([], 1.0 if snap["connected"] else 0.0)
        yield up
        q = GaugeMetricFamily("hydrolink_center_queued", "messages received, not yet written")
        q.add_metric([], float(snap["queued"]))
        yield q


def serve_metrics(host: str, port: int, snapshot: Callable[[], dict[str, Any]]) -> Any:
    """Start the HTTP endpoint on its own thread; returns the server (``shutdown()`` then
    ``server_close()`` stop it)."""
    reg = CollectorRegistry()
    reg.register(CenterCollector(snapshot))
    server, _ = start_http_server(port, host, registry=reg)
    return server
