"""A virtual board's console UART on a pty, in lockstep with its virtual clock.

On an ESP32 the technician console (``firmware/console.py``) is on the USB REPL port; on a
:class:`~sim.vboard.VBoard` it is a pseudo-terminal on the host, so ``pexpect``,
``python -m serial.tools.miniterm`` and ``hydrolink console`` open :attr:`ConsolePty.path`
as they would ``/dev/ttyUSB0``. The board's side is the lockstep channel
(``firmware/boards/sim.py``): console output comes as ``K`` messages, typed bytes go back in
the idle replies.

Time: the simulator runs virtual time as fast as it can, which a person (or pexpect) typing
in wall time could never follow. So while a console is in use - from a byte typed until
:attr:`hold_ms` of virtual time without one, and while output still waits for the line -
virtual time is paced at :attr:`ratio` times wall time; a typed byte stops the board's idle at
the virtual time it arrived. Output can be throttled to a UART's rate (``baud``), so a pull
over the pty takes as long as it would over a real cable.
"""

from __future__ import annotations

import contextlib
import os
import select
import termios
import time
import tty
from collections import deque

MAX_IN = 128  # typed bytes per lockstep reply (the board's console buffer, boards/sim.py)


class TypedIn:
    """Typed bytes waiting for the board (``_read`` adds what came to ``_in``): the half of
    :class:`~sim.vboard.VBoard`'s console protocol that every console shares."""

    _in: bytearray

    def _read(self) -> None:
        raise NotImplementedError

    def take(self, n: int = MAX_IN) -> bytes:
        """Typed bytes for the next lockstep reply (at most ``n``)."""
        self._read()
        b = bytes(self._in[:n])
        del self._in[:n]
        return b

    def pending(self) -> bool:
        """Whether typed bytes wait for the board."""
        self._read()
        return bool(self._in)


class ConsolePty(TypedIn):
    """The host end of a virtual board's console.

    Args:
        ratio: virtual ms per wall ms while the console is in use (1.0: real time).
        hold_ms: virtual ms after the last typed byte that pacing lasts (the firmware's
            session idle timeout is 300 s).
        baud: if set, output is written to the pty at most baud / 10 bytes per wall second.
        paced: pace from the start, as if a byte had been typed at virtual ms 0 (a test
            that opens the pty after the board booted).
    """

    def __init__(self, ratio: float = 1.0, hold_ms: int = 300_000, baud: int | None = None,
                 paced: bool = False) -> None:
        self.ratio = ratio
        self.hold_ms = hold_ms
        self.baud = baud
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # bytes as typed, no line discipline on the board's side
        attrs = termios.tcgetattr(self._slave)
        attrs[4] = attrs[5] = termios.B115200
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._in = bytearray()
        self._out: deque[bytes] = deque()
        self._out_at = 0.0  # wall time the throttled output may go on
        self._last_in: int | None = 0 if paced else None  # virtual ms of the last typed byte
        self.output = bytearray()  # everything the board wrote (for tests and logs)

    def close(self) -> None:
        """Close both ends of the pty."""
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    # ---- the board's side --------------------------------------------------
    def write(self, data: bytes) -> None:
        """Console output from the firmware."""
        self.output += data
        self._out.append(bytes(data))
        self._flush()

    def pace(self, vms: int, target: int) -> int:
        """The virtual ms the board's idle from ``vms`` to ``target`` ends at.

        Unpaced: ``target`` at once, or ``vms`` if bytes are waiting. Paced (a console in
        use): waits the wall time ``(target - vms) / ratio``, and ends early, at the virtual
        time reached, when a byte is typed.
        """
        if self.pending():
            self._note(vms)
            return vms
        self._flush()
        if not self._out and (self._last_in is None or vms - self._last_in > self.hold_ms):
            return target  # not in use, nothing left to write: full speed
        start = time.monotonic()
        end = start + (target - vms) / self.ratio / 1000
        while True:
            now = time.monotonic()
            wait = end - now
            if self._out:
                wait = min(wait, max(self._out_at - now, 0.0))
            r, _, _ = select.select([self._master], [], [], max(wait, 0.0))
            self._flush()
            if r and self.pending():
                reached = vms + int((time.monotonic() - start) * 1000 * self.ratio)
                reached = min(max(reached, vms), target)
                self._note(reached)
                return reached
            if time.monotonic() >= end:
                return target

    def attach(self, vms: int) -> None:
        """Pace from virtual ``vms`` on, as if a byte had been typed then (a test about to type)."""
        self._last_in = vms

    def drain(self, timeout: float = 30.0) -> None:
        """Write out throttled output still buffered (at the end of a run)."""
        end = time.monotonic() + timeout
        while self._out and time.monotonic() < end:
            time.sleep(max(self._out_at - time.monotonic(), 0.001))
            self._flush()

    # ---- internals -----------------------------------------------------------
    def _note(self, vms: int) -> None:
        self._last_in = vms

    def _read(self) -> None:
        while True:
            try:
                b = os.read(self._master, 4096)
            except (BlockingIOError, OSError):
                return
            if not b:
                return
            self._in += b

    def _flush(self) -> None:
        while self._out:
            chunk = self._out[0]
            if self.baud:
                now = time.monotonic()
                if now < self._out_at:
                    return
                chunk = chunk[:max(self.baud // 100, 1)]  # 10 ms of line time at a go
            try:
                n = os.write(self._master, chunk)
            except BlockingIOError:
                return
            except OSError:
                self._out.clear()  # nobody can read it: the far end is gone
                return
            if n < len(self._out[0]):
                self._out[0] = self._out[0][n:]
            else:
                self._out.popleft()
            if self.baud:
                self._out_at = max(self._out_at, time.monotonic()) + n * 10 / self.baud
