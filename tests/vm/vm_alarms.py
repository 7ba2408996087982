# alarms.py on the VM and on CPython: entry and exit with hysteresis for the
# rain window, the level stage and the rise rate; faults hold an alarm.
import alarms
import config
from alarms import ACTIVE, CLEARED, RAISED
from tinytest import on_micropython, run

RI = 300
E_RAIN = 1
E_LEVEL = 2
E_BATT = 3


def make(**kw):
    cfg, errors = config.validate(kw)
    assert not errors, errors
    return alarms.Alarms(cfg)


def states(evs, kind):
    return [e[1] for e in evs if e[0] == kind]


def test_rain_window_entry_and_exit_with_hysteresis():
    a = make(rain_alarm_tenths=100, rain_window_s=1800, rain_hyst_tenths=20)
    t = 0
    seen = []
    # 6 dry intervals fill the window, then a burst: 50 + 60 = 11 mm in 10 min
    for v in (0, 0, 0, 0, 0, 0, 50, 60, 0, 0, 0, 0, 0, 0, 0):
        t += RI
        evs = a.update(t, E_RAIN, v, 0)
        seen.append(evs[0] if evs else None)
    assert seen[:6] == [None] * 6
    assert seen[6] is None  # 5 mm: below 10 mm
    assert seen[7] == (alarms.RAIN, RAISED, 110, 100, 1800)
    assert [e[1] for e in seen[8:12]] == [ACTIVE] * 4  # the burst is still in the window
    assert seen[12] == (alarms.RAIN, CLEARED, 60, 100, 1800)  # the 5 mm left: 6 < 10 - 2 mm
    assert seen[13] is None and seen[14] is None and not a.in_alarm


def test_rain_hysteresis_band_keeps_the_alarm():
    a = make(rain_alarm_tenths=100, rain_window_s=900, rain_hyst_tenths=20)
    t = 0
    for v in (0, 0, 0):
        t += RI
        a.update(t, E_RAIN, v, 0)
    out = []
    for v in (100, 0, 0, 85, 0, 0, 0):
        t += RI
        out.append(states(a.update(t, E_RAIN, v, 0), alarms.RAIN))
    # 10 mm raises; 8.5 mm (window 85) stays active: it is above 10 - 2 mm
    assert out == [[RAISED], [ACTIVE], [ACTIVE], [ACTIVE], [ACTIVE], [ACTIVE], [CLEARED]], out


def test_rain_gap_never_clears_but_may_raise():
    a = make(rain_alarm_tenths=100, rain_window_s=900, rain_hyst_tenths=0)
    assert states(a.update(300, E_RAIN, 120, 0), alarms.RAIN) == [RAISED]  # window not full yet
    assert states(a.update(600, E_RAIN, None, 4), alarms.RAIN) == [ACTIVE]
    assert states(a.update(900, E_RAIN, 0, 0), alarms.RAIN) == [ACTIVE]
    assert states(a.update(1200, E_RAIN, 0, 0), alarms.RAIN) == [ACTIVE]  # gap still in window
    assert states(a.update(1500, E_RAIN, 0, 0), alarms.RAIN) == [CLEARED]
    # a skipped interval (no reading at all) is a gap too
    a.update(1800, E_RAIN, 0, 0)
    assert states(a.update(2700, E_RAIN, 200, 0), alarms.RAIN) == [RAISED]


def test_level_stage_entry_and_exit_with_hysteresis():
    a = make(level_alarm_mm=70000, level_hyst_mm=50, level_rise_mm=None)
    out = []
    for k, v in enumerate((69990, 70000, 70100, 69960, 69950, 69949, 69999)):
        evs = a.update((k + 1) * RI, E_LEVEL, v, 0)
        out.append(evs[0][:2] if evs else None)
    H = alarms.LEVEL_HIGH
    assert out == [None, (H, RAISED), (H, ACTIVE), (H, ACTIVE), (H, ACTIVE), (H, CLEARED), None], out
    e = a.update(8 * RI, E_LEVEL, 70001, 0)[0]
    assert e == (H, RAISED, 70001, 70000, None)  # no window for a stage


def test_level_low_stage():
    a = make(level_low_mm=1000, level_hyst_mm=50, level_rise_mm=None)
    L = alarms.LEVEL_LOW
    assert a.update(300, E_LEVEL, 1001, 0) == []
    assert a.update(600, E_LEVEL, 1000, 0) == [(L, RAISED, 1000, 1000, None)]
    assert a.update(900, E_LEVEL, 1050, 0)[0][1] == ACTIVE
    assert a.update(1200, E_LEVEL, 1051, 0)[0][1] == CLEARED


