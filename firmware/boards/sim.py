# Simulation board for the MicroPython unix port (sim/vboard.py drives it).
# The host owns time: the board's clock is virtual and advances only when
# the firmware is idle. Lockstep over one TCP connection: the board says
# "idle for up to dt ms" and the host answers with the time reached, the
# sensor inputs at that time and any rain-gauge edges and link bytes that
# arrived (the host stops the clock at the first such event). Link bytes the
# firmware writes go to the host stamped with the current virtual time.
# The watchdog is the host's, as a WDT is outside the CPU: started and fed
# here, it kills and restarts this VM when not fed in time (and a level
# ADC the host hangs blocks the firmware until it does).
# Same interface as boards/esp32.py; nothing here imports machine.
from micropython import const
import asyncio
import os
import socket
import struct
import sys

_MASK = const(0x3FFFFFFF)
# message kinds, as consts (a global name is one more qstr, and the pool is
# full: a new one is 7 KB, see console.py)
_HELLO = const(72)  # H
_IDLE = const(73)  # I
_WRITE = const(87)  # W
_TRACE = const(82)  # R
_CLOCK = const(67)  # C
_RESET = const(88)  # X
_DOG = const(68)  # D
_HUNG = const(66)  # B
_CON = const(75)  # K: console output
# header "<QiHhBBH": vms, level_uv, batt_mv, temp, pin (bit 1: ADC hung), edges, nrx
_T_LEN = const(20)
# boot "<iBI": rtc offset s, reset cause, seed
_B_LEN = const(9)

NAME = "sim"


class Flag(asyncio.Event):
    # what ThreadSafeFlag is on a board (wait() consumes the flag), without
    # the IO-queue polling that the unix port does for it in 1 ms steps:
    # nothing here is set from a real interrupt
    async def wait(self):
        await asyncio.Event.wait(self)
        self.clear()


class _Pin:
    # the rain gauge reed switch; value() 0 = closed (pulled up, switch to GND)
    def __init__(self):
        self.handler = None
        self.closed = 0

    def irq(self, handler=None, trigger=0):
        self.handler = handler

    def value(self):
        return 0 if self.closed else 1


class Link:
    # the data link (UART on a board): OSError-only transport
    def __init__(self, board, size):
        self._b = board
        self._rx = bytearray(size)
        self._n = 0
        self.flag = Flag()

    def write(self, data):
        self._b._send(_WRITE, data)
        return len(data)

    def _room(self, n):
        # where n arriving bytes go; past a full buffer they are lost (an
        # overrun, as a UART FIFO would, not counted: a name is a qstr) but
        # still read off the channel
        room = len(self._rx) - self._n
        if n > room:
            self._n = 0  # drop what is buffered: the deframer resyncs
        mv = memoryview(self._rx)[self._n:self._n + n]
        self._n += n
        self.flag.set()
        return mv

    def readinto(self, buf):
        n = self._n
        if not n:
            return None
        if n > len(buf):
            n = len(buf)
        buf[:n] = self._rx[:n]
        self._rx[:self._n - n] = self._rx[n:self._n]
        self._n -= n
        return n


