# qc.py on the VM and on CPython: every quality code, the spike rule and
# its re-anchoring, flat lines, and that nothing is invented.
import qc
from tinytest import run

RI = 300


def test_good():
    c = qc.Check(RI, 0, 10000, 100, 0)
    assert c.check(0, 5000) == qc.GOOD
    assert c.check(300, 5050) == qc.GOOD


def test_out_of_range_code_2():
    c = qc.Check(RI, 0, 10000, 100, 0)
    assert c.check(0, -1) == qc.OUT_OF_RANGE
    assert c.check(300, 10001) == qc.OUT_OF_RANGE
    assert c.check(600, 10000) == qc.GOOD  # limits are inclusive
    # an out-of-range value is no reference for the step check
    assert c.check(900, 99999) == qc.OUT_OF_RANGE
    assert c.check(1200, 10000) == qc.GOOD


def test_spike_is_suspect_code_1_and_reference_stays():
    c = qc.Check(RI, None, None, 100, 0)
    assert c.check(0, 5000) == qc.GOOD
    assert c.check(300, 5800) == qc.SUSPECT  # spike
    assert c.check(600, 5010) == qc.GOOD  # back near the last good value


def test_real_step_is_confirmed_by_the_next_value():
    c = qc.Check(RI, None, None, 100, 0)
    c.check(0, 5000)
    assert c.check(300, 6000) == qc.SUSPECT  # a gate opened: a person judges
    assert c.check(600, 6030) == qc.GOOD  # agrees with the new level: re-anchored
    assert c.check(900, 6060) == qc.GOOD


def test_step_scales_with_a_gap():
    c = qc.Check(RI, None, None, 100, 0)
    c.check(0, 5000)
    assert c.check(3 * RI, 5250) == qc.GOOD  # 3 intervals: up to 300
    assert c.check(4 * RI, 5400) == qc.SUSPECT
    assert c.check(10 ** 9, 5300) == qc.GOOD  # a huge gap neither overflows nor fails


def test_step_check_off():
    c = qc.Check(RI, None, None, 0, 0)
    c.check(0, 0)
    assert c.check(300, 100000) == qc.GOOD


def test_flat_line_is_suspect():
    c = qc.Check(RI, None, None, 100, 4)
    qs = [c.check(i * RI, 7000) for i in range(6)]
    assert qs == [0, 0, 0, 1, 1, 1], qs
    assert c.check(6 * RI, 7001) == qc.GOOD  # it moved
    c = qc.Check(RI, None, None, 100, 0)
    assert [c.check(i * RI, 7000) for i in range(500)].count(qc.GOOD) == 500


def test_missing_code_3_and_fault_code_4_have_no_value():
    c = qc.Check(RI, 0, 10, 1, 2)
    assert c.check(0, None) == qc.MISSING
    assert c.check(300, None, True) == qc.FAULT
    assert not qc.has_value(qc.MISSING) and not qc.has_value(qc.FAULT)
    assert qc.has_value(qc.SUSPECT) and qc.has_value(qc.OUT_OF_RANGE)
    # a missing value does not break or extend a flat line, nor move the reference
    c = qc.Check(RI, None, None, 100, 3)
    c.check(0, 50)
    c.check(300, None)
    c.check(600, 50)
    assert c.check(900, 50) == qc.SUSPECT


def test_codes_match_the_spec():
    assert (qc.GOOD, qc.SUSPECT, qc.OUT_OF_RANGE, qc.MISSING, qc.FAULT, qc.MANUAL,
            qc.MAINTENANCE) == (0, 1, 2, 3, 4, 5, 6)


run(globals())
