"""The center's watch: the thin periodic task around the gap, alarm and QC rules.

The receiver calls :meth:`Watch.on_batch` with the observation rows of each committed
batch and :meth:`Watch.tick` every few seconds of its clock (wall or virtual time). A
tick finds new gaps, moves known ones on (``resend`` through the gateway's command
queue), evaluates the alarm rules per station (stored in ``center_alarms``, published
on ``<prefix>/<station>/center_alarm`` and the retained ``center_state``) and sets the
QC flags of the readings that arrived.

The rules themselves are pure (:mod:`.gaps`, :mod:`.alarms`, :mod:`.qc`); this module
only reads the store, calls them, and writes back what changed.
"""

from __future__ import annotations

import json
import logging
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

from protocol.codec import EPOCH_UNIX

from .alarms import AlarmConfig, AlarmEvent, AlarmRules, Snapshot, rain_totals, report_period
from .gaps import LOST, OPEN, REQUESTED, Gap, GapPolicy, GapTracker, resend_plan
from .model import Gap as GapRow
from .qc import context_s, qc_flags

log = logging.getLogger("hydrolink.center.watch")

RESEND = 3  # SPEC §7 op
RECENT_S = 86400  # how far back the alarm snapshot reads (and learns the report period)
NOT_INTERVAL = frozenset({"rain_daily"})  # elements not recorded every record interval
Publish = Callable[[str, bytes, bool], None]          # topic, payload, retain
QueueCommand = Callable[[int, int, Any, float], int]   # station, op, args, expires -> command id
CommandResult = Callable[[int, int], "tuple[int, Any] | None"]  # station, id -> (code, detail)


# A stored reading as the receiver hands it over: (station, element, time, value, quality,
# received), an ObsRow or a plain tuple; only the first three are needed (and received if
# present).
_Row = Sequence[Any]
_station_element = operator.itemgetter(0, 1)


@dataclass(frozen=True)
class StationRules:
    """What the watch needs of a station (from the registry or the store's stations)."""

    station: int
    interval_s: int
    stages: Mapping[str, float] = field(default_factory=dict)
    alarms: Mapping[str, float] = field(default_factory=dict)
    qc: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


def station_rules(stations: Iterable[Any]) -> dict[int, StationRules]:
    """From registry ``Station`` s (``.id``) or store ``StationMeta`` s (``.station``)."""
    out = {}
    for s in stations:
        sid = int(getattr(s, "id", None) or s.station)
        out[sid] = StationRules(sid, int(getattr(s, "record_interval_s", 300) or 300),
                                dict(getattr(s, "stages", {}) or {}), dict(getattr(s, "alarms", {}) or {}),
                                {k: dict(v) for k, v in (getattr(s, "qc", {}) or {}).items()})
    return out


