# sampler.py on the VM and on CPython: clock-aligned marks whatever the boot
# time, the median rule, rain per interval, quality codes in records, and a
# flat heap over a simulated week.
import config
import qc
import sampler
from sampler import BATTERY, LEVEL, LOGGER_TEMP, RAIN
from tinytest import on_micropython, run


def make(t_start=0, **kw):
    cfg, errors = config.validate(kw)
    assert not errors, errors
    return sampler.Sampler(cfg, t_start)


def drive(s, t0, t1, level=lambda t: 1000, tips=0, keep=True):
    # the runtime's loop: sleep to next_due, sample, record at marks
    t = t0
    samples = []
    out = []
    while True:
        t = s.next_due(t)
        if t > t1:
            return samples, out
        s.add_level_sample(t, level(t))
        r = s.record(t, tips, False, 12600, 215) if s.is_mark(t) else None
        if keep:
            samples.append(t)
            if r is not None:
                out.append(r)


def test_marks_aligned_whatever_the_boot_time():
    for boot in (0, 1, 37, 299, 301, 12345, 86400 * 3 + 299, 777777):
        s = make(boot)
        samples, out = drive(s, boot, boot + 3600)
        marks = [r[0][1] for r in out]
        assert marks[0] == (boot // 300 + 1) * 300, (boot, marks[0])
        for m in marks:
            assert m % 300 == 0
        for i in range(1, len(marks)):
            assert marks[i] - marks[i - 1] == 300


def test_samples_only_in_the_median_windows():
    s = make(0, median_n=3)
    samples, out = drive(s, 0, 900)
    assert samples == [180, 240, 300, 480, 540, 600, 780, 840, 900], samples
    s = make(0, record_interval=600, sample_interval=60, median_n=1)
    samples, out = drive(s, 5, 1800)
    assert samples == [600, 1200, 1800], samples


def test_median_rule():
    s = make(0)
    for t, v in ((0, 9999), (60, 1000), (120, 1001), (180, 5000), (240, 1002), (300, 999)):
        s.add_level_sample(t, v)
    r = s.record(300, 0)
    assert r[1] == (LEVEL, 300, 1001, 0), r  # the spike at 180 and the sample at 0 are out
    # an even count (one sample faulted): the mean of the middle two, rounded down
    for t, v in ((360, 1000), (420, 1002), (480, 1005), (540, 1007)):
        s.add_level_sample(t, v)
    s.add_level_sample(600, None, True)
    assert s.record(600, 0)[1] == (LEVEL, 600, 1003, 0)


def test_late_sample_counts_for_its_slot():
    s = make(0)
    s.add_level_sample(298, 10)
    s.add_level_sample(302, 20)  # the mark's sample, 2 s late: same slot, replaces it
    s.add_level_sample(331, 30)  # rounds to 360: the next interval's
    assert s.record(300, 0)[1] == (LEVEL, 300, 20, 0)


def test_level_fault_and_missing_have_no_value():
    s = make(0)
    for t in (60, 120, 180, 240, 300):
        s.add_level_sample(t, None, True)
    assert s.record(300, 0)[1] == (LEVEL, 300, None, qc.FAULT)
    assert s.record(600, 0)[1] == (LEVEL, 600, None, qc.MISSING)  # no sample at all
    s.add_level_sample(900, 5)
    assert s.record(900, 0)[1] == (LEVEL, 900, 5, 0)  # one value is enough; nothing old reused


def test_rain_value_in_tenths():
    s = make(0, tip_tenths=2)
    assert s.record(300, 7)[0] == (RAIN, 300, 14, 0)
    s.configure(config.validate({"tip_tenths": 5})[0])
    assert s.record(600, 3)[0] == (RAIN, 600, 15, 0)
    assert s.record(900, 0)[0] == (RAIN, 900, 0, 0)


def test_rain_first_partial_interval_is_suspect():
    s = make(120)  # booted at 00:02: saw only 3 of 5 minutes
    assert s.record(300, 4)[0] == (RAIN, 300, 8, qc.SUSPECT)
    assert s.record(600, 4)[0] == (RAIN, 600, 8, qc.GOOD)
    s = make(300)  # booted on a mark: the first interval is whole
    assert s.record(600, 1)[0] == (RAIN, 600, 2, qc.GOOD)


def test_rain_fault_out_of_range_and_skipped_marks():
    s = make(0, qc_rain_max_tenths=100)
    assert s.record(300, 3, True)[0] == (RAIN, 300, None, qc.FAULT)
    assert s.record(600, 51)[0] == (RAIN, 600, 102, qc.OUT_OF_RANGE)
    assert s.record(1500, 2)[0] == (RAIN, 1500, 4, qc.SUSPECT)  # spans 3 intervals
    assert s.record(1800, 0)[0] == (RAIN, 1800, 0, qc.GOOD)


def test_clock_going_back_keeps_the_tips():
    s = make(0)
    assert s.record(600, 2)[0] == (RAIN, 600, 4, qc.GOOD)
    assert s.record(600, 3) == []  # the same mark again (clock stepped back)
    assert s.record(900, 1)[0] == (RAIN, 900, 8, qc.GOOD)  # nothing lost


def test_battery_and_temperature_hourly():
    s = make(0)
    els = []
    for m in range(300, 7201, 300):
        els.append([r[0] for r in s.record(m, 0, False, 12600, 215)])
    assert els[11] == [RAIN, LEVEL, BATTERY, LOGGER_TEMP]  # 3600
    assert els[23] == [RAIN, LEVEL, BATTERY, LOGGER_TEMP]  # 7200
    assert sum(1 for e in els if BATTERY in e) == 2
    r = s.record(10800, 0, False, None, 9999)
    assert r[2] == (BATTERY, 10800, None, qc.FAULT)
    assert r[3] == (LOGGER_TEMP, 10800, 9999, qc.OUT_OF_RANGE)


def test_configure_mid_window_keeps_the_samples():
    s = make(0)
    for t in (60, 120, 180):
        s.add_level_sample(t, 500)
    s.configure(config.validate({"tip_tenths": 5})[0])
    s.add_level_sample(240, 501)
    s.add_level_sample(300, 502)
    assert s.record(300, 1)[:2] == [(RAIN, 300, 5, 0), (LEVEL, 300, 500, 0)]
    s.configure(config.validate({"sample_interval": 30, "median_n": 2})[0])
    assert s.record(600, 0)[1] == (LEVEL, 600, None, qc.MISSING)


def test_no_level_sensor_no_level_reading():
    s = make(0, level_sensor="none")
    assert [r[0] for r in s.record(300, 0)] == [RAIN]


def test_maintenance_marks_values():
    s = make(0)
    s.add_level_sample(300, 100)
    r = s.record(300, 5, maintenance=True)
    assert r[0][3] == qc.MAINTENANCE and r[1] == (LEVEL, 300, 100, qc.MAINTENANCE)
    assert s.record(600, 0, maintenance=True)[1] == (LEVEL, 600, None, qc.MISSING)


def test_level_qc_in_records():
    s = make(0, qc_level_step_mm=100, qc_level_max_mm=80000)
    seq = []
    for k, v in enumerate((70000, 70010, 79000, 70020, 90000)):
        m = (k + 1) * 300
        s.add_level_sample(m, v)
        seq.append(s.record(m, 0)[1][3])
    assert seq == [0, 0, 1, 0, 2], seq


def test_heap_is_flat_over_a_week():
    if not on_micropython():
        return  # CPython: no heap to measure
    import gc
    gc.collect()
    base = gc.mem_alloc()
    s = make(0)
    gc.collect()
    print("heap: a Sampler with its QC takes", gc.mem_alloc() - base, "bytes")
    lvl = lambda t: 70000 + (t // 60) % 37  # noqa: E731

    gc.collect()
    drive(s, 0, 86400, lvl, 1, False)  # warm up: a day
    gc.collect()
    before = gc.mem_alloc()
    t = 86400
    for _ in range(6 * 288):  # six more days, nothing kept
        while True:
            t = s.next_due(t)
            s.add_level_sample(t, lvl(t))
            if s.is_mark(t):
                s.record(t, 1, False, 12600, 215)
                break
    gc.collect()
    grew = gc.mem_alloc() - before
    print("heap: sampler", before, "bytes in use; grew", grew, "over 6 days of records")
    assert grew <= 0, grew


run(globals())
