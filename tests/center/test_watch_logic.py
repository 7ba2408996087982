"""Pure-logic tests of the center's gap, alarm and QC rules (no store, no broker, no clock)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from host_tools.center.alarms import AlarmConfig, AlarmRules, Snapshot, rain_totals
from host_tools.center.gaps import (
    DETECTED,
    LOST,
    RECOVERED,
    REQUESTED,
    GapPolicy,
    GapTracker,
    holes,
    merge_ranges,
    resend_plan,
)
from host_tools.center.qc import context_s, qc_flags

IV = 300  # record interval


# ---------------------------------------------------------------- gaps


def test_holes_between_readings_only() -> None:
    times = [0, 300, 600, 1500, 1800, 2100, 2700]
    assert holes(times, IV) == [(900, 1200), (2400, 2400)]
    assert holes([], IV) == [] and holes([600], IV) == []
    # a clock step of less than half an interval is not a missing reading
    assert holes([0, 300, 720, 1020], IV) == []


def test_merge_ranges_joins_adjacent() -> None:
    assert merge_ranges([(900, 1200), (0, 300), (1500, 1500)], slack=IV) == [(0, 300), (900, 1500)]
    assert merge_ranges([(0, 300), (1200, 1500)], slack=IV) == [(0, 300), (1200, 1500)]


def _tracker() -> GapTracker:
    return GapTracker(GapPolicy(delay_s=600, retry_s=1800, max_attempts=3))


def test_gap_waits_for_the_delay_then_is_requested_then_recovered() -> None:
    t = _tracker()
    [g] = t.detect(7, "rain", [0, 300, 1500], IV, now=2000)
    assert (g.start, g.end, g.state) == (600, 1200, DETECTED) and g.expected(IV) == 3
    assert t.step(g, 2300, present=0, interval_s=IV, result=None) is None  # younger than the delay
    g2 = t.step(g, 2600, present=1, interval_s=IV, result=None)
    assert g2 is not None and g2.state == REQUESTED and g2.attempts == 1 and g2.command_id is None
    g3 = t.requested(g2, 5, 2600)
    assert t.step(g3, 2700, present=2, interval_s=IV, result=(0, 3)) is None  # partly back
    g4 = t.step(g3, 2800, present=3, interval_s=IV, result=(0, 3))
    assert g4 is not None and g4.state == RECOVERED
    assert not t.gaps  # recovered gaps are no longer tracked
    # the same hole seen again (e.g. a rescan before the readings were stored) is a new gap,
    # but an overlapping one while the first is tracked is not
    t2 = _tracker()
    t2.detect(7, "rain", [0, 300, 1500], IV, now=0)
    assert t2.detect(7, "rain", [0, 300, 900, 1500], IV, now=10) == []
    assert len(t2.detect(7, "water_level", [0, 300, 1500], IV, now=10)) == 1


def test_gap_retried_then_lost_after_the_limit() -> None:
    t = _tracker()
    [g] = t.detect(7, "rain", [0, 600], IV, now=0)
    now = 600.0
    step = t.step(g, now, 0, IV, None)
    assert step is not None
    g = t.requested(step, 1, now)
    sent = [1]
    for attempt in range(2, 4):
        assert t.step(g, now + 1799, 0, IV, (0, 1)) is None  # not yet time to retry
        now += 1800
        nxt = t.step(g, now, 0, IV, (0, 1))
        assert nxt is not None and nxt.state == REQUESTED and nxt.attempts == attempt
        g = t.requested(nxt, attempt, now)
        sent.append(attempt)
    now += 1800
    lost = t.step(g, now, 0, IV, (0, 1))
    assert lost is not None and lost.state == LOST and "3 requests" in lost.detail
    assert sent == [1, 2, 3]
    # a lost gap is still tracked: readings imported later recover it
    assert t.touching(7, "rain", 300, 300) == [lost]
    assert t.forget(before=300) == 0 and t.forget(before=301) == 1 and not t.gaps
    t.load([lost])
    rec = t.step(lost, now + 10, 1, IV, None)
    assert rec is not None and rec.state == RECOVERED


def test_gap_retry_waits_for_a_slow_reporting_station() -> None:
    t = _tracker()
    [g] = t.detect(7, "rain", [0, 600], IV, now=0)
    s = t.step(g, 600, 0, IV, None)
    assert s is not None
    g = t.requested(s, 1, 600)
    assert t.step(g, 600 + 1800, 0, IV, None, retry_s=7200) is None  # hourly reports: wait 2 h
    again = t.step(g, 600 + 7200, 0, IV, None, retry_s=7200)
    assert again is not None and again.attempts == 2


def test_gap_lost_when_the_station_has_nothing_or_refuses() -> None:
    t = _tracker()
    [g] = t.detect(7, "rain", [0, 600], IV, now=0)
    s = t.step(g, 600, 0, IV, None)
    assert s is not None
    g = t.requested(s, 1, 600)
    # resend found 0 readings: give in-flight data one retry period, then lost (no new request)
    assert t.step(g, 700, 0, IV, (0, 0)) is None
    lost = t.step(g, 600 + 1800, 0, IV, (0, 0))
    assert lost is not None and lost.state == LOST and "no longer" in lost.detail
    [g] = t.detect(8, "rain", [0, 600], IV, now=0)
    s = t.step(g, 600, 0, IV, None)
    assert s is not None
    g = t.requested(s, 1, 600)
    refused = t.step(g, 601, 0, IV, (4, "low power"))
    assert refused is not None and refused.state == LOST and "code 4" in refused.detail


def test_resend_plan_one_command_per_merged_range() -> None:
    t = _tracker()
    a = t.detect(7, "rain", [0, 600, 900, 1500], IV, now=0)
    b = t.detect(7, "water_level", [0, 600, 900, 1500], IV, now=0)
    c = t.detect(7, "battery_voltage", [0, 1500], IV, now=0)
    plan = resend_plan(a + b + c, IV)
    assert [(s, e, len(gs)) for s, e, gs in plan] == [(300, 1200, 5)]


# ---------------------------------------------------------------- alarms


def _rules() -> AlarmRules:
    return AlarmRules({"warning": 68.0, "flood_limit": 70.0, "bogus": 1.0},
                      {"rain_1h_mm": 30.0, "rain_3h_mm": 50.0, "battery_low_v": 11.8,
                       "silent_intervals": 3}, AlarmConfig())


def _run(rules: AlarmRules, snaps: list[Snapshot]) -> list[tuple[float, str, str]]:
    active: set[str] = set()
    log = []
    for s in snaps:
        for e in rules.evaluate(s, active):
            (active.add if e.state == "raised" else active.discard)(e.kind)
            log.append((s.now, e.kind, e.state))
    return log


def test_silence_raised_after_the_intervals_and_cleared_by_data() -> None:
    r = _rules()
    # the next reading was due at 1300: silent 3 intervals after that
    snaps = [Snapshot(now, IV, last_received=1000) for now in range(1000, 2400, 60)]
    snaps += [Snapshot(2400, IV, last_received=2390), Snapshot(2460, IV, last_received=2390)]
    assert _run(r, snaps) == [(2200, "silent", "raised"), (2400, "silent", "cleared")]
    assert r.silent_after(IV) == 1200 and r.silent_after(IV, 3600.0) == 4500
    assert AlarmRules({}, {}).silent_after(60) == 240  # default 3 intervals


def test_level_stages_with_hysteresis_do_not_flap() -> None:
    r = _rules()
    rng = random.Random(8)
    # a level that wobbles +-3 cm around the warning stage: one raise, no clear
    levels = [67.9, 68.01] + [68.0 + rng.uniform(-0.03, 0.03) for _ in range(199)] + [67.9, 67.94]
    log = _run(r, [Snapshot(i, IV, None, level_m=v) for i, v in enumerate(levels)])
    assert log == [(1, "stage_warning", "raised"), (201, "stage_warning", "cleared")]
    # over flood limit and back: both stages, in order; unknown stage names ignored
    log = _run(r, [Snapshot(i, IV, None, level_m=v) for i, v in enumerate([69.0, 70.2, 69.96, 69.94, 67.0])])
    assert log == [(0, "stage_warning", "raised"), (1, "stage_flood_limit", "raised"),
                   (3, "stage_flood_limit", "cleared"), (4, "stage_warning", "cleared")]


def test_battery_low_hysteresis() -> None:
    r = _rules()
    volts = [12.5, 11.79, 11.85, 11.75, 11.99, 12.0, 11.81]
    log = _run(r, [Snapshot(i, IV, None, battery_v=v) for i, v in enumerate(volts)])
    assert log == [(1, "battery_low", "raised"), (5, "battery_low", "cleared")]


def test_rain_totals_and_alarm() -> None:
    times = list(range(0, 4 * 3600 + 1, IV))
    values: list[float | None] = [0.0] * len(times)
    for i in range(30, 36):   # 6 x 6 mm in the half hour ending at 2:55
        values[i] = 6.0
    values[10] = None
    tot = rain_totals(times, values)
    assert tot == {"rain_1h": 0.0, "rain_3h": 36.0}  # the window ends at the latest reading (4:00)
    tot = rain_totals(times[:36], values[:36])
    assert tot == {"rain_1h": 36.0, "rain_3h": 36.0}
    assert rain_totals([], []) == {}
    r = _rules()
    pairs = [(10, 12), (31, 40), (28, 45), (25, 45), (23, 48), (49, 49), (60, 61), (39, 39)]
    seq = [{"rain_1h": float(a), "rain_3h": float(b)} for a, b in pairs]
    log = _run(r, [Snapshot(i, IV, None, rain_mm=m) for i, m in enumerate(seq)])
    assert log == [(1, "rain_1h", "raised"), (4, "rain_1h", "cleared"), (5, "rain_1h", "raised"),
                   (6, "rain_3h", "raised"), (7, "rain_3h", "cleared")]


def test_missing_inputs_change_nothing() -> None:
    r = _rules()
    assert r.evaluate(Snapshot(0, IV, None), {"silent", "battery_low", "stage_warning", "rain_1h"}) == []
    assert AlarmRules({}, {}).evaluate(Snapshot(0, IV, None, battery_v=1.0, rain_mm={"rain_1h": 99}),
                                       set()) == []


# ---------------------------------------------------------------- quality


def test_qc_range_step_flat() -> None:
    rules = {"min": 60.0, "max": 80.0, "step": 0.5, "flat_hours": 1.0}
    series: list[tuple[int, float | None]] = [
        (0, 65.0), (300, 65.2), (600, 66.0), (900, 59.0), (1200, None), (1500, 59.1),
        (3000, 70.0),  # a long gap: no step check across it
    ]
    series += [(3000 + IV * k, 70.0) for k in range(1, 14)]  # flat for 65 min
    f = qc_flags(series, rules, IV)
    assert f[0] == "" and f[300] == "" and f[600] == "step" and f[900] == "range,step"
    assert 1200 not in f and f[1500] == "range"
    assert f[3000] == "" and f[3000 + 11 * IV] == "" and f[3000 + 12 * IV] == "flat"
    assert f[3000 + 13 * IV] == "flat"
    # flags only from `since`, with the earlier readings as context
    tail = qc_flags(series, rules, IV, since=3000 + 12 * IV)
    assert tail == {3000 + 12 * IV: "flat", 3000 + 13 * IV: "flat"}
    assert context_s(rules, IV) == 3600 + IV and context_s({}, IV) == 2 * IV
    # no rules: no flags; values are never changed (the function only returns flags)
    assert set(qc_flags(series, {}, IV).values()) == {""}


def test_report_period_learned_and_hourly_reports_are_not_silence() -> None:
    from host_tools.center.alarms import report_period

    hourly = [3600.0 * k + (0.2 if k % 2 else 0.0) for k in range(6)]
    burst = sorted(hourly + [h + 0.05 for h in hourly])  # two frames per report
    assert abs((report_period(burst, IV) or 0) - 3600.0) < 1
    storm = sorted(hourly + [3600.0 * 5 + 300 * k for k in range(1, 4)])  # alarm reports every 5 min
    assert abs((report_period(storm, IV) or 0) - 3600.0) < 1
    assert report_period([0.0, 3600.0], IV) is None and report_period([], IV) is None
    r = _rules()
    # an hourly station: 3 record intervals of quiet between reports raise nothing ...
    snaps = [Snapshot(now, IV, last_received=3600.0 * (now // 3600), period_s=3600.0)
             for now in range(3600, 6 * 3600, 60)]
    assert _run(r, snaps) == []
    # ... a report 3 intervals overdue is
    quiet = [Snapshot(3600.0 + 60 * k, IV, last_received=3600.0, period_s=3600.0) for k in range(1, 100)]
    assert _run(r, quiet) == [(3600.0 + 4500, "silent", "raised")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=66.0, max_value=72.0), min_size=1, max_size=60))
def test_stage_alarms_alternate_and_need_the_band_to_clear(levels: list[float]) -> None:
    r = _rules()
    log = _run(r, [Snapshot(i, IV, None, level_m=v) for i, v in enumerate(levels)])
    for kind, stage in (("stage_warning", 68.0), ("stage_flood_limit", 70.0)):
        states = [(t, s) for t, k, s in log if k == kind]
        assert [s for _, s in states] == ["raised", "cleared"] * (len(states) // 2) + ["raised"] * (len(states) % 2)
        for t, s in states:
            v = levels[int(t)]
            assert (v >= stage) if s == "raised" else (v < stage - 0.05)
        # and nothing is missed: while active the level stayed within the band, while not it
        # stayed below the stage
        changes = {int(t): s == "raised" for t, s in states}
        active = False
        for i, v in enumerate(levels):
            active = changes.get(i, active)
            assert v >= stage - 0.05 if active else v < stage


def test_watch_task_survives_a_broken_store() -> None:
    from host_tools.center.watchtask import WatchTask

    class Broken:
        def __getattr__(self, name: str) -> object:
            raise ConnectionError("database went away")

    task = WatchTask(lambda: 1000.0, None, every=0)
    task.poll(Broken())
    task.poll(Broken())
    assert task.errors == 2 and task.watch is None
