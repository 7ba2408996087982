# ESP32 board (reference): the same interface as boards/sim.py over machine.
# Rain gauge reed switch on a pin IRQ (pull-up, closes to GND), the 4-20 mA
# shunt on an ADC (read_uv), the data link on UART2, battery on an ADC
# divider, RTC for hydrolink time, WDT, lightsleep when no task is due.
# Pins are this module's constants: one place to change for another PCB.
#
# Light sleep gates the GPIO and UART clocks: an edge IRQ does not fire and
# UART RX bytes are lost while the chip sleeps. So (idle() below):
# - the rain pin is also an EXT0 wake source (RTC IO): armed on low while the
#   switch is open, a closure wakes the chip and the wake counts as an edge;
#   armed on high while it is closed, so the release wakes it to re-arm (a
#   switch stuck closed arms nothing that fires: no wake storm, no counting);
# - after a frame is written the board stays out of light sleep for
#   _ACK_MS (or until the time given to awake()), so the ACK is received.
from micropython import const
import asyncio
import gc
import os
import select
import sys
import time
import machine

try:
    import esp32
except ImportError:
    esp32 = None  # type: ignore[assignment]

_RAIN_PIN = const(27)  # an RTC GPIO: EXT0 wake needs one (0, 2, 4, 12-15, 25-27, 32-39)
_LEVEL_ADC = const(34)
_BATT_ADC = const(35)
_BATT_DIV = const(11)  # 100k/10k divider
_UART_ID = const(2)
_TX = const(17)
_RX = const(16)
_EPOCH_2000 = const(757382400)  # hydrolink epoch (2024) - MicroPython epoch (2000), s
_ACK_MS = const(30000)  # awake after a write: the default ack_timeout_s
_SLICE_MS = const(20)  # awake idle polls the link and the rain pin this often
_CON_MS = const(300000)  # awake after a console byte: the console session's idle timeout
_BROWN_MV = const(11500)  # the default batt_shed_mv (the board is built before the config is read)

NAME = "esp32"


class _Adc:
    def __init__(self, pin):
        self.adc = machine.ADC(machine.Pin(pin), atten=machine.ADC.ATTN_11DB)

    def read_uv(self):
        return self.adc.read_uv()


class _RainPin:
    # machine.Pin plus the handler the station registers, so that a wake by
    # the pin (EXT0) can be counted as the edge the clock-gated GPIO missed
    def __init__(self):
        self.pin = machine.Pin(_RAIN_PIN, machine.Pin.IN, machine.Pin.PULL_UP)
        self.handler = None

    def irq(self, handler=None, trigger=0):
        self.handler = handler
        return self.pin.irq(handler=handler, trigger=trigger)

    def value(self):
        return self.pin.value()


class Link:
    # UART as an OSError-only transport; the RX-idle IRQ sets the flag. On
    # firmware without IRQ_RXIDLE the board's idle() polls any() before and
    # after every sleep and sets the flag itself (poll() below).
    def __init__(self):
        self.uart = machine.UART(_UART_ID, 9600, tx=_TX, rx=_RX, rxbuf=2048, timeout=0)
        self.flag = asyncio.ThreadSafeFlag()
        self.polled = False
        self.until = None  # ticks: no light sleep before this (an ACK is due)
        try:
            self.uart.irq(self._irq, machine.UART.IRQ_RXIDLE)
        except (AttributeError, ValueError):
            self.polled = True

    def _irq(self, u):
        self.flag.set()

    def poll(self):
        # -> bytes waiting; sets the flag when no IRQ does
        n = self.uart.any()
        if n and self.polled:
            self.flag.set()
        return n

    def write(self, data):
        self.until = time.ticks_add(time.ticks_ms(), _ACK_MS)
        return self.uart.write(data)

    def any(self):
        return self.uart.any()

    def readinto(self, buf):
        return self.uart.readinto(buf)


