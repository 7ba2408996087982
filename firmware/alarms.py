# hydrolink alarm rules with hysteresis (alarm kinds and states: SPEC §5.4).
# Fed the recorded readings one by one (update), it answers with events
# (kind, state, value, threshold, window): state 1 raised when a rule enters
# alarm, 2 active on each later value while it stays in, 0 cleared when the
# value has gone back past the threshold by the hysteresis. The runtime sends
# an alarm frame at once on a raised (or cleared) event and, while in_alarm,
# reports every interval with active() in the report's alarm list.
#
# Values that cannot be trusted (missing, fault, out_of_range, maintenance)
# neither raise nor clear an alarm: an active alarm stays active through a
# sensor fault instead of silently clearing. Suspect values count: a missed
# flood costs more than a false alarm, and hysteresis clears it next time.
import array

try:
    from micropython import const
except ImportError:  # CPython (tests, host tools): const(x) is x
    def const(x):  # type: ignore[misc]
        return x

RAIN = const(1)  # kinds
LEVEL_HIGH = const(2)
LEVEL_RISE = const(3)
LEVEL_LOW = const(4)
BATTERY_LOW = const(5)

CLEARED = const(0)  # states
RAISED = const(1)
ACTIVE = const(2)

_E_RAIN = const(1)  # element ids, protocol/elements.csv
_E_LEVEL = const(2)
_E_BATTERY = const(3)
_NONE = const(-0x40000000)  # "no value" in a ring (below any level)


def _usable(q):
    return q == 0 or q == 1 or q == 5  # good, suspect, manual


class _Rule:
    # one threshold with hysteresis; high: alarm at value >= threshold,
    # cleared below threshold - hyst; low: at <= threshold, cleared above
    # threshold + hyst. threshold None: rule off.
    def __init__(self, kind, high, window=None):
        self.kind = kind
        self.high = high
        self.window = window
        self.thr = None
        self.hyst = 0
        self.on = False
        self.value = 0  # last value evaluated

    def set(self, thr, hyst, window=None):
        self.thr = thr
        self.hyst = hyst
        self.window = window
        if thr is None:
            self.on = False

    def eval(self, v, may_clear=True):
        # -> event tuple or None
        thr = self.thr
        if thr is None:
            return None
        self.value = v
        if not self.on:
            if (v >= thr) if self.high else (v <= thr):
                self.on = True
                return (self.kind, RAISED, v, thr, self.window)
            return None
        if may_clear and ((v < thr - self.hyst) if self.high else (v > thr + self.hyst)):
            self.on = False
            return (self.kind, CLEARED, v, thr, self.window)
        return (self.kind, ACTIVE, v, thr, self.window)

    def hold(self):
        # no usable value: an active alarm stays active with its last value
        if self.on:
            return (self.kind, ACTIVE, self.value, self.thr, self.window)
        return None


# Rings are array('i'), 4 bytes a slot, sized from the config once: Alarms
# with the default windows takes 1.4 KB, with two full-day windows (288 +
# 289 slots) 3.6 KB (unix VM, 64-bit); update() leaves the heap flat.
class _Ring:
    # one value per record interval over a window, indexed by time, so a
    # skipped interval reads as "no value" instead of shifting the window
    def __init__(self, n, ri):
        self.a = array.array("i", [_NONE] * n)
        self.n = n
        self.ri = ri
        self.last = None  # time of the newest slot

    def put(self, t, v):
        n = self.n
        ri = self.ri
        if self.last is not None and t > self.last:
            k = (t - self.last) // ri - 1  # intervals skipped in between
            if k > n:
                k = n
            for i in range(k):
                self.a[((self.last // ri) + 1 + i) % n] = _NONE
        if self.last is None or t > self.last:
            self.last = t
        self.a[(t // ri) % n] = v


class Alarms:
    def __init__(self, cfg):
        self.rain = _Rule(RAIN, True)
        self.high = _Rule(LEVEL_HIGH, True)
        self.rise = _Rule(LEVEL_RISE, True)
        self.low = _Rule(LEVEL_LOW, False)
        self.batt = _Rule(BATTERY_LOW, False)
        self._rules = (self.rain, self.high, self.rise, self.low, self.batt)
        ri = cfg["record_interval"]
        self._rain_ring = _Ring(cfg["rain_window_s"] // ri, ri)  # the intervals ending at t
        self._level_ring = _Ring(cfg["level_rise_window_s"] // ri + 1, ri)  # t - window .. t
        self.configure(cfg)

    def configure(self, cfg):
        # new thresholds take effect at the next value; the windows' history
        # is kept unless their size changed (cfg is validated: sizes <= 289)
        ri = cfg["record_interval"]
        rw = cfg["rain_window_s"]
        lw = cfg["level_rise_window_s"]
        self.rain.set(cfg["rain_alarm_tenths"], cfg["rain_hyst_tenths"], rw)
        self.high.set(cfg["level_alarm_mm"], cfg["level_hyst_mm"])
        self.rise.set(cfg["level_rise_mm"], cfg["level_hyst_mm"], lw)
        self.low.set(cfg["level_low_mm"], cfg["level_hyst_mm"])
        self.batt.set(cfg["batt_low_mv"], cfg["batt_hyst_mv"])
        r = self._rain_ring
        if r.n != rw // ri or r.ri != ri:
            self._rain_ring = _Ring(rw // ri, ri)
        r = self._level_ring
        if r.n != lw // ri + 1 or r.ri != ri:
            self._level_ring = _Ring(lw // ri + 1, ri)

    def retime(self):
        # the clock stepped: the windows' values stay (they are recent), the
        # time of their newest slot restarts
        self._rain_ring.last = None
        self._level_ring.last = None

    @property
    def in_alarm(self):
        for r in self._rules:
            if r.on:
                return True
        return False

    @property
    def flooding(self):
        # a rain or level rule in alarm: the station reports every interval.
        # Not battery_low, the station's own health: reporting every 5 min
        # with a low battery is what load shedding is there to prevent
        for r in self._rules:
            if r.on and r is not self.batt:
                return True
        return False

    def active(self):
        # -> list of (kind, ACTIVE, value, threshold, window) for the rules in alarm
        return [(r.kind, ACTIVE, r.value, r.thr, r.window) for r in self._rules if r.on]

    def update(self, t, element, value, quality):
        # one recorded reading -> list of events (often empty)
        ok = value is not None and _usable(quality)
        out = []
        if element == _E_RAIN:
            ring = self._rain_ring
            ring.put(t, value if ok else _NONE)
            s = 0
            gaps = False
            for v in ring.a:
                if v == _NONE:
                    gaps = True
                else:
                    s += v
            # a window with gaps gives a lower bound: it may raise, not clear
            self._add(out, self.rain.eval(s, not gaps))
        elif element == _E_LEVEL:
            ring = self._level_ring
            ring.put(t, value if ok else _NONE)
            if not ok:
                self._add(out, self.high.hold())
                self._add(out, self.rise.hold())
                self._add(out, self.low.hold())
                return out
            self._add(out, self.high.eval(value))
            self._add(out, self.low.eval(value))
            lo = value
            for v in ring.a:
                if v != _NONE and v < lo:
                    lo = v
            self._add(out, self.rise.eval(value - lo))
        elif element == _E_BATTERY:
            self._add(out, self.batt.eval(value) if ok else self.batt.hold())
        return out

    def _add(self, out, ev):
        if ev is not None:
            out.append(ev)
