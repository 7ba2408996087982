# ESP32 board (reference): the same interface as boards/sim.py over machine.
# Rain gauge reed switch on a pin IRQ (pull-up, closes to GND), the 4-20 mA
# shunt on an ADC (read_uv), the data link on UART2, battery on an ADC
# divider, RTC for hydrolink time, WDT, lightsleep when no task is due.
# Pins are this module's constants: one place to change for another PCB.
from micropython import const
import asyncio
import gc
import os
import time
import machine

_RAIN_PIN = const(27)
_LEVEL_ADC = const(34)
_BATT_ADC = const(35)
_BATT_DIV = const(11)  # 100k/10k divider
_UART_ID = const(2)
_TX = const(17)
_RX = const(16)
_EPOCH_2000 = const(757382400)  # hydrolink epoch (2024) - MicroPython epoch (2000), s

NAME = "esp32"


class _Adc:
    def __init__(self, pin):
        self.adc = machine.ADC(machine.Pin(pin), atten=machine.ADC.ATTN_11DB)

    def read_uv(self):
        return self.adc.read_uv()


class Link:
    # UART as an OSError-only transport; the RX-idle IRQ sets the flag
    def __init__(self):
        self.uart = machine.UART(_UART_ID, 9600, tx=_TX, rx=_RX, rxbuf=2048, timeout=0)
        self.flag = asyncio.ThreadSafeFlag()
        try:
            self.uart.irq(self._irq, machine.UART.IRQ_RXIDLE)
        except (AttributeError, ValueError):
            pass  # older firmware: the uplink polls any() on each wake

    def _irq(self, u):
        self.flag.set()

    def write(self, data):
        return self.uart.write(data)

    def any(self):
        return self.uart.any()

    def readinto(self, buf):
        return self.uart.readinto(buf)


class Board:
    def __init__(self):
        self.rain_pin = machine.Pin(_RAIN_PIN, machine.Pin.IN, machine.Pin.PULL_UP)
        self.adc = _Adc(_LEVEL_ADC)
        self._batt = _Adc(_BATT_ADC)
        self.link = Link()
        self._rtc = machine.RTC()
        self._wdt = None
        self.cause = self._cause()

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

    def idle(self, dt):
        # lightsleep keeps RAM and the RTC; the rain pin wakes it (tips are
        # never missed) and a UART frame in flight keeps it awake
        if self.link.any():
            return
        if dt > 20:
            machine.lightsleep(dt)
        elif dt > 0:
            time.sleep_ms(dt)

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
        return 0  # PWRON_RESET (a brownout reads as power-on on the ESP32 port)

    def reset_cause(self):
        return self.cause

    def reset(self, cause=4):
        machine.reset()

    def battery_mv(self):
        return self._batt.read_uv() * _BATT_DIV // 1000

    def temperature(self):
        try:
            import esp32
            return (esp32.raw_temperature() - 32) * 50 // 9  # degF -> 0.1 degC
        except (ImportError, AttributeError):
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
