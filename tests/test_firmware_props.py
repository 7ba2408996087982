"""Properties of the board's pure logic, checked with hypothesis on CPython.

The same modules run on the VM in ``test_firmware_logic.py``; there a simulated day
gives the same bytes on both interpreters, so what holds here holds on the board.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

import mpvm
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=300, derandomize=True, deadline=None)


def firmware(name: str) -> ModuleType:
    """A firmware module imported on CPython (firmware/ is the board's root)."""
    path = str(mpvm.FIRMWARE)
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module(name)


config = firmware("config")
sensors = firmware("sensors")
sampler = firmware("sampler")
alarms = firmware("alarms")


@SETTINGS
@given(st.integers(-(10**7), 10**7), st.integers(-(10**7), 10**7), st.sampled_from([10000, 16000, 2]))
def test_muldiv_is_exact_rounding(a: int, b: int, c: int) -> None:
    assert sensors.muldiv(a, b, c) == (2 * a * b + c) // (2 * c)


@SETTINGS
@given(st.lists(st.integers(0, 10_000), max_size=40))
def test_debounce_matches_a_reference(gaps: list[int]) -> None:
    g = sensors.RainGauge(200, 10**6)
    t = 5
    last = None
    want = 0
    for d in gaps:
        t += d
        g.on_edge(t & 0x3FFFFFFF)
        if last is None or t - last >= 200:
            want += 1
            last = t
    assert g.take() == (want, False)


sample = st.one_of(st.integers(-5000, 80000), st.none(), st.just("fault"))


@SETTINGS
@given(st.lists(sample, min_size=5, max_size=5), st.integers(0, 10**6))
def test_median_rule(samples: list[Any], k: int) -> None:
    cfg, _ = config.validate({"qc_level_step_mm": 0, "qc_flat_n": 0,
                              "qc_level_min_mm": -10**7, "qc_level_max_mm": 10**7})
    s = sampler.Sampler(cfg, 0)
    mark = (k + 1) * 300
    for i, v in enumerate(samples):
        t = mark - 240 + 60 * i
        if v == "fault":
            s.add_level_sample(t, None, True)
        elif v is not None:
            s.add_level_sample(t, v)
    level = s.record(mark, 0)[1]
    vals = sorted(v for v in samples if isinstance(v, int))
    if not vals:
        assert level == (2, mark, None, 4 if "fault" in samples else 3)
    else:
        n = len(vals)
        med = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) // 2
        assert level == (2, mark, med, 0)


@SETTINGS
@given(st.lists(st.tuples(st.integers(69000, 71000), st.sampled_from([0, 0, 0, 1, 2, 3, 4])), max_size=60))
def test_level_stage_hysteresis_model(seq: list[tuple[int, int]]) -> None:
    cfg, _ = config.validate({"level_alarm_mm": 70000, "level_hyst_mm": 100, "level_rise_mm": None})
    a = alarms.Alarms(cfg)
    on = False
    for i, (v, q) in enumerate(seq):
        value = None if q in (3, 4) else v
        evs = a.update((i + 1) * 300, 2, value, q)
        usable = q in (0, 1)
        if usable and not on and v >= 70000:
            want = [alarms.RAISED]
            on = True
        elif usable and on and v < 69900:
            want = [alarms.CLEARED]
            on = False
        elif on:
            want = [alarms.ACTIVE]
        else:
            want = []
        assert [e[1] for e in evs] == want
        assert a.in_alarm == on


json_value = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40),
                       st.floats(allow_nan=False), st.text(max_size=70))


@SETTINGS
@given(st.dictionaries(st.sampled_from(sorted(config.DEFAULTS) + ["bogus"]), json_value, max_size=12))
def test_validate_always_gives_a_consistent_config(d: dict[str, Any]) -> None:
    cfg, errors = config.validate(d)
    assert config._cross(cfg) is None
    for k, v in cfg.items():
        assert config._check(k, v) is None, (k, v)
    for e in errors:
        assert "\n" not in e and "must" in e or "unknown key" in e, e
    new, why = config.apply_changes(config.DEFAULTS, d)
    if d and not errors:
        assert new == cfg and why is None
    else:
        assert new is None and why


@pytest.mark.parametrize("ri,si,n", [(5, 1, 3), (60, 60, 1), (300, 60, 5), (900, 300, 2),
                                     (3600, 60, 15), (7200, 600, 3), (86400, 3600, 1)])
def test_marks_divide_the_day(ri: int, si: int, n: int) -> None:
    report = max(ri, 3600)
    cfg, errors = config.validate({
        "record_interval": ri, "sample_interval": si, "median_n": n, "report_interval": report,
        "shed_report_interval": 86400, "rain_window_s": min(ri * 2, 86400), "level_rise_window_s": min(ri * 4, 86400),
        "batt_interval": max(ri, 3600)})
    assert errors == []
    s = sampler.Sampler(cfg, 0)
    t = 12345
    marks: list[int] = []
    samples = 0
    while len(marks) < 5:
        t = s.next_due(t)
        samples += 1
        if s.is_mark(t):
            marks.append(t)
            assert any(r[0] == 3 for r in s.record(t, 0, False, 12000, 200)) == (t % max(ri, 3600) == 0)
    assert all(m % ri == 0 for m in marks)
    assert all(b - a == ri for a, b in zip(marks, marks[1:], strict=False))
    assert samples <= 5 * n + n  # only the median windows are sampled
