# hydrolink sensor drivers. Each driver takes its bus (a pin callback, an
# ADC-like or UART-like object) and never creates machine objects; the board
# module wires real ones, the simulator its own. A driver that cannot give a
# value raises SensorError: the sampler records "fault" and tries again next
# cycle. Time is passed in (ticks in ms), so the logic is pure.
#
# Level drivers share one interface:
#     read_mm() -> int     level above the station datum, mm (SensorError)
#     configure(cfg)       take new calibration without losing the bus
# Level420 (4-20 mA on an ADC) and radar.ModbusRadar (RS-485 Modbus RTU,
# function 0x03) implement it; make_level(cfg, adc, uart) picks one from the
# config.
try:
    from micropython import const
except ImportError:  # CPython (tests, host tools): const(x) is x
    def const(x):  # type: ignore[misc]
        return x

# SensorError codes (why); every one is recorded as quality "fault" (SPEC §5.3)
OPEN_LOOP = const(1)  # loop current < 3.6 mA: broken wire, dead sensor
OVER_RANGE = const(2)  # loop current > 20.5 mA (shorted or flooded sensor), or the ADC at full scale
NO_ANSWER = const(3)  # bus read failed or timed out
BAD_REPLY = const(4)  # reply with a bad CRC, wrong address, or an exception code
STUCK = const(5)  # rain gauge switch closed for longer than stuck_ms

_TICKS_MASK = const(0x3FFFFFFF)  # time.ticks_ms() wraps at 2^30
_TICKS_HALF = const(0x20000000)
_UA_MIN = const(3600)  # NAMUR NE 43: below 3.6 mA is a failed loop
_UA_MAX = const(20500)
_READS = const(4)  # ADC reads averaged per value: the ESP32 ADC is noisy


class SensorError(Exception):
    # .code: one of the codes above
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def ticks_diff(a, b):
    # a - b for ticks that wrap at 2^30, as time.ticks_diff (also on CPython).
    # Every intermediate stays within +-2^30 (small ints on a 32-bit board:
    # a - b + 2^29 did not, after 6.2 days, and allocated in the rain IRQ)
    d = (a - b) & _TICKS_MASK
    if d >= _TICKS_HALF:
        d = d - _TICKS_MASK - 1
    return d


def ticks_add(a, d):
    # a + d wrapped at 2^30, as time.ticks_add on a 32-bit board. The unix
    # port's time.ticks_* wrap at 2^62, the sim board's ticks_ms at 2^30 like
    # the ESP32's: with time's own, timers stopped firing at the wrap (12.4 days)
    return (a + d) & _TICKS_MASK


