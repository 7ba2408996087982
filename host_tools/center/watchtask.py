"""Glue between the receiver and :class:`~host_tools.center.watch.Watch`, and ``center --gaps``.

The receiver's writer thread calls :meth:`WatchTask.poll` after each committed batch and
whenever it is idle (so silence is noticed when nothing arrives at all); the task ticks
the watch every ``every`` seconds of the receiver's clock. An error in the watch is
logged and counted, never allowed to stop the receiver.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .gaps import GapPolicy
from .model import Gap, ObsRow
from .watch import GatewayQueue, Publish, Watch

log = logging.getLogger("hydrolink.center.watch")


class WatchTask:
    """Runs a :class:`Watch` on the receiver's store, clock and MQTT client."""

    def __init__(self, clock: Callable[[], float], publish: Publish | None, *,
                 gateway_spool: str | Path | None = None, every: float = 10.0,
                 policy: GapPolicy | None = None, topic_prefix: str = "hydrolink/v1") -> None:
        self.clock, self.publish, self.every = clock, publish, every
        self.queue = GatewayQueue(gateway_spool, clock) if gateway_spool else None
        self.policy, self.prefix = policy, topic_prefix
        self.watch: Watch | None = None
        self.last_tick: float | None = None
        self.errors = 0
        self.ticks = 0

    def poll(self, store: Any, observations: Iterable[ObsRow] = ()) -> None:
        """Note a committed batch's readings; tick when due. ``store``: the receiver's current one."""
        try:
            if self.watch is None:
                q = self.queue
                self.watch = Watch(store, None, self.clock, self.publish,
                                   q.queue_command if q else None, q.command_result if q else None,
                                   policy=self.policy, topic_prefix=self.prefix)
            self.watch.store = store  # the receiver reopens its store after a database outage
            self.watch.on_batch(observations)
            now = self.clock()
            if self.last_tick is None or now - self.last_tick >= self.every:
                self.last_tick = now
                self.ticks += 1
                counts = self.watch.tick(now)
                if any(counts.values()):
                    log.info("watch", extra={"fields": counts})
        except Exception as e:  # the database went away, a bad registry value...: next tick retries
            self.errors += 1
            log.warning("watch tick failed", extra={"fields": {"error": str(e).splitlines()[0] if str(e) else
                                                                type(e).__name__}})

    def close(self) -> None:
        if self.queue is not None:
            self.queue.close()


def gaps_table(rows: Sequence[Gap], interval: dict[int, int]) -> list[dict[str, Any]]:
    """Gap rows as dicts (``hydrolink center --gaps``, ``report``), with the missing count."""
    from host_tools.gateway.payload import iso

    return [{"station": g.station, "element": g.element, "from": iso(g.start)[:-5] + "Z",
             "to": iso(g.end)[:-5] + "Z", "missing": (g.end - g.start) // interval.get(g.station, 300) + 1,
             "state": g.state, "command_id": g.command_id, "attempts": g.attempts, "updated": iso(g.updated)}
            for g in rows]


def print_gaps(db_url: str, station: int | None = None, as_json: bool = False,
               states: Iterable[str] | None = None) -> int:
    """``hydrolink center --gaps``: one line per gap (or JSON Lines); returns the exit status."""
    from .store import open_store

    with open_store(db_url) as store:
        interval = {s.station: s.record_interval_s for s in store.stations()}
        rows = gaps_table(store.gaps(station=station, states=states), interval)
    if as_json:
        for r in rows:
            print(json.dumps(r))
        return 0
    print(f"{'station':>8}  {'element':<16} {'from':<20} {'to':<20} {'missing':>7}  {'state':<10} command")
    for r in rows:
        print(f"{r['station']:>8}  {r['element']:<16} {r['from']:<20} {r['to']:<20} {r['missing']:>7}  "
              f"{r['state']:<10} {'' if r['command_id'] is None else r['command_id']}")
    by_state: dict[str, int] = {}
    for r in rows:
        by_state[r["state"]] = by_state.get(r["state"], 0) + 1
    print(f"{len(rows)} gaps" + (": " + ", ".join(f"{n} {s}" for s, n in sorted(by_state.items()))
                                  if rows else ""))
    return 0