class Board:
    def __init__(self):
        self.rain_pin = _RainPin()
        self.adc = _Adc(_LEVEL_ADC)
        self._batt = _Adc(_BATT_ADC)
        self.link = Link()
        self._rtc = machine.RTC()
        self._wdt = None
        self._armed = -1  # EXT0 level armed: 0 low (open switch), 1 high (closed), -1 none
        self.cause = self._cause()
        # the technician console (console.py) on the USB REPL UART, polled.
        # A byte that comes while the chip is in light sleep is lost: the
        # technician presses Enter again (the chip wakes at least every
        # sample_interval); from the first byte on it stays awake _CON_MS.
        # Ctrl-C still stops the firmware (the REPL, for mpremote)
        self.console = 0  # console bytes waiting (0 or 1: polled); read(), write()
        self._cp = select.poll()
        self._cp.register(sys.stdin, select.POLLIN)
        self._con_until = None

    def flag(self):
        return asyncio.ThreadSafeFlag()

    def ticks_ms(self):
        return time.ticks_ms()

    def time(self):
        return time.time() - _EPOCH_2000

    def subsec_ms(self):
        return self._rtc.datetime()[7] // 1000

    def set_time(self, t):
        tm = time.gmtime(t + _EPOCH_2000)
        self._rtc.datetime((tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0))

    def awake(self, until_ms):
        # no light sleep before ticks until_ms: the uplink calls this while it
        # waits for an ACK (the UART does not receive in light sleep)
        self.link.until = until_ms

    def _arm(self):
        # EXT0 on the level that means "changed": low while open, high while closed
        if esp32 is None:
            return
        want = 0 if self.rain_pin.value() else 1
        if want != self._armed:
            esp32.wake_on_ext0(self.rain_pin.pin, esp32.WAKEUP_ANY_HIGH if want else esp32.WAKEUP_ALL_LOW)
            self._armed = want

    def _con_poll(self):
        if self._cp.poll(0):
            self.console = 1
            self._con_until = time.ticks_add(time.ticks_ms(), _CON_MS)
        return self.console

    def read(self):
        # the console bytes waiting
        out = bytearray()
        while len(out) < 128 and self._cp.poll(0):
            out += sys.stdin.buffer.read(1)
        self.console = 0
        return bytes(out)

    def write(self, data):
        sys.stdout.write(data)

    def idle(self, dt):
        # sleep up to dt ms; returns early on a rain closure, link or console bytes
        link = self.link
        if link.poll() or self._con_poll():
            return
        if link.until is not None and time.ticks_diff(link.until, time.ticks_ms()) <= 0:
            link.until = None  # passed: cleared, as ticks_diff of an old one wraps after 6 days
        cu = self._con_until
        if cu is not None and time.ticks_diff(cu, time.ticks_ms()) <= 0:
            self._con_until = cu = None
        if dt > 20 and link.until is None and cu is None:
            self._arm()
            armed = self._armed
            machine.lightsleep(dt)
            if armed == 0 and machine.wake_reason() == machine.EXT0_WAKE:
                h = self.rain_pin.handler
                if h:
                    h(self.rain_pin)  # the closure the gated GPIO did not see
        else:
            # awake (ACK due, or a short wait): the UART and the edge IRQ
            # work; return as soon as bytes come in or the rain pin changes
            pin = self.rain_pin.pin
            lvl = pin.value()
            while dt > 0 and not link.poll() and not self._con_poll() and pin.value() == lvl:
                s = dt if dt < _SLICE_MS else _SLICE_MS
                time.sleep_ms(s)
                dt -= s
        link.poll()

    def wdt_start(self, ms):
        self._wdt = machine.WDT(timeout=ms)

    def wdt_feed(self):
        if self._wdt:
            self._wdt.feed()

    def _cause(self):
        c = machine.reset_cause()
        if c == machine.WDT_RESET:
            return 2
        if c == machine.DEEPSLEEP_RESET:
            return 3
        if c == machine.SOFT_RESET:
            return 4
        if c == machine.HARD_RESET:
            return 1
        # PWRON_RESET: the ESP32 port reports a brownout as power-on. A
        # power-on with the battery below the shed threshold is taken as a
        # brownout (power.py then starts in SHED and backs off); a real
        # power-on with a flat battery is treated the same, which is right
        if self.battery_mv() < _BROWN_MV:
            return 5
        return 0

    def reset_cause(self):
        return self.cause

    def reset(self, cause=4):
        machine.reset()

    def battery_mv(self):
        return self._batt.read_uv() * _BATT_DIV // 1000

    def temperature(self):
        try:
            return (esp32.raw_temperature() - 32) * 50 // 9  # degF -> 0.1 degC
        except AttributeError:  # no esp32 module (None), or no sensor on this chip
            return 0

    def rand(self, n):
        b = os.urandom(4)
        x = (b[0] << 16) | (b[1] << 8) | b[2]
        return x % n if n > 0 else 0

    def free_flash(self):
        s = os.statvfs("/")
        return s[0] * s[3]

    def log(self, msg):
        print(msg)

    def mem(self):
        gc.collect()
        return gc.mem_alloc(), gc.mem_free()