def muldiv(a, b, c):
    # round(a * b / c), c > 0, without an intermediate beyond min(|a|, |b|) * c,
    # so nothing is allocated on a 32-bit board (ints beyond 2^30 are
    # objects): split the bigger operand x = q*c + r, x*y/c = q*y + r*y/c
    if (a if a >= 0 else -a) < (b if b >= 0 else -b):
        a, b = b, a
    return (a // c) * b + ((a % c) * b + c // 2) // c


# ---- tipping-bucket rain gauge ---------------------------------------------


class RainGauge:
    # The IRQ handler (on_edge) only counts and stamps. The counter is never
    # reset by anyone but the IRQ, so a tip arriving while take() runs is not
    # lost: take() works on the difference to what it took last time.

    def __init__(self, debounce_ms, stuck_ms):
        self.debounce_ms = debounce_ms
        self.stuck_ms = stuck_ms
        self.count = 0  # accepted tips since boot, mod 2^30 (the tips counter)
        self.bounces = 0  # edges rejected as bounce (diagnostics)
        self._last = 0  # ticks of the last accepted edge
        self._any = False  # an edge has been accepted since boot
        self._taken = 0
        self._stuck = False  # switch stuck closed now: edges are not counted
        self._fault = False  # stuck at some time since the last take()
        self._closed = False  # poll() saw the switch closed last time
        self._closed_at = 0  # ticks when poll() first saw it closed
        self._closed_count = 0  # count when poll() first saw it closed

    def configure(self, debounce_ms, stuck_ms):
        self.debounce_ms = debounce_ms
        self.stuck_ms = stuck_ms

    def on_edge(self, ticks_ms):
        # IRQ: a closing edge. No allocation (gc.mem_alloc() unchanged over
        # 14 000 calls, tests/vm/vm_sensors.py), only ticks arithmetic.
        if self._stuck:
            return
        d = ticks_diff(ticks_ms, self._last)
        # d < 0: the last tip was more than 2^29 ms (6.2 days) ago, a dry
        # spell, not a bounce (counted as bounce, every tip after the spell
        # was dropped for up to 6.2 more days: found by the fleet simulation)
        if self._any and 0 <= d < self.debounce_ms:
            self.bounces += 1
            return
        self._any = True
        self._last = ticks_ms
        self.count = (self.count + 1) & _TICKS_MASK

    def poll(self, ticks_ms, pin_closed):
        # From a task, every second or so: a switch closed for longer than
        # stuck_ms is stuck (a bucket jammed at the magnet, a welded reed).
        # Edges seen while it was closed all that time are chatter, not tips:
        # they are taken back, and nothing counts until it opens again.
        if not pin_closed:
            self._closed = False
            self._stuck = False
            return
        if not self._closed:
            self._closed = True
            self._closed_at = ticks_ms
            self._closed_count = self.count
            return
        if not self._stuck and ticks_diff(ticks_ms, self._closed_at) >= self.stuck_ms:
            self._stuck = True
            self._fault = True
            back = self._closed_count
            if ticks_diff(self._taken, back) > 0:
                back = self._taken  # take() already reported those (with no fault then)
            self.count = back

    def take(self):
        # -> (tips since the last take, fault): fault is True if the switch
        # was stuck at any time since the last take (the tips are then not
        # to be trusted: record the interval as fault). Also the interval in
        # which it comes free: it began stuck, and the release is seen only
        # at the next poll.
        c = self.count
        n = (c - self._taken) & _TICKS_MASK
        self._taken = c
        fault = self._fault or self._stuck
        self._fault = self._stuck  # still jammed: the next interval starts jammed
        return n, fault

    @property
    def stuck(self):
        return self._stuck


# ---- 4-20 mA level sensor on an ADC ------------------------------------------


class Level420:
    # adc: any object with read_uv() -> microvolts across the shunt (the
    # board wraps machine.ADC, the simulator gives its own). µV / Ω = µA.
    # A reading at or above adc_max_uv is the ADC at full scale, not a
    # current: OVER_RANGE (the ESP32 at 11 dB is specified to ~2450 mV)

    def __init__(self, adc, cfg):
        self.adc = adc
        self.ua = 0  # last loop current, µA (for the technician's console)
        self.configure(cfg)

    def configure(self, cfg):
        self.shunt = cfg["shunt_ohm"]
        self.lo = cfg["level_4ma_mm"]
        self.span = cfg["level_20ma_mm"] - cfg["level_4ma_mm"]
        self.datum = cfg["datum_mm"]
        self.gain = cfg["cal_gain"]
        self.offset = cfg["cal_offset_mm"]
        self.adc_max = cfg["adc_max_uv"]

    def read_ua(self):
        # loop current in µA, averaged over a few reads; SensorError on failure
        s = 0
        try:
            for _ in range(_READS):
                s += self.adc.read_uv()
        except OSError:
            raise SensorError(NO_ANSWER)
        uv = s // _READS
        ua = uv // self.shunt
        self.ua = ua
        if uv >= self.adc_max:
            raise SensorError(OVER_RANGE)  # clipped: the current is unknown
        if ua < _UA_MIN:
            raise SensorError(OPEN_LOOP)
        if ua > _UA_MAX:
            raise SensorError(OVER_RANGE)
        return ua

    def read_mm(self):
        # level = datum + offset + gain * (reading at 4 mA + span * (I - 4 mA) / 16 mA)
        d = self.lo + muldiv(self.read_ua() - 4000, self.span, 16000)
        return self.datum + self.offset + muldiv(d, self.gain, 10000)


def make_level(cfg, adc=None, uart=None):
    # the configured level driver, or None ("none", or its bus is missing).
    # The radar driver is its own module, imported only for a radar station:
    # 2.6 KB of heap on the 64-bit VM that a 4-20 mA station never uses
    kind = cfg["level_sensor"]
    if kind == "4-20" and adc is not None:
        return Level420(adc, cfg)
    if kind == "radar" and uart is not None:
        from radar import ModbusRadar

        return ModbusRadar(uart, cfg)
    return None
