# power.py on the VM and on CPython: load shedding with hysteresis, and the
# restart policy (no burst of transmissions after a brownout).
import config
import power
from power import CRITICAL, NORMAL, SHED
from tinytest import run


def make(state=NORMAL, **kw):
    kw.setdefault("batt_shed_mv", 11500)
    kw.setdefault("batt_critical_mv", 11000)
    kw.setdefault("batt_hyst_mv", 300)
    cfg, errors = config.validate(kw)
    assert not errors, errors
    return power.Power(cfg, state)


def test_shedding_with_hysteresis():
    p = make()
    seq = [12000, 11500, 11499, 11600, 11799, 11800, 11499, 10999, 11200,
           11299, 11300, 11799, 11800, None, 10000, None, 12500]
    got = [p.update(mv) for mv in seq]
    want = [NORMAL, NORMAL, SHED, SHED, SHED, NORMAL, SHED, CRITICAL, CRITICAL,
            CRITICAL, SHED, SHED, NORMAL, NORMAL, CRITICAL, CRITICAL, NORMAL]
    assert got == want, got


def test_hovering_at_a_threshold_does_not_flap():
    p = make()
    changes = 0
    last = p.state
    for k in range(200):
        s = p.update(11500 + (37 * k) % 200 - 100)  # +-100 mV of noise around 11.5 V
        if s != last:
            changes += 1
            last = s
    assert changes == 1, changes


def test_what_each_state_allows():
    p = make(report_interval=3600, shed_report_interval=21600)
    assert (p.report_interval(), p.may_send(), p.may_backfill(), p.flags()) == (3600, True, True, 0)
    p.update(11400)
    assert (p.report_interval(), p.may_send(), p.may_backfill(), p.flags()) == (21600, True, False, 1)
    p.update(10000)
    assert (p.may_send(), p.may_backfill(), p.flags()) == (False, False, 1)


def test_brownout_boot_starts_shed():
    assert power.boot_state(power.BROWNOUT) == SHED
    assert power.boot_state(power.POWER_ON) == NORMAL
    p = make(power.boot_state(power.BROWNOUT))
    assert p.update(11700) == SHED  # not yet shown to have recovered
    assert p.update(11800) == NORMAL


def test_holdoff_spreads_restarts():
    assert power.holdoff(power.SOFT, 1, 60) == 0
    assert power.holdoff(power.DEEPSLEEP, 1, 60) == 0
    waits = [power.holdoff(power.POWER_ON, seed, 60) for seed in range(1, 201)]
    assert min(waits) >= 0 and max(waits) <= 60
    assert len(set(waits)) > 40, len(set(waits))  # a fleet does not restart in step
    assert power.holdoff(power.POWER_ON, 5, 60) == power.holdoff(power.POWER_ON, 5, 60)


def test_holdoff_grows_with_repeated_brownouts():
    for k in range(8):
        waits = [power.holdoff(power.BROWNOUT, s, 60, k) for s in range(1, 100)]
        cap = min(60 << min(k, 6), 3600)
        assert max(waits) <= cap, (k, max(waits))
        assert max(waits) > cap // 2, (k, max(waits))


def test_backoff_bounds():
    for attempt in range(30):
        d = power.backoff(attempt, 77, 10, 900)
        full = min(10 << min(attempt, 20), 900)
        assert full - full // 2 <= d <= full, (attempt, d)


def test_backoff_stays_within_small_ints():
    # base << 20 passed 2^30 (an allocation on a 32-bit board): every value
    # now stays below 2 * cap, however many attempts
    for base, cap in ((3600, 86400), (1, 86400), (10, 900), (3600, 3600)):
        for attempt in (0, 1, 5, 20, 21, 40, 1000, 0x3FFFFFFF):
            d = power.backoff(attempt, 0x3FFFFFFF, base, cap)
            assert cap - cap // 2 <= d <= cap or attempt < 20, (base, cap, attempt, d)
            assert 0 < d <= cap


def test_jitter_range():
    for n in (0, 1, 2, 7, 3600):
        for seed in (0, 1, -5, 2 ** 40, 12345):
            j = power.jitter(seed, n)
            assert 0 <= j < max(n, 1)


run(globals())