def test_level_rise_rate():
    a = make(level_rise_mm=300, level_rise_window_s=3600, level_hyst_mm=50)
    R = alarms.LEVEL_RISE
    t = 0
    out = []
    lv = 50000
    for k in range(40):
        t += RI
        if k < 12:
            lv += 30  # 360 mm/h
        out.append(a.update(t, E_LEVEL, lv, 0))
    first = [i for i, evs in enumerate(out) if states(evs, R) == [RAISED]]
    assert first == [10], first  # 300 mm above the first value (k=0) within the hour
    assert out[10][0] == (R, RAISED, 300, 300, 3600)
    assert states(out[12], R) == [ACTIVE]
    cleared = [i for i, evs in enumerate(out) if states(evs, R) == [CLEARED]]
    # flat at 50360 from k=11: the window (13 values, t - 1 h .. t) loses its
    # lowest values one by one; cleared below 300 - 50 mm: at k=15 its lowest
    # is k=3's 50120, 240 below
    assert cleared == [15], cleared
    assert out[15][0] == (R, CLEARED, 240, 300, 3600)
    assert states(out[14], R) == [ACTIVE]  # 270: inside the hysteresis band
    assert not a.in_alarm


def test_fault_holds_an_alarm_and_bad_values_do_not_raise():
    a = make(level_alarm_mm=70000, level_hyst_mm=50, level_rise_mm=None)
    H = alarms.LEVEL_HIGH
    assert a.update(300, E_LEVEL, 99999, 2) == []  # out of range: no alarm
    assert a.update(600, E_LEVEL, 70100, 6) == []  # maintenance: no alarm
    assert a.update(900, E_LEVEL, 70100, 1)[0][:2] == (H, RAISED)  # suspect counts
    assert a.update(1200, E_LEVEL, None, 4) == [(H, ACTIVE, 70100, 70000, None)]
    assert a.update(1500, E_LEVEL, 60000, 2) == [(H, ACTIVE, 70100, 70000, None)]
    assert a.update(1800, E_LEVEL, 60000, 0)[0][:2] == (H, CLEARED)


def test_battery_low():
    a = make(batt_low_mv=11800, batt_hyst_mv=300)
    B = alarms.BATTERY_LOW
    assert a.update(3600, E_BATT, 11900, 0) == []
    assert a.update(7200, E_BATT, 11800, 0) == [(B, RAISED, 11800, 11800, None)]
    assert a.update(10800, E_BATT, 12000, 0)[0][1] == ACTIVE
    assert a.update(14400, E_BATT, 12101, 0)[0][1] == CLEARED


def test_active_list_and_in_alarm():
    a = make(level_alarm_mm=100, level_rise_mm=None, batt_low_mv=11800)
    assert a.active() == [] and not a.in_alarm
    a.update(300, E_LEVEL, 150, 0)
    a.update(300, E_BATT, 11000, 0)
    assert a.in_alarm
    kinds = sorted(e[0] for e in a.active())
    assert kinds == [alarms.LEVEL_HIGH, alarms.BATTERY_LOW]
    assert all(e[1] == ACTIVE for e in a.active())


def test_disabled_rules_and_reconfigure():
    a = make(rain_alarm_tenths=None, level_alarm_mm=None, level_rise_mm=None,
             batt_low_mv=None)
    for k in range(20):
        assert a.update(k * RI, E_RAIN, 1000, 0) == []
        assert a.update(k * RI, E_LEVEL, 10 ** 6 + k * 1000, 0) == []
        assert a.update(k * RI, E_BATT, 0, 0) == []
    cfg, _ = config.validate({"level_alarm_mm": 5000, "level_rise_mm": None})
    a.configure(cfg)
    assert a.update(20 * RI, E_LEVEL, 6000, 0)[0][:2] == (alarms.LEVEL_HIGH, RAISED)


def test_heap_per_update_is_returned():
    if not on_micropython():
        return  # CPython: no heap to measure
    import gc
    gc.collect()
    base = gc.mem_alloc()
    a = make(rain_window_s=86400, level_rise_window_s=86400)
    gc.collect()
    size = gc.mem_alloc() - base
    print("heap: Alarms with two full-day windows (288 + 289 slots) takes", size, "bytes")
    t = 0
    for _ in range(300):
        t += RI
        a.update(t, E_RAIN, 3, 0)
        a.update(t, E_LEVEL, 5000, 0)
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(2000):
        t += RI
        a.update(t, E_RAIN, 3, 0)
        a.update(t, E_LEVEL, 5000 + t % 7, 0)
    gc.collect()
    assert gc.mem_alloc() <= before, gc.mem_alloc() - before


run(globals())
