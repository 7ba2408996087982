"""Fleets of virtual stations (the real firmware on the VM) through the real gateway,
a real broker and the center store: nothing lost, nothing duplicated, every alarm there,
the report checked against the truth, and the same report from the same seed."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from protocol.codec import EPOCH_UNIX
from sim.fleet import DAY_MS, HOUR_MS, T0, Fleet, Options
from sim.report import Report, build, level_crossings, rain_crossings
from sim.vlink import Outage


def _run(tmp: Path, **kw: object) -> tuple[Fleet, Report]:
    f = Fleet(Options(workdir=tmp, progress=False, **kw))  # type: ignore[arg-type]
    f.run()
    return f, build(f)


@pytest.mark.slow
def test_ten_stations_two_weeks_of_faults_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    f, rep = _run(tmp_path, stations=10, days=14, seed=3, loss=0.2, ber=1e-4, power_cuts=5,
                  gateway_restarts=1, outages=[Outage("link", 5 * DAY_MS, 6 * DAY_MS)])
    t = rep.total
    assert t["lost"] == 0, [r.lost_keys for r in rep.rows if r.lost]
    assert t["duplicates"] == 0
    assert not any(r.recorded_twice for r in rep.rows)
    assert t["alarms_truth"] > 0 and t["alarms_arrived"] == t["alarms_truth"]
    assert sum(b.cuts_done for b in f.boards) == 5
    assert [e.what for e in f.done_events].count("gateway_kill") == 1
    assert sum(x.lost for x in f.links) > 0 and sum(x.corrupted for x in f.links) > 0
    assert f.center is not None
    end = T0 + 14 * 86400
    db = sqlite3.connect(f.store_url.removeprefix("sqlite:///"))
    for spec, row, b in zip(f.specs, rep.rows, f.boards, strict=True):
        # the truth, counted here from the schedule: every 5-min mark, hourly battery/temperature
        n_el = 1 if spec.kind == "rain" else 2
        assert row.truth == n_el * 14 * 288 + 2 * 14 * 24
        # everything the board recorded is at the center or still queued on its flash
        assert row.stored + row.in_flight == row.recorded
        assert row.recorded >= row.truth - 12 * (1 + b.cuts_done)  # only marks while booting are missed
        # values: the center's rain is what the bucket tipped (minus tips during power cuts)
        stored_rain = sum(a.value or 0.0 for (s, e, tt), a in f.center.obs.items()
                          if s == spec.sid and e == "rain" and tt <= EPOCH_UNIX + end)
        assert abs(row.rain_center_mm - stored_rain) < 0.05
        assert row.rain_gauge_mm - 2.0 * (1 + b.cuts_done) <= row.rain_center_mm <= row.rain_gauge_mm + 0.05
        if spec.kind != "rain":
            assert row.level_err_max_m is not None and row.level_err_max_m < 0.1
        # the battery minimum of the truth (every minute) against the hourly readings at the center
        volts = [a.value for (s, e, tt), a in f.center.obs.items()
                 if s == spec.sid and e == "battery_voltage" and a.value is not None]
        assert row.battery_min_v > 10 and abs(min(volts) - row.battery_min_v) <= 0.05
        # alarms: the truth's crossings from the inputs; at the center each raised once, no other
        # (a rise-rate alarm is the station's own rule, not in the truth). A station that boots
        # after a power cut into an alarm still on raises it again (its alarm state is in RAM).
        truth_alarms = len(rain_crossings(spec, 14 * 86400)) + len(level_crossings(spec, 14 * 86400))
        raised = {(a.kind, a.time) for a in f.center.alarms
                  if a.station == spec.sid and a.state == "raised" and a.kind in ("rain", "level_high")}
        cut_s = [EPOCH_UNIX + T0 + c / 1000 for c in f.cuts[spec.sid]]
        again = {r for r in raised if any(0 <= r[1] - c <= 1800 for c in cut_s)}
        assert row.alarms_truth == truth_alarms == len(raised - again), (spec.sid, sorted(raised), cut_s)
        assert len(again) <= len(cut_s)
        # what the center store holds, counted in its own database, not by the report
        assert row.stored == db.execute("SELECT count(*) FROM observations WHERE station = ? AND time <= ?",
                                        (spec.sid, EPOCH_UNIX + end)).fetchone()[0]
        # levels: every good level at the center against the true level at its time
        if spec.kind != "rain":
            errs = [abs(a.value - spec.weather.level_mm((tt - EPOCH_UNIX - T0) * 1000) / 1000)
                    for (s, e, tt), a in f.center.obs.items()
                    if s == spec.sid and e == "water_level" and a.value is not None and a.quality == "good"]
            assert len(errs) > 3000 and max(errs) < 0.1
    db.close()
    assert max(r.delay_max_s for r in rep.rows) >= 24 * 3600 - HOUR_MS / 1000  # the day-long outage
    assert rep.ok


def test_same_seed_same_report(tmp_path: Path) -> None:
    kw = dict(stations=3, days=2, seed=11, loss=0.2, ber=1e-4, power_cuts=2, gateway_restarts=1,
              outages=[Outage("link", DAY_MS // 2, DAY_MS // 2 + 6 * HOUR_MS),
                       Outage("broker", 30 * HOUR_MS, 33 * HOUR_MS)])
    # the three runs at once, each with its own broker, gateway and center: a run is a function
    # of its seed whatever else the machine does (and the test takes one run's time, not three)
    runs = {"a": kw, "b": kw, "c": {**kw, "seed": 12}}
    with ThreadPoolExecutor(len(runs)) as pool:
        a, b, c = pool.map(lambda n: _run(tmp_path / n, **runs[n])[1], runs)
    assert a.to_json() == b.to_json()
    assert a.ok and a.total["stored"] > 0
    assert c.to_json() != a.to_json()
