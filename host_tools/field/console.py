"""``hydrolink console PORT``: the station's technician console from a laptop.

The board does its own line editing and echo (``firmware/console.py``), so any terminal
works; this tool adds what a laptop does better: line editing and history (``readline``),
the PIN typed hidden when a write command asks for it, and a scripted mode for checklists::

    hydrolink console /dev/ttyUSB0                       # interactive
    hydrolink console /dev/ttyUSB0 -c status -c read     # print the answers, exit 1 on an error

PORT is a pyserial URL (a device path, ``socket://``, ``rfc2217://``). :class:`Session` is the
programmatic side, used by ``hydrolink pull`` too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import sys
import time
from collections.abc import Callable
from pathlib import Path

import serial

PROMPT = b"\r\nhydrolink> "
ASK = b"\r\nPIN (digits): "
BAUD = 115200
HISTORY = Path.home() / ".hydrolink_console_history"


class ConsoleError(Exception):
    """The port could not be opened, or the board did not answer."""


class Session:
    """One console session on a station's console port.

    Args:
        url: pyserial URL of the port.
        baud: line rate (the board's console UART: 115200).
        timeout: seconds to wait for the board's prompt after a command.
    """

    def __init__(self, url: str, baud: int = BAUD, timeout: float = 20.0) -> None:
        try:
            self.port = serial.serial_for_url(url, baudrate=baud, timeout=0.05)
        except (serial.SerialException, ValueError, OSError) as e:
            raise ConsoleError(f"cannot open {url}: {e}") from None
        self.timeout = timeout
        self._buf = bytearray()

    def close(self) -> None:
        """End the session on the board (it unloads its console code) and close the port."""
        try:
            self.port.write(b"exit\r")
            self.port.flush()
        except (serial.SerialException, OSError):
            pass
        self.port.close()

    def open(self) -> None:
        """Wake the board's console and wait for its prompt."""
        end = time.monotonic() + self.timeout
        while True:
            self.port.write(b"\r")  # the first key may be lost to a sleeping board (ESP32)
            try:
                self.read_until((PROMPT,), min(2.0, max(end - time.monotonic(), 0.1)))
                time.sleep(0.3)  # a prompt for every Enter sent: the last one counts
                self.port.read(self.port.in_waiting or 1)
                self._buf.clear()
                return
            except ConsoleError:
                if time.monotonic() >= end:
                    raise ConsoleError("no console prompt from the board (is it powered, is this "
                                       "its console port?)") from None

    def read_until(self, marks: tuple[bytes, ...], timeout: float | None = None,
                   on_line: Callable[[str], None] | None = None) -> tuple[str, bytes]:
        """Bytes up to the first of ``marks`` -> (the text before it, the mark)."""
        end = time.monotonic() + (self.timeout if timeout is None else timeout)
        done = 0
        while True:
            for m in marks:
                i = self._buf.find(m)
                if i >= 0:
                    text = self._buf[:i].decode("ascii", "replace")
                    del self._buf[:i + len(m)]
                    return text, m
            if on_line is not None:
                j = self._buf.rfind(b"\n")
                while j > done:
                    k = self._buf.find(b"\n", done)
                    on_line(self._buf[done:k].decode("ascii", "replace").rstrip("\r"))
                    done = k + 1
            if time.monotonic() > end:
                raise ConsoleError(f"the board did not answer within {self.timeout:.0f} s")
            chunk = self.port.read(4096)
            if chunk:
                self._buf += chunk
                end = max(end, time.monotonic() + 5.0)  # still talking: a long answer

    def command(self, line: str, pin: str | None = None,
                on_line: Callable[[str], None] | None = None) -> list[str]:
        """Run one command -> its answer's lines (the echo stripped).

        ``pin``: the technician PIN, sent if the board asks for it (a write command).
        """
        self.port.write(line.encode("ascii", "replace") + b"\r")
        text, mark = self.read_until((PROMPT, ASK), on_line=on_line)
        if mark == ASK:
            if pin is None:
                self.port.write(b"\x03")  # Ctrl-C: no PIN, the command is dropped
                self.read_until((PROMPT,))
                return [f"error: {line.split()[0]} needs the technician PIN (--pin, or "
                        "HYDROLINK_PIN)"]
            self.port.write(pin.encode("ascii") + b"\r")
            text, mark = self.read_until((PROMPT, ASK), on_line=on_line)
        lines = text.replace("\r\n", "\n").split("\n")
        if lines and lines[0].strip().endswith(line.strip()[-20:]):
            lines = lines[1:]  # the echo of the line
        elif lines and set(lines[0].strip()) <= {"*"}:
            lines = lines[1:]  # the echo of the PIN
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        return lines


def _is_error(lines: list[str]) -> bool:
    return any(ln.startswith("error:") for ln in lines)


def _watch(s: Session, seconds: float | None) -> None:
    """``watch``: print its lines until a key (interactive) or ``seconds`` (scripted)."""
    s.port.write(b"watch\r")
    end = time.monotonic() + (seconds if seconds is not None else 1e9)
    while time.monotonic() < end:
        chunk = s.port.read(4096)
        if chunk:
            sys.stdout.write(chunk.decode("ascii", "replace").replace("\r\n", "\n"))
            sys.stdout.flush()
        if seconds is None and select.select([sys.stdin], [], [], 0)[0]:
            sys.stdin.readline()
            break
    s.port.write(b"\r")  # any key stops it
    s._buf.clear()
    s.read_until((PROMPT,))


def _interactive(s: Session, pin: str | None) -> int:
    import getpass
    import readline

    with contextlib.suppress(OSError):
        readline.read_history_file(HISTORY)
    print("hydrolink console: help lists the commands, exit (or Ctrl-D) ends; history with the arrows")
    try:
        while True:
            try:
                line = input("hydrolink> ").strip()
            except EOFError:
                print()
                break
            if not line:
                continue
            if line in ("exit", "quit"):
                break
            if line == "watch":
                print("(press Enter to stop)")
                _watch(s, None)
                continue
            lines = s.command(line, pin)
            if lines and lines[-1].startswith("error:") and "needs the technician PIN" in lines[-1]:
                pin = getpass.getpass("PIN: ")
                lines = s.command(line, pin)
            print("\n".join(lines))
    finally:
        with contextlib.suppress(OSError):
            readline.write_history_file(HISTORY)
    return 0


def cmd_console(argv: list[str]) -> int:
    """Entry point of ``hydrolink console``."""
    ap = argparse.ArgumentParser(prog="hydrolink console", description=__doc__.splitlines()[0])
    ap.add_argument("port", help="the console port: a device (/dev/ttyUSB0) or pyserial URL")
    ap.add_argument("-c", dest="commands", action="append", default=[], metavar="COMMAND",
                    help="run this command (repeatable), print the answers, exit 1 on an error")
    ap.add_argument("--pin", help="technician PIN for write commands (default: $HYDROLINK_PIN, or asked)")
    ap.add_argument("--baud", type=int, default=BAUD, help=f"line rate (default {BAUD})")
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for an answer")
    ap.add_argument("--watch-seconds", type=float, default=5.0, help="how long a scripted watch runs")
    a = ap.parse_args(argv)
    pin = a.pin or os.environ.get("HYDROLINK_PIN")
    try:
        s = Session(a.port, a.baud, a.timeout)
    except ConsoleError as e:
        print(f"hydrolink: {e}", file=sys.stderr)
        return 2
    try:
        s.open()
        if not a.commands:
            return _interactive(s, pin)
        failed = False
        for c in a.commands:
            if c.strip() == "watch":
                _watch(s, a.watch_seconds)
                continue
            lines = s.command(c, pin)
            print("\n".join(lines))
            failed = failed or _is_error(lines)
        return 1 if failed else 0
    except ConsoleError as e:
        print(f"hydrolink: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        s.close()