class Watch:
    """Gaps, center alarms and QC flags for every station of the registry.

    Args:
        store: the center :class:`~host_tools.center.store.Store` (used from the caller's thread).
        registry: a :class:`~host_tools.registry.Registry`, or None to use the store's stations.
        clock: wall time (UNIX s), virtual in the simulator.
        publish: ``publish(topic, payload, retain)``, or None not to publish.
        queue_command: ``queue_command(station, op, args, expires) -> id``, or None: gaps are then
            tracked but never requested.
        command_result: ``command_result(station, id) -> (code, detail) | None``.
    """

    def __init__(self, store: Any, registry: Any, clock: Callable[[], float],
                 publish: Publish | None = None, queue_command: QueueCommand | None = None,
                 command_result: CommandResult | None = None, *, policy: GapPolicy | None = None,
                 alarm_config: AlarmConfig | None = None, horizon_s: float = 2 * 86400,
                 topic_prefix: str = "hydrolink/v1") -> None:
        self.store, self.clock = store, clock
        self.publish, self.queue_command, self.command_result = publish, queue_command, command_result
        self.prefix = topic_prefix.rstrip("/")
        self.horizon_s = horizon_s
        self.registry, self.alarm_config = registry, alarm_config
        self.rules: dict[int, StationRules] = {}
        self.alarm_rules: dict[int, AlarmRules] = {}
        self._load_rules()
        self.tracker = GapTracker(policy)
        self.started = clock()
        self.scanned: dict[tuple[int, str], int] = {}       # latest reading time looked at
        self.touched: dict[tuple[int, str], tuple[int, int]] = {}  # arrived since the last tick
        self.active: dict[int, dict[str, int]] = {}          # station -> kind -> center_alarms id
        self.elements: dict[int, tuple[float, set[str]]] = {}  # station -> (read at, elements)
        self.seen: dict[int, float] = {}                      # station -> last received (UNIX s)
        self.period: dict[int, float] = {}                    # station -> learned report period
        for a in store.center_alarms(active_only=True):
            self.active.setdefault(a.station, {})[a.kind] = a.id
        since = self.started - horizon_s
        for g in store.gaps(states=("detected", "requested", "lost")):
            if g.state != LOST or g.end >= since:
                self.tracker.load([Gap(g.station, g.element, g.start, g.end, g.state, g.command_id,
                                       g.updated, g.attempts, g.updated)])

    def _load_rules(self) -> None:
        """Station rules from the registry, else from the store's stations (synced from the
        registry by the receiver, so a reloaded registry takes effect at the next tick)."""
        reg = self.registry
        rules = station_rules(reg.stations.values() if reg is not None else self.store.stations())
        if rules != self.rules:
            self.rules = rules
            self.alarm_rules = {s: AlarmRules(r.stages, r.alarms, self.alarm_config) for s, r in rules.items()}

    # ------------------------------------------------------------ hooks

    def on_batch(self, rows: Iterable[_Row]) -> None:
        """Note the readings a committed batch stored (cheap: the work is done in :meth:`tick`)."""
        # a message's readings come in runs of one station and element: one step per run
        for (sid, el), group in groupby(rows, key=_station_element):
            run = list(group)
            station, element = int(sid), str(el)
            key = (station, element)
            times = [r[2] for r in run]
            lo, hi = int(min(times)), int(max(times))
            known = self.elements.get(station)
            if known is not None:
                known[1].add(element)
            got = [r[5] for r in run if len(r) > 5 and r[5] is not None]
            if got and max(got) > self.seen.get(station, 0.0):
                self.seen[station] = float(max(got))
            span = self.touched.get(key)
            self.touched[key] = (lo, hi) if span is None else (min(span[0], lo), max(span[1], hi))

    def tick(self, now: float | None = None) -> dict[str, int]:
        """One pass over every station; returns counts of what changed (for logs and tests)."""
        now = self.clock() if now is None else now
        counts = {"gaps_detected": 0, "gaps_changed": 0, "requests": 0, "alarms": 0, "flagged": 0}
        if self.registry is None:
            self._load_rules()
        for sid, rules in sorted(self.rules.items()):
            counts["gaps_detected"] += self._scan(sid, rules, now)
            counts["alarms"] += self._alarms(sid, rules, now)
        touched, self.touched = self.touched, {}
        for (sid, element), span in touched.items():
            known = self.rules.get(sid)
            if known is not None:
                counts["flagged"] += self._qc(sid, element, span, known)
                self._recheck_lost(sid, element, span, known, now)
        changed, requests = self._gaps(now)
        self.tracker.forget(now - self.horizon_s)
        counts["gaps_changed"] += changed
        counts["requests"] += requests
        return counts

    # ------------------------------------------------------------ gaps

    def _scan(self, sid: int, rules: StationRules, now: float) -> int:
        new = 0
        for element in self._elements(sid, now):
            if element in NOT_INTERVAL:
                continue
            key = (sid, element)
            start = self.scanned.get(key, int(now - self.horizon_s))
            times = [o.time for o in self.store.observations(sid, element, start, int(now))]
            if not times:
                continue
            for g in self.tracker.detect(sid, element, times, rules.interval_s, now):
                self._save(g)
                new += 1
            if times[-1] > start:  # new readings at the head: QC them too (another worker may
                self.on_batch([(sid, element, times[0]), (sid, element, times[-1])])  # have stored them)
            self.scanned[key] = times[-1]
        return new

    def _present(self, g: Gap) -> int:
        return len(self.store.observations(g.station, g.element, g.start, g.end))

    def _gaps(self, now: float) -> tuple[int, int]:
        changed = 0
        to_request: dict[int, list[Gap]] = {}
        for g in self.tracker.open_gaps():
            rules = self.rules.get(g.station)
            if rules is None:
                continue
            result = None
            if g.command_id is not None and self.command_result is not None:
                result = self.command_result(g.station, g.command_id)
            nxt = self.tracker.step(g, now, self._present(g), rules.interval_s, result, self.retry_s(g.station))
            if nxt is None:
                continue
            if nxt.state == REQUESTED and nxt.command_id is None and self.queue_command is None:
                self.tracker.gaps[g.key] = g  # nobody to ask (no gateway spool): stays detected
                continue
            changed += 1
            if nxt.state == REQUESTED and nxt.command_id is None:
                to_request.setdefault(g.station, []).append(nxt)
            else:
                self._save(nxt)
                log.info("gap %s", nxt.state, extra={"fields": _gap_fields(nxt)})
        requests = 0
        for sid, gaps in to_request.items():
            assert self.queue_command is not None
            for a, b, group in resend_plan(gaps, self.rules[sid].interval_s):
                cid = self.queue_command(sid, RESEND, [a - EPOCH_UNIX, b - EPOCH_UNIX], now + self.retry_s(sid))
                requests += 1
                for g in group:
                    self._save(self.tracker.requested(g, cid, now))
                log.info("resend queued", extra={"fields": {"station": sid, "from": a, "to": b, "id": cid}})
        return changed, requests

    def retry_s(self, sid: int) -> float:
        """How long a resend request waits for its data before it is sent again: the policy's
        wait, or two report periods if longer (the station hears of it only in an ACK)."""
        return max(self.tracker.policy.retry_s, 2 * self.period.get(sid, 0.0))

    def _recheck_lost(self, sid: int, element: str, span: tuple[int, int], rules: StationRules,
                      now: float) -> None:
        for g in self.tracker.touching(sid, element, *span):
            if g.state not in OPEN:
                nxt = self.tracker.step(g, now, self._present(g), rules.interval_s, None)
                if nxt is not None:
                    self._save(nxt)

    def _save(self, g: Gap) -> None:
        self.store.set_gap(GapRow(g.station, g.element, g.start, g.end, g.state, g.command_id, g.updated,
                                  g.attempts))

    # ------------------------------------------------------------ alarms

    def _latest(self, sid: int, element: str, now: float) -> Any:
        """The newest reading of the last day (an index range; older data raises nothing)."""
        obs = self.store.observations(sid, element, int(now - RECENT_S), int(now + RECENT_S))
        return obs[-1] if obs else None

    def snapshot(self, sid: int, rules: StationRules, now: float) -> Snapshot:
        """What the alarm rules see of a station now (only index-range reads: cheap per tick)."""
        since = int(now - RECENT_S)
        received = self.store.received_since(sid, self._elements(sid, now), since)
        status = self.store.status_rows(sid, since, int(now + RECENT_S))
        stamps = sorted(set(received) | {float(r.received) for r in status})
        if stamps:
            self.seen[sid] = max(self.seen.get(sid, 0.0), stamps[-1])
            period = report_period(stamps, rules.interval_s)
            if period is not None:
                self.period[sid] = period
        if sid not in self.seen:  # nothing for a day: ask the store once (a full scan of the station)
            seen = self.store.last_seen(sid)
            self.seen[sid] = self.started if seen is None else float(seen)
        battery = _value(self._latest(sid, "battery_voltage", now))
        if battery is None:
            battery = next((r.battery_v for r in reversed(status) if r.battery_v is not None), None)
        rain = None
        last_rain = self._latest(sid, "rain", now)
        if last_rain is not None:
            obs = self.store.observations(sid, "rain", last_rain.time - 3 * 3600 + 1, last_rain.time)
            rain = rain_totals([o.time for o in obs], [o.value for o in obs])
        return Snapshot(now, rules.interval_s, self.seen[sid], battery,
                        _value(self._latest(sid, "water_level", now)), rain, self.period.get(sid))

    def _elements(self, sid: int, now: float) -> list[str]:
        """The station's elements: from the store every 15 min, and as they arrive."""
        cached = self.elements.get(sid)
        if cached is None or now - cached[0] >= 900:
            cached = (now, set(self.store.elements(sid)) | (cached[1] if cached else set()))
            self.elements[sid] = cached
        return sorted(cached[1])

    def _alarms(self, sid: int, rules: StationRules, now: float) -> int:
        active = self.active.setdefault(sid, {})
        events = self.alarm_rules[sid].evaluate(self.snapshot(sid, rules, now), set(active))
        for e in events:
            if e.state == "raised":
                aid = self.store.add_center_alarm(sid, e.kind, now, e.value, e.threshold, e.detail)
                active[e.kind] = aid
            else:
                aid = active.pop(e.kind)
                self.store.clear_center_alarm(aid, now, e.value)
            self._publish_alarm(sid, aid, e, now)
        if events:
            self._publish_state(sid, now)
        return len(events)

    def _publish_alarm(self, sid: int, aid: int, e: AlarmEvent, now: float) -> None:
        log.warning("center alarm %s %s", e.kind, e.state,
                    extra={"fields": {"station": sid, "value": e.value, "threshold": e.threshold}})
        if self.publish is None:
            return
        payload = {"v": 1, "station": sid, "id": aid, "kind": e.kind, "state": e.state,
                   "time": _iso(now), "value": e.value, "threshold": e.threshold, "detail": e.detail}
        self.publish(f"{self.prefix}/{sid}/center_alarm", _json(payload), False)

    def _publish_state(self, sid: int, now: float) -> None:
        if self.publish is None:
            return
        alarms = [{"id": a.id, "kind": a.kind, "raised": _iso(a.raised), "value": a.value,
                   "threshold": a.threshold, "detail": a.detail, "acked_by": a.acked_by}
                  for a in self.store.center_alarms(station=sid, active_only=True)]
        gaps = sum(1 for g in self.tracker.gaps.values() if g.station == sid and g.state in OPEN)
        payload = {"v": 1, "station": sid, "time": _iso(now), "alarms": alarms, "open_gaps": gaps}
        self.publish(f"{self.prefix}/{sid}/center_state", _json(payload), True)

    # ------------------------------------------------------------ quality

    def _qc(self, sid: int, element: str, span: tuple[int, int], rules: StationRules) -> int:
        qc = rules.qc.get(element)
        if not qc:
            return 0
        ctx = context_s(qc, rules.interval_s)
        obs = self.store.observations(sid, element, span[0] - ctx, span[1] + ctx)
        flags = qc_flags([(o.time, o.value) for o in obs], qc, rules.interval_s, since=span[0])
        return int(self.store.set_flags(sid, element, sorted(flags.items())))


def _value(obs: Any) -> float | None:
    return None if obs is None or obs.value is None else float(obs.value)


def _iso(t: float) -> str:
    from host_tools.gateway.payload import iso

    return iso(t)


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _gap_fields(g: Gap) -> dict[str, Any]:
    return {"station": g.station, "element": g.element, "from": g.start, "to": g.end,
            "state": g.state, "detail": g.detail}
