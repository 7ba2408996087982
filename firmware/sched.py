# hydrolink timers over asyncio, and the idle task that sleeps the board.
# Tasks never call asyncio.sleep: each owns a Timer and awaits it. When no
# task is runnable, the idle task asks the board to sleep until the earliest
# timer (ESP32: lightsleep; sim board: the virtual clock, in lockstep with
# the host) and then fires every timer that is due. So one scheduler serves
# both the real board and a simulation that runs 30 days in seconds, with
# asyncio itself only ever seeing zero-length sleeps.
from micropython import const
import asyncio
from asyncio import core
from sensors import ticks_diff, ticks_add  # the board's 2^30 wrap, on every port

_MAX_IDLE = const(3600000)  # ms: wake at least hourly even with no timer


class Timer:
    def __init__(self, sched):
        self._s = sched
        self.ev = asyncio.Event()
        self.due = 0
        self.armed = False

    def sleep_ms(self, ms):
        # awaitable: fires after ms (or when cancel()ed)
        self.ev.clear()
        self.due = ticks_add(self._s.board.ticks_ms(), ms if ms > 0 else 0)
        self.armed = True
        return self.ev.wait()

    def cancel(self):
        # wake the waiter early (e.g. new data for the uplink)
        self.armed = False
        self.ev.set()


class Sched:
    def __init__(self, board):
        self.board = board
        self.timers = []  # fixed after start: one Timer per task (and the console's)
        self.wakes = 0
        self.app = None  # the Station (station.py sets it)
        self.console = None  # the technician console session's Timer while one is open

    def timer(self):
        t = Timer(self)
        self.timers.append(t)
        return t

    def _fire(self, now):
        nxt = _MAX_IDLE
        for t in self.timers:
            if t.armed:
                d = ticks_diff(t.due, now)
                if d <= 0:
                    t.armed = False
                    t.ev.set()
                elif d < nxt:
                    nxt = d
        return nxt

    async def idle(self):
        b = self.board
        tq = core._task_queue
        while True:
            await asyncio.sleep_ms(0)
            if tq.peek() is not None:
                continue  # someone can run: let them
            dt = self._fire(b.ticks_ms())
            if tq.peek() is not None:
                continue
            # nothing runnable, nothing due: sleep (may end early on an
            # interrupt or incoming bytes), then fire what became due
            self.wakes += 1
            b.idle(dt)
            if b.console:
                # bytes on the console UART: wake the open session, or open
                # one (console.py: imported now, dropped when it ends)
                if self.console:
                    self.console.cancel()
                else:
                    try:
                        __import__("console").start(self)
                    except MemoryError:
                        b.read()
                        b.write(b"console: no memory now, try again later\r\n")
            self._fire(b.ticks_ms())