class Board:
    def __init__(self):
        port = int(os.getenv("HL_PORT") or "0")
        s = socket.socket()
        s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        try:
            s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY: lockstep is latency-bound
        except OSError:
            pass
        self._s = s
        self._hdr = bytearray(_T_LEN)
        self._rbuf = bytearray(400)  # rain-gauge edge times, 2 bytes each
        self._out = bytearray(3)
        self.rain_pin = _Pin()
        self.adc = self  # the level ADC: read_uv() below (no class of its own: heap)
        self.uv = 0  # the 4-20 mA shunt voltage, in µV
        self.hung = 0
        # the link's receive buffer stands in for the UART driver's RX ring,
        # which on a board is outside the Python heap: 256 B here (the host
        # sends at most that much per step, sim/vboard.py MAX_RX), not 1 KB
        self.link = Link(self, 256)
        self._vms = 0
        self._wdt = 0  # the watchdog timeout, ms (0: not started; < 0: fed, host not told)
        self.batt = 0
        self.temp = 0
        # the console UART (a pty on the host, sim/console_pty.py): console
        # bytes waiting in buf (made at the first byte: heap), read() and
        # write() for firmware/console.py. Names the firmware has already (qstrs)
        self.console = 0
        self.buf = None
        self._send(_HELLO, b"")
        b = bytearray(_B_LEN)
        self._recv(b)
        self._rtc_off, self.cause, self._seed = struct.unpack("<iBI", b)
        if not self._seed:
            self._seed = 1
        self._reply()

    # ---- lockstep channel
    def _recv(self, buf):
        mv = memoryview(buf)
        got = 0
        while got < len(buf):
            n = self._s.readinto(mv[got:])
            if not n:
                sys.exit(3)  # host gone: the simulation is over
            got += n

    def _send(self, kind, data):
        # TCP_NODELAY is set: two writes cost no Nagle delay
        o = self._out
        o[0] = kind
        struct.pack_into("<H", o, 1, len(data))
        self._s.write(o)
        if data:
            self._s.write(data)

    def _reply(self):
        self._recv(self._hdr)
        vms, uv, batt, temp, pin, edges, nrx = struct.unpack("<QiHhBBH", self._hdr)
        if edges:
            # edge times (ms before vms), oldest first: each IRQ sees its own time
            eb = memoryview(self._rbuf)[:2 * edges]  # (no attribute for it: one qstr less)
            self._recv(eb)
            h = self.rain_pin.handler
            for i in range(edges):
                self._vms = vms - struct.unpack_from("<H", eb, 2 * i)[0]
                if h:
                    h(self.rain_pin)
        self._vms = vms
        self.uv = uv
        self.batt = batt
        self.temp = temp
        self.rain_pin.closed = pin & 1
        self.hung = pin & 2
        if nrx:
            self._recv(self.link._room(nrx))
        if pin & 4:
            mv = memoryview(self._out)
            self._recv(mv[:2])
            n = struct.unpack_from("<H", self._out)[0]
            if self.buf is None:
                self.buf = bytearray(128)  # the host sends at most 128 per step
            c = self.buf
            k = self.console
            self._recv(memoryview(c)[k:k + n] if k + n <= len(c) else bytearray(n))  # full: lost
            if k + n <= len(c):
                self.console = k + n

    # ---- console UART
    def read(self):
        # -> the console bytes waiting (bytes, maybe empty)
        n = self.console
        self.console = 0
        return bytes(self.buf[:n]) if n and self.buf else b""

    def write(self, data):
        self._send(_CON, data)

    # ---- clocks
    def flag(self):
        return Flag()

    def ticks_ms(self):
        return self._vms & _MASK

    def time(self):
        # RTC, hydrolink seconds
        return (self._vms // 1000) + self._rtc_off

    def subsec_ms(self):
        return self._vms % 1000

    def set_time(self, t):
        self._rtc_off = t - self._vms // 1000
        self._send(_CLOCK, struct.pack("<i", self._rtc_off))

    def idle(self, dt):
        # sleep up to dt ms; returns early on an edge or link bytes. A feed
        # since the last message rides along (the host restarts the countdown
        # first): 1,440 messages a day fewer, at the same virtual time
        # One write(2), header and all: the host wakes once per step
        w = self._wdt
        if w < 0:
            self._wdt = -w
            self._s.write(struct.pack("<BHII", _IDLE, 8, dt, -w))
        else:
            self._s.write(struct.pack("<BHI", _IDLE, 4, dt))
        self._reply()

    # ---- watchdog, reset, power
    def wdt_start(self, ms):
        self._wdt = ms
        self.wdt_feed()

    def wdt_feed(self):
        # the host restarts its countdown of the timeout (sim/vboard.py) when
        # the next idle tells it, or a hang: virtual time stands still until
        # then. Pending: _wdt < 0 (no name more: the qstr pool is full)
        if self._wdt > 0:
            self._wdt = -self._wdt

    def reset_cause(self):
        # SPEC §8 codes: 0 power_on, 1 hard, 2 watchdog, 3 deepsleep, 4 soft, 5 brownout
        return self.cause

    def reset(self, cause=4):
        self._send(_RESET, bytes((cause,)))
        self._s.close()
        sys.exit(0)

    # ---- sensors and housekeeping
    def read_uv(self):
        if self.hung:
            # a driver that never returns: only the host's watchdog ends this
            w = self._wdt
            if w < 0:  # a feed before the hang: the host learns it first
                self._wdt = -w
                self._send(_DOG, struct.pack("<I", -w))
            self._send(_HUNG, b"")
            self._recv(self._out)
        return self.uv

    def battery_mv(self):
        return self.batt

    def temperature(self):
        return self.temp  # 0.1 degC

    def rand(self, n):
        # deterministic: xorshift32 seeded by the host per boot
        x = self._seed
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._seed = x
        return x % n if n > 0 else 0

    def free_flash(self):
        s = os.statvfs(".")
        return s[0] * s[3]

    def trace(self, el, t, v, q):
        # every reading committed to the queue, for the test's record
        self._s.write(struct.pack("<BHBIiB", _TRACE, 10, el, t, 0 if v is None else v, q))

