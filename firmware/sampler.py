# hydrolink sampling and aggregation, aligned to the clock. Pure: the
# runtime reads the sensors and passes values and hydrolink seconds in.
#
# Marks: values are recorded at multiples of record_interval since the
# hydrolink epoch (5-min values at :00, :05 ... UTC), whenever the board
# booted. Level is sampled at multiples of sample_interval, and only in the
# median windows (nothing else uses samples, and a sample costs power).
#
# The median rule: the level recorded at mark M is the median of the
# samples taken at M - (median_n - 1) * sample_interval, ..., M - sample_interval,
# M (with the defaults: the 5 one-minute samples ending at M; a sample
# belongs to the slot its time rounds to, so a late sample still counts).
# Faulted or missing samples are left out; with an even count the median is
# the mean of the middle two, rounded down. No sample with a value in the
# window: the value is missing (quality fault if a sample faulted, else
# missing). A spike in one sample never reaches the record.
#
# Rain at M is the tips counted since the previous record, x tip_tenths, in
# 0.1 mm: the rain of the interval ending at M (elements.csv). The first
# interval after boot, or one after skipped marks, did not see exactly one
# whole interval: its value is a true count but marked suspect.
# Battery (mV) and logger temperature (0.1 degC) are recorded at multiples
# of batt_interval (hourly by default).
import array

import qc

try:
    from micropython import const
except ImportError:  # CPython (tests, host tools): const(x) is x
    def const(x):  # type: ignore[misc]
        return x

RAIN = const(1)  # element ids, protocol/elements.csv
LEVEL = const(2)
BATTERY = const(3)
LOGGER_TEMP = const(4)

_MAXN = const(15)  # largest median_n (config.py): size of the sample ring
_EMPTY = const(0)
_VALUE = const(1)
_FAULT = const(2)


# Measured on the unix VM (64-bit, so about twice a 32-bit board's figure):
# a Sampler with its four Checks takes 1.7 KB; one 5-minute cycle (samples,
# record, alarm updates) allocates ~0.6 KB of short-lived tuples, and
# gc.mem_alloc() after six simulated days is what it was after one
# (tests/vm/vm_sampler.py prints the figures).
class Sampler:
    def __init__(self, cfg, t_start=None):
        # t_start: hydrolink time at which the rain gauge started counting
        # (boot); None if unknown (no partial-interval rule).
        self._t = array.array("i", [0] * _MAXN)  # slot time of each sample
        self._v = array.array("i", [0] * _MAXN)
        self._s = bytearray(_MAXN)  # _EMPTY / _VALUE / _FAULT
        self._sort = array.array("i", [0] * _MAXN)  # scratch for the median
        self.t_start = t_start
        self.last_mark = None  # last recorded mark
        self._tips = 0  # tips taken but not yet recorded
        self._tip_fault = False
        self.configure(cfg)

    def configure(self, cfg):
        # new settings from the next sample on; the samples already in the
        # ring stay unless their spacing changed (a set_config mid-window
        # does not cost that mark its median)
        if getattr(self, "si", 0) != cfg["sample_interval"]:
            for i in range(_MAXN):
                self._s[i] = _EMPTY
        self.si = cfg["sample_interval"]
        self.ri = cfg["record_interval"]
        self.n = cfg["median_n"]
        self.tip = cfg["tip_tenths"]
        self.bi = cfg["batt_interval"]
        self.has_level = cfg["level_sensor"] != "none"
        ri = self.ri
        self.level_qc = qc.Check(ri, cfg["qc_level_min_mm"], cfg["qc_level_max_mm"],
                                 cfg["qc_level_step_mm"], cfg["qc_flat_n"])
        self.rain_qc = qc.Check(ri, 0, cfg["qc_rain_max_tenths"])
        self.batt_qc = qc.Check(ri, 0, 60000)
        self.temp_qc = qc.Check(ri, -400, 850)  # the electronics' -40 .. 85 degC

    def is_mark(self, t):
        return t % self.ri == 0

    def next_due(self, t):
        # the next time after t at which a level sample is due; every record
        # mark is one of them (the runtime records right after sampling there)
        si = self.si
        s = (t // si + 1) * si
        off = s % self.ri
        w = (self.n - 1) * si
        if off and self.ri - off > w:
            s += self.ri - off - w  # skip to the start of the next window
        return s

    def add_level_sample(self, t, mm, fault=False):
        # mm: level in mm, or None (fault: the driver raised SensorError)
        si = self.si
        slot = (t + si // 2) // si * si
        i = (slot // si) % _MAXN
        self._t[i] = slot
        if mm is None:
            self._s[i] = _FAULT if fault else _EMPTY
        else:
            self._v[i] = mm
            self._s[i] = _VALUE

    def _level(self, m):
        # (value or None, fault) at mark m by the median rule
        si = self.si
        first = m - (self.n - 1) * si
        a = self._sort
        nv = 0
        faults = 0
        for i in range(_MAXN):
            ts = self._t[i]
            s = self._s[i]
            if s == _EMPTY or ts < first or ts > m:
                continue
            if s == _FAULT:
                faults += 1
                continue
            # insertion sort into the scratch array
            v = self._v[i]
            j = nv
            while j > 0 and a[j - 1] > v:
                a[j] = a[j - 1]
                j -= 1
            a[j] = v
            nv += 1
        if nv == 0:
            return None, faults > 0
        h = nv // 2
        if nv & 1:
            return a[h], False
        return (a[h - 1] + a[h]) // 2, False

    def record(self, t_mark, tips, tip_fault=False, batt_mv=None, temp=None, maintenance=False):
        # -> list of readings (element, t_mark, value or None, quality) at the
        # record mark t_mark. tips, tip_fault: RainGauge.take(). batt_mv,
        # temp (0.1 degC): read at the mark, None if the read failed; used at
        # batt_interval marks only. maintenance: a technician is at work
        # (values get quality 6). A t_mark that is not after the last one (the
        # clock went back) gives [] and keeps the tips for the next mark.
        self._tips += tips
        self._tip_fault = self._tip_fault or tip_fault
        ri = self.ri
        t_mark -= t_mark % ri
        last = self.last_mark
        if last is not None and t_mark <= last:
            return []
        out = []
        # rain
        if self._tip_fault:
            v = None
            q = qc.FAULT
        else:
            v = self._tips * self.tip
            if last is not None:
                whole = last == t_mark - ri
            elif self.t_start is not None:
                whole = self.t_start <= t_mark - ri
            else:
                whole = True
            if maintenance:
                q = qc.MAINTENANCE  # a technician tipping the bucket by hand
            else:
                q = self.rain_qc.check(t_mark, v)
                if q == qc.GOOD and not whole:
                    q = qc.SUSPECT
        out.append((RAIN, t_mark, v, q))
        self._tips = 0
        self._tip_fault = False
        # level
        if self.has_level:
            v, fault = self._level(t_mark)
            out.append((LEVEL, t_mark, v, self._q(self.level_qc, t_mark, v, fault, maintenance)))
        if t_mark % self.bi == 0:
            out.append((BATTERY, t_mark, batt_mv, self._q(self.batt_qc, t_mark, batt_mv, True, False)))
            out.append((LOGGER_TEMP, t_mark, temp, self._q(self.temp_qc, t_mark, temp, True, False)))
        self.last_mark = t_mark
        return out

    def _q(self, check, t, v, fault, maintenance):
        if maintenance and v is not None:
            check.reset()  # the technician's work is no reference for later values
            return qc.MAINTENANCE
        return check.check(t, v, fault)
