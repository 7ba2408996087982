"""The fleet run's report, computed from the truth, the boards' own records, their flash
queues at the end and what reached the center.

Per station: readings the truth has (every record mark of the run for each element the
station measures), the station recorded, stored at the center, duplicates at the center
(a (element, time) that arrived twice with different values), lost (recorded, not at the
center, no longer in the station's queue), in flight (still queued on the station's flash
at the end: counted apart), delivery delay (worst, p95), alarm latency (the truth's
threshold crossing -> the station's alarm at the center), the battery minimum, and the
sensor faults injected. The arrival time at the center is the gateway's receipt (virtual)
or, for a frame received while the broker was down, the end of that outage.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from protocol.codec import EPOCH_UNIX
from sim.center_sink import Arrived
from sim.fleet import DAY_MS, T0, Fleet
from sim.queue_view import unacked
from sim.stations import RAIN_ALARM_MM, RAIN_HYST_MM, RECORD_S, StationSpec, fault_list

ELEMENTS = {1: "rain", 2: "water_level", 3: "battery_voltage", 4: "logger_temperature"}
BATT_S = 3600


@dataclass
class StationReport:
    station: int
    name: str
    kind: str
    truth: int = 0
    recorded: int = 0
    not_recorded: int = 0  # marks the board missed (off during a power cut, booting)
    stored: int = 0
    duplicates: int = 0
    recorded_twice: int = 0  # by the station itself (one (element, time), two values)
    lost: int = 0
    in_flight: int = 0
    delay_max_s: float = 0.0
    delay_p95_s: float = 0.0
    alarms_truth: int = 0
    alarms_arrived: int = 0
    alarm_latency_max_s: float | None = None
    battery_min_v: float = 0.0
    rain_truth_mm: float = 0.0  # what fell
    rain_gauge_mm: float = 0.0  # what the bucket tipped (quantised; a jammed switch loses it)
    rain_center_mm: float = 0.0
    level_err_max_m: float | None = None  # |center - truth|, good values
    power_cuts: int = 0
    boots: int = 0
    lost_keys: list[list[Any]] = field(default_factory=list)
    alarms_missed: list[list[Any]] = field(default_factory=list)  # (kind, time) in the truth, not at the center


@dataclass
class Report:
    stations: int
    days: float
    seed: int
    loss: float
    ber: float
    rows: list[StationReport]
    faults: list[str]
    redelivered: int
    frames_sent: int
    frames_lost_on_link: int
    frames_corrupted: int
    wall_s: float = 0.0

    @property
    def total(self) -> dict[str, float]:
        r = self.rows
        return {"truth": sum(x.truth for x in r), "recorded": sum(x.recorded for x in r),
                "stored": sum(x.stored for x in r), "duplicates": sum(x.duplicates for x in r),
                "lost": sum(x.lost for x in r), "in_flight": sum(x.in_flight for x in r),
                "alarms_truth": sum(x.alarms_truth for x in r),
                "alarms_arrived": sum(x.alarms_arrived for x in r)}

    @property
    def ok(self) -> bool:
        t = self.total
        return not t["lost"] and not t["duplicates"] and not sum(x.recorded_twice for x in self.rows)

    def to_json(self, with_wall: bool = False) -> str:
        d = asdict(self)
        d["total"] = self.total
        if not with_wall:  # what depends on wall-clock timing, not on the seed
            d.pop("wall_s")
            d.pop("redelivered")
        return json.dumps(d, indent=1, sort_keys=True)


def _p95(xs: list[float]) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, math.ceil(0.95 * len(s)) - 1)]


def _marks(end_s: int, step: int) -> list[int]:
    return list(range(T0 + step, T0 + end_s + 1, step))


def rain_crossings(spec: StationSpec, end_s: int) -> list[int]:
    """Hydrolink times at which the gauge's 30-min rain reaches the alarm threshold (raised)."""
    w = spec.weather
    thr = int(RAIN_ALARM_MM * 10)
    clear = thr - int(RAIN_HYST_MM * 10)
    ring: list[int] = []
    on = False
    out = []
    for m in _marks(end_s, RECORD_S):
        ms = (m - T0) * 1000
        ring = [*ring, w.tips_between(ms - RECORD_S * 1000, ms) * 2][-6:]
        s = sum(ring)
        if not on and s >= thr:
            on = True
            out.append(m)
        elif on and s < clear:
            on = False
    return out


