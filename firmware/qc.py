# hydrolink quality control of recorded values (quality codes: SPEC §5.3).
# One Check per element stream. It only ever labels the value it is given:
# it never replaces a value with an older one or an estimate. A value that
# fails a check is kept with its code for a person to judge; a sensor fault
# or a missing sample has no value at all.
try:
    from micropython import const
except ImportError:  # CPython (tests, host tools): const(x) is x
    def const(x):  # type: ignore[misc]
        return x

GOOD = const(0)
SUSPECT = const(1)  # spike / rate of change, or flat line
OUT_OF_RANGE = const(2)
MISSING = const(3)  # no value
FAULT = const(4)  # no value: the sensor failed
MANUAL = const(5)
MAINTENANCE = const(6)

_MAX_GAP = const(1000)  # intervals: caps the allowed step after a long gap (no overflow)


def has_value(q):
    return q != MISSING and q != FAULT


class Check:
    # lo, hi: plausible range (None: no limit). step: largest change per
    # interval against the last good value (0: no check); after a gap of k
    # intervals k * step is allowed. flat_n: the same value flat_n times in
    # a row is suspect from the flat_n-th on (0: no check), for sensors that
    # should move (a level sensor's noise moves its last digit).

    def __init__(self, interval, lo=None, hi=None, step=0, flat_n=0):
        self.interval = interval
        self.lo = lo
        self.hi = hi
        self.step = step
        self.flat_n = flat_n
        self.reset()

    def reset(self):
        self.ref = None  # last good value: the reference for the step check
        self.ref_t = 0
        self.cand = None  # last value that failed only the step check
        self.cand_t = 0
        self.same = 0  # run length of the current value
        self.last = None

    def _step_ok(self, t, v, ref, ref_t):
        k = (t - ref_t) // self.interval
        if k < 1:
            k = 1
        elif k > _MAX_GAP:
            k = _MAX_GAP
        d = v - ref
        return -k * self.step <= d <= k * self.step

    def check(self, t, value, fault=False):
        # -> quality code for value at time t (value None: FAULT or MISSING)
        if value is None:
            return FAULT if fault else MISSING
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            return OUT_OF_RANGE  # neither a reference nor part of a flat line
        q = GOOD
        if self.step and self.ref is not None and not self._step_ok(t, value, self.ref, self.ref_t):
            # A spike is suspect and the reference stays. Two values in a row
            # that agree with each other (a real step: a gate opened, the
            # sensor was moved) make the second one good and the new reference.
            if self.cand is not None and self._step_ok(t, value, self.cand, self.cand_t):
                self.cand = None
            else:
                self.cand = value
                self.cand_t = t
                q = SUSPECT
        else:
            self.cand = None
        if q == GOOD:
            self.ref = value
            self.ref_t = t
        if value == self.last:
            self.same += 1
        else:
            self.last = value
            self.same = 1
        if self.flat_n and self.same >= self.flat_n:
            q = SUSPECT
        return q
