"""Glue between the receiver and :class:`~host_tools.center.watch.Watch`, and ``center --gaps``.

The receiver's writer thread calls :meth:`WatchTask.poll` after each committed batch and
whenever it is idle (so silence is noticed when nothing arrives at all); the task ticks
the watch every ``every`` seconds of the receiver's clock. An error in the watch is
logged and counted, never allowed to stop the receiver.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .gaps import GapPolicy
from .model import Gap
from .watch import Publish, Watch

SpoolPaths = str | Path | Sequence[str | Path]

log = logging.getLogger("hydrolink.center.watch")


class GatewayQueue:
    """The gateways' command queues, reached through their spool files (SQLite: another
    process may write them while the gateway runs; it picks commands up within a second).

    With several spools (several gateways on this host or on shared storage), a command
    goes to the spool of the gateway that received the station's newest frame. A request
    expires when the watch would send it again, so a station out of reach never gets
    the same range twice.
    """

    def __init__(self, paths: SpoolPaths, clock: Callable[[], float] = time.time) -> None:
        from host_tools.gateway.spool import Spool, SpoolError

        self.clock = clock
        names = [paths] if isinstance(paths, str | Path) else list(paths)
        for p in names:
            if not Path(p).is_file():
                raise SpoolError(f"spool {p}: no such file; give the gateway's spool path")
        self.spools = [Spool(p) for p in names]
        self.routes: dict[tuple[int, int], int] = {}  # (station, command id) -> spool index

    def _route(self, station: int) -> int:
        if len(self.spools) == 1:
            return 0
        newest = [s.db.execute("SELECT MAX(received) FROM frames WHERE station = ?", (station,)).fetchone()[0]
                  for s in self.spools]
        known = [(t, i) for i, t in enumerate(newest) if t is not None]
        return max(known)[1] if known else 0

    def queue_command(self, station: int, op: int, args: Any, expires: float | None = None) -> int:
        """Queue a command; the gateway sends it in the station's next ACK until ``expires``."""
        i = self._route(station)
        cid = self.spools[i].queue_command(station, op, args, now=self.clock(), expires=expires)
        self.routes[(station, cid)] = i
        return cid

    def command_result(self, station: int, command_id: int) -> tuple[int, Any] | None:
        """The station's answer ``(code, detail)``, or None while it has not answered."""
        i = self.routes.get((station, command_id))
        for spool in self.spools if i is None else [self.spools[i]]:
            for r in spool.commands(station):
                if r.id == command_id and r.result is not None:
                    return int(r.result), r.detail
        return None

    def close(self) -> None:
        for s in self.spools:
            s.close()


class WatchTask:
    """Runs a :class:`Watch` on the receiver's store, clock and MQTT client."""

    def __init__(self, clock: Callable[[], float], publish: Publish | None, *,
                 gateway_spool: SpoolPaths | None = None, every: float = 10.0,
                 policy: GapPolicy | None = None, topic_prefix: str = "hydrolink/v1") -> None:
        self.clock, self.publish, self.every = clock, publish, every
        self.queue = GatewayQueue(gateway_spool, clock) if gateway_spool else None
        self.policy, self.prefix = policy, topic_prefix
        self.watch: Watch | None = None
        self.last_tick: float | None = None
        self.errors = 0
        self.ticks = 0

    def poll(self, store: Any, observations: Iterable[Sequence[Any]] = ()) -> None:
        """Note a committed batch's readings (``ObsRow`` s or plain tuples in its field
        order); tick when due. ``store``: the receiver's current one."""
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