def level_crossings(spec: StationSpec, end_s: int) -> list[int]:
    """Times at which the true level reaches the station's alarm stage (raised)."""
    if spec.level_alarm_mm is None:
        return []
    on = False
    out = []
    masked = [(f.start_ms, f.end_ms) for f in spec.faults if f.kind in ("flat", "open")]
    for m in _marks(end_s, RECORD_S):
        ms = (m - T0) * 1000
        lv = spec.weather.level_mm(ms)
        if any(a <= ms < b + 3_600_000 for a, b in masked):
            continue  # the sensor could not see it
        if not on and lv >= spec.level_alarm_mm + 10:
            on = True
            out.append(m)
        elif on and lv < spec.level_alarm_mm - 60:
            on = False
    return out


def build(f: Fleet) -> Report:
    """The report of a finished run."""
    assert f.center is not None
    end_s = f.end_ms // 1000
    c = f.center
    from host_tools.center.store import open_store

    store = open_store(f.store_url)
    rows = []
    for spec, b in zip(f.specs, f.boards, strict=True):
        els = [1, 3, 4] if spec.kind == "rain" else [1, 2, 3, 4]
        truth = {(e, t) for e in els for t in _marks(end_s, BATT_S if e in (3, 4) else RECORD_S)}
        rec: dict[tuple[int, int], int | None] = {}
        twice = 0
        for tr in b.traces:
            k = (tr.element, tr.time)
            if tr.time > T0 + end_s:
                continue
            if k in rec and rec[k] != tr.value:
                twice += 1
            rec.setdefault(k, tr.value)
        at_center: dict[tuple[int, int], Arrived] = {}
        dups = 0
        for e in els:
            name = ELEMENTS[e]
            for ob in store.observations(spec.sid, name, 0, EPOCH_UNIX + T0 + end_s):
                arr = c.obs.get((spec.sid, name, ob.time))  # its gateway receipt, from MQTT
                at_center[(e, ob.time - EPOCH_UNIX)] = Arrived(ob.value, ob.quality,
                                                               arr.received if arr else math.nan)
            dups += len(store.revisions(spec.sid, name, 0, 2**40))
        queued = unacked(b.flash())
        missing = [k for k in rec if k not in at_center]
        in_flight = [k for k in missing if k in queued]
        lost = [k for k in missing if k not in queued]
        delays = [_arrival(f, a.received) - (EPOCH_UNIX + t) for (_, t), a in at_center.items()
                  if not math.isnan(a.received)]
        r = StationReport(spec.sid, spec.name, spec.kind, truth=len(truth), recorded=len(rec),
                          not_recorded=len(truth - set(rec)), stored=len(at_center),
                          recorded_twice=twice, lost=len(lost), in_flight=len(in_flight),
                          duplicates=dups,
                          power_cuts=b.cuts_done, boots=b.boots,
                          lost_keys=[[ELEMENTS[e], t + EPOCH_UNIX] for e, t in sorted(lost)[:20]])
        r.delay_max_s = round(max(delays, default=0.0), 1)
        r.delay_p95_s = round(_p95(delays), 1)
        _alarms(f, spec, end_s, r)
        w = spec.weather
        bt = w.battery_true or [0]
        r.battery_min_v = min(bt[: f.end_ms // 60_000 + 1]) / 1000
        r.rain_truth_mm = round(sum(w.rain[: f.end_ms // 60_000]), 1)
        r.rain_gauge_mm = round(w.tips_between(0, f.end_ms) * w.tip_mm, 1)
        r.rain_center_mm = round(sum(a.value or 0.0 for (e, _), a in at_center.items() if e == 1), 1)
        errs = [abs(a.value - w.level_mm((t - T0) * 1000) / 1000) for (e, t), a in at_center.items()
                if e == 2 and a.value is not None and a.quality == "good"]
        r.level_err_max_m = round(max(errs), 3) if errs else None
        rows.append(r)
    store.close()
    links = f.links
    return Report(f.o.stations, f.o.days, f.o.seed, f.o.loss, f.o.ber, rows,
                  _fleet_faults(f), c.redelivered, sum(x.sent for x in links), sum(x.lost for x in links),
                  sum(x.corrupted for x in links), round(f.wall, 1))


def _alarms(f: Fleet, spec: StationSpec, end_s: int, r: StationReport) -> None:
    assert f.center is not None
    truth = [("rain", t) for t in rain_crossings(spec, end_s)] + \
        [("level_high", t) for t in level_crossings(spec, end_s)]
    got = [a for a in f.center.alarms if a.station == spec.sid and a.state == "raised"]
    lat = []
    for kind, t in truth:
        u = EPOCH_UNIX + t
        match = [a for a in got if a.kind == kind and u - 24 * RECORD_S <= a.time <= u + 12 * RECORD_S]
        if match:
            lat.append(min(_arrival(f, a.received) - min(u, a.time) for a in match))
        else:
            r.alarms_missed.append([kind, u])
    r.alarms_truth = len(truth)
    r.alarms_arrived = len(lat)
    r.alarm_latency_max_s = round(max(lat), 1) if lat else None


def _arrival(f: Fleet, received: float) -> float:
    ms = (received - EPOCH_UNIX - T0) * 1000
    for a, b in f.broker_down:
        if a <= ms < b:
            return EPOCH_UNIX + T0 + b / 1000
    return received


def _fleet_faults(f: Fleet) -> list[str]:
    out = fault_list(f.specs)
    for sid, cuts in sorted(f.cuts.items()):
        out += [f"{sid} power cut day {c / DAY_MS:.2f}" for c in sorted(cuts)]
    for e in f.done_events:
        if e.what not in ("day", "tick"):
            out.append(f"{e.what.replace('_', ' ')} day {e.ms / DAY_MS:.2f}")
    for o in f.o.outages:
        if o.kind == "link":
            out.append(f"link down day {o.start_ms / DAY_MS:.2f}-{o.end_ms / DAY_MS:.2f}")
    return out


def table(rep: Report) -> str:
    """The report as a text table."""
    head = (f"{'station':>7} {'kind':<9} {'truth':>6} {'stored':>6} {'dup':>4} {'lost':>4} {'flight':>6} "
            f"{'delay max':>9} {'p95':>7} {'alarms':>7} {'alarm lat':>9} {'batt min':>8} {'rain mm':>13}")
    lines = [head]
    for x in rep.rows:
        lat = "-" if x.alarm_latency_max_s is None else f"{x.alarm_latency_max_s / 60:.0f} min"
        lines.append(
            f"{x.station:>7} {x.kind:<9} {x.truth:>6} {x.stored:>6} {x.duplicates:>4} {x.lost:>4} "
            f"{x.in_flight:>6} {x.delay_max_s / 3600:>7.1f} h {x.delay_p95_s / 60:>5.0f} m "
            f"{x.alarms_arrived:>3}/{x.alarms_truth:<3} {lat:>9} {x.battery_min_v:>6.2f} V "
            f"{x.rain_center_mm:>6.1f}/{x.rain_truth_mm:<6.1f}")
    t = rep.total
    lines.append(f"total: {t['truth']:.0f} readings in the truth, {t['recorded']:.0f} recorded, "
                 f"{t['stored']:.0f} stored at the center, {t['duplicates']:.0f} duplicates, "
                 f"{t['lost']:.0f} lost, {t['in_flight']:.0f} in flight; alarms {t['alarms_arrived']:.0f}"
                 f"/{t['alarms_truth']:.0f}; {rep.redelivered} redelivered by MQTT (absorbed)")
    lines.append(f"link: {rep.frames_sent} writes, {rep.frames_lost_on_link} lost, "
                 f"{rep.frames_corrupted} with bit errors")
    lines.append("faults injected: " + ("; ".join(rep.faults) if rep.faults else "none"))
    return "\n".join(lines)
