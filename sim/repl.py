"""A virtual board's USB port on a pty: its REPL for mpremote, then the firmware it boots.

A real ESP32 on USB is one serial port: at reset it runs ``main.py`` from its littlefs
filesystem if there is one, and the REPL otherwise (or after Ctrl-C). :class:`PtyBoard`
is that for the simulator. Its port is a pty (:attr:`PtyBoard.port`, ``/dev/pts/N``) and its
flash is a littlefs2 image file:

- *REPL*: the MicroPython VM mounts the image at ``/flash`` (``boards/simboot``) and runs
  the board's REPL protocol (``boards/simrepl``: friendly and raw REPL, raw-paste, soft
  reset) on the port, so the real ``mpremote`` lists, writes and hashes files in the image.
- *reset* (``machine.reset()`` from the REPL, or the VM killed: a power cut): the board boots
  the firmware from the image: a :class:`~sim.vboard.VBoard` in lockstep, its link to a
  real gateway over TCP (:class:`GatewayLink`), its output (``print``) on the port. Without
  a ``main.py`` in the image, or when the firmware stops, the board is back at the REPL.
  Ctrl-C on the port stops the firmware and gives the REPL, as on a board.

``kill_after`` injects a fault: the VM is killed (``kill -9``) once that many bytes came in
from the port, i.e. part-way through a copy, and the board then boots as after a power cut.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import shutil
import socket
import subprocess
import threading
import time
import tty
from pathlib import Path
from typing import Any

from protocol import codec
from sim.console_pty import TypedIn
from sim.mpy import BuildError, build_mpy, tool
from sim.sensors import Weather
from sim.vboard import SimError, VBoard, read_image

HARD_RESET = 100  # the REPL VM's exit status for machine.reset() (boards/simrepl.py)


class GatewayLink:
    """The board's data link to a real gateway's TCP input (a :class:`~sim.link.Peer` stand-in).

    Each write goes to the gateway; the reply frames (ACKs) that arrive within ``wait_s``
    wall seconds come back to the board ``latency_ms`` virtual ms later. A frame the
    gateway rejects gets no reply, so its wait is the full ``wait_s``.
    """

    def __init__(self, host: str, port: int, wait_s: float = 3.0, latency_ms: int = 200) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.wait_s = wait_s
        self.latency_ms = latency_ms
        self.up = codec.Deframer()
        self.down = codec.Deframer()
        self.sent: list[bytes] = []  # raw uplink frames
        self.received: list[bytes] = []  # raw downlink frames (ACKs)
        self.lock = threading.Lock()

    def uplink(self, ms: int, data: bytes) -> list[tuple[int, bytes]]:
        """Bytes the board wrote at virtual ``ms``; returns the replies (deliver_ms, bytes)."""
        frames = [f for f in self.up.feed(data) if isinstance(f, bytes)]
        try:
            self.sock.sendall(data)
        except OSError:
            return []
        with self.lock:
            self.sent += frames
        want = len(frames)
        got = bytearray()
        deadline = time.monotonic() + self.wait_s
        while want > 0 and time.monotonic() < deadline:
            r, _, _ = select.select([self.sock], [], [], max(deadline - time.monotonic(), 0))
            if not r:
                break
            try:
                chunk = self.sock.recv(4096)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
            for f in self.down.feed(chunk):
                if isinstance(f, bytes):
                    with self.lock:
                        self.received.append(f)
                    want -= 1
        return [(ms + 2 * self.latency_ms, bytes(got))] if got else []

    def close(self) -> None:
        """Close the TCP connection."""
        with contextlib.suppress(OSError):
            self.sock.close()


class _FlashedBoard(VBoard):
    """A VBoard that boots from an image flashed by someone else, and shows its VM."""

    proc: subprocess.Popen[bytes] | None = None

    def _serve(self, conn: socket.socket, f: Any, proc: subprocess.Popen[bytes], *args: Any) -> tuple[str, int]:
        self.proc = proc
        return super()._serve(conn, f, proc, *args)


class _PortConsole(TypedIn):
    """The firmware's console UART on the board's own port, as on an ESP32's USB REPL.

    The :class:`~sim.vboard.VBoard` console protocol (``write``, ``take``, ``pending``,
    ``pace``; see ``sim/console_pty.py`` for a console on a pty of its own): typed bytes go to
    the firmware, and virtual time runs at ``ratio`` times wall time, as a board on a desk
    runs (1.0: real time), so a technician or a tool on the port sees a live board. Ctrl-C is
    not the console's: it stops the firmware and what follows it is for the REPL (mpremote
    breaking in).
    """

    def __init__(self, board: PtyBoard, ratio: float) -> None:
        self.board = board
        self.ratio = ratio
        self._in = bytearray()
        self.broke = False

    def _read(self) -> None:
        while not self.broke:
            data = self.board._read_port()
            if not data:
                return
            if b"\x03" in data:
                i = data.index(b"\x03")
                self._in += data[:i]
                self.board._pending = data[i + 1:]
                self.broke = True
                self.board._kill()
                return
            self._in += data

    def write(self, data: bytes) -> None:
        self.board._out(bytes(data))

    def pace(self, vms: int, target: int) -> int:
        """The board idles from ``vms`` to ``target``: in wall time / ``ratio``, early on a typed byte."""
        if self.pending():
            return vms
        start = time.monotonic()
        end = start + (target - vms) / self.ratio / 1000
        while time.monotonic() < end and not self.broke:
            select.select([self.board._master], [], [], min(max(end - time.monotonic(), 0), 0.05))
            if self.pending():
                return min(max(vms + int((time.monotonic() - start) * 1000 * self.ratio), vms), target)
        return target


CONSOLE = "console" in {f.name for f in dataclasses.fields(VBoard)}  # VBoard takes a console UART


class PtyBoard:
    """One virtual board with its USB port on a pty (see the module docstring).

    Args:
        workdir: the board's own folder (logs, ROM).
        image: its flash, a littlefs2 image file (4096-byte blocks), used as it is.
        link: makes the firmware's data link at each boot (e.g. a :class:`GatewayLink`).
        t0: hydrolink time at the first boot's virtual ms 0 (its RTC).
        run_ms: virtual ms the firmware runs per boot before the board powers off.
        ratio: virtual ms per wall ms while the firmware runs (1.0: a board on the desk).
        kill_after: kill the VM once this many bytes came in from the port (fault injection).
    """

    def __init__(self, workdir: Path, image: Path, link: Any, *, t0: int, run_ms: int = 30 * 86_400_000,
                 ratio: float = 1.0, heapsize: str = "128K", seed: int = 1, kill_after: int | None = None) -> None:
        self.workdir = workdir
        self.image = image
        self.link = link
        self.t0 = t0
        self.run_ms = run_ms
        self.ratio = ratio
        self.heapsize = heapsize
        self.seed = seed
        self.kill_after = kill_after
        self.bytes_in = 0
        self.output = bytearray()  # everything the board wrote to its port
        self.boots: list[str] = []  # "repl" / "firmware", in order
        self.board: VBoard | None = None  # the last firmware boot
        self.error: str | None = None  # why the last firmware boot ended, if it failed
        self._stop = threading.Event()
        self._pending = b""  # bytes typed while the firmware ran, for the REPL
        self._vm: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        mpy = workdir / "mpy"
        try:
            build_mpy(mpy)  # the ROM; and all of it for VBoard, so a reset does not wait on mpy-cross
        except BuildError as e:
            raise SimError(str(e)) from None
        self.rom = workdir / "rom"
        self.rom.mkdir(exist_ok=True)
        for m in ("simboot", "simrepl"):
            shutil.copy(mpy / "boards" / f"{m}.mpy", self.rom / f"{m}.mpy")
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self._thread = threading.Thread(target=self._main, daemon=True)

    def start(self, boot: str = "firmware") -> PtyBoard:
        """Power the board on: it boots the firmware (``boot="repl"``: straight to the REPL)."""
        self._first = boot
        self._thread.start()
        return self

    def stop(self) -> None:
        """Power off: end the VM and close the port."""
        self._stop.set()
        self._kill()
        self._thread.join(30)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def kill(self) -> None:
        """Cut the power now (``kill -9`` of the VM); the board boots again as at power-on."""
        self._kill()

    def _kill(self) -> None:
        for p in (self._vm, self.board.proc if isinstance(self.board, _FlashedBoard) else None):
            if p is not None and p.poll() is None:
                p.kill()

    def flash(self) -> Any:
        """The image as it is now (littlefs-python), for the test to read."""
        return read_image(self.image, self.image.stat().st_size // 4096)

    # ---- the port --------------------------------------------------------
    def _out(self, data: bytes) -> None:
        self.output += data
        with contextlib.suppress(OSError):  # nobody reading and the pty full: lost, as on a UART
            os.write(self._master, data)

    def _read_port(self) -> bytes:
        try:
            return os.read(self._master, 4096)
        except (BlockingIOError, OSError):
            return b""

    def _main(self) -> None:
        mode = self._first
        while not self._stop.is_set():
            self.boots.append(mode)
            t = time.monotonic()
            try:
                mode = self._firmware() if mode == "firmware" else self._repl()
            except Exception as e:  # noqa: BLE001 - the port must stay served: a board never hangs up
                self.error = f"{type(e).__name__}: {e}"
                mode = "repl"
            if time.monotonic() - t < 0.5:
                time.sleep(0.2)  # a board that fails at once: not a busy loop

    def _repl(self) -> str:
        env = dict(os.environ, HL_FLASH=str(self.image), HL_BS="4096", HL_REPL="1",
                   MICROPYPATH=f"{self.rom}:.frozen")
        vm = subprocess.Popen([tool("micropython"), "-X", f"heapsize={self.heapsize}", "-c", "import simboot"],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, cwd=self.workdir)
        self._vm = vm
        assert vm.stdin is not None and vm.stdout is not None
        out_fd = vm.stdout.fileno()
        try:
            if self._pending:
                vm.stdin.write(self._pending)
                vm.stdin.flush()
                self._pending = b""
            while not self._stop.is_set():
                r, _, _ = select.select([self._master, out_fd], [], [], 0.2)
                if out_fd in r:
                    data = os.read(out_fd, 4096)
                    if not data:
                        break  # the VM ended
                    self._out(data)
                if self._master in r:
                    data = self._read_port()
                    if data:
                        self._typed(vm, data)
            vm.wait(10)
        except (OSError, ValueError):
            pass  # the VM died under a write: a power cut
        finally:
            if vm.poll() is None:
                vm.kill()
            vm.wait()
            for s in (vm.stdin, vm.stdout):
                with contextlib.suppress(OSError):
                    s.close()
            self._vm = None
        return "repl" if vm.returncode == 0 and not self._stop.is_set() else "firmware"

    def _typed(self, vm: subprocess.Popen[bytes], data: bytes) -> None:
        assert vm.stdin is not None
        if self.kill_after is not None and self.bytes_in + len(data) >= self.kill_after:
            n = max(self.kill_after - self.bytes_in, 0)
            vm.stdin.write(data[:n])
            vm.stdin.flush()
            time.sleep(0.05)
            vm.kill()  # the power cut, part-way through what the host sends
            self.kill_after = None
            self.bytes_in += len(data)
            return
        self.bytes_in += len(data)
        vm.stdin.write(data)
        vm.stdin.flush()

    def _firmware(self) -> str:
        """Boot main.py from the image; back to the REPL when it stops (or on Ctrl-C)."""
        fs = read_image(self.image, self.image.stat().st_size // 4096)
        try:
            import json
            with fs.open("config.json", "r") as f:
                cfg: dict[str, Any] = json.loads(f.read())
        except Exception:  # noqa: BLE001 - no or bad config: the firmware says so itself
            cfg = {}
        console = _PortConsole(self, self.ratio) if CONSOLE else None
        extra: dict[str, Any] = {"console": console} if console is not None else {}
        b = _FlashedBoard(self.workdir / f"boot{len(self.boots)}", cfg, Weather(seed=self.seed, days=2),
                          self.link, t0=self.t0, heapsize=self.heapsize, seed=self.seed, **extra)
        b.image = self.image  # not the image VBoard made: the flashed one
        self.board = b
        done = threading.Event()

        def run() -> None:
            try:
                b.run(self.run_ms)
                self.error = None
            except Exception as e:  # noqa: BLE001 - SimError, or a lockstep message cut by a kill
                self.error = (str(e).splitlines() or [type(e).__name__])[0]
            finally:
                done.set()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        sent = (0, 0)
        broke = False
        while True:
            ended = done.wait(0.1)
            sent = self._tail(b, sent)
            if ended:
                break
            if console is None and not broke:  # after Ctrl-C, what follows is for the REPL
                data = self._read_port()
                if b"\x03" in data:
                    self._pending = data[data.index(b"\x03") + 1:]
                    broke = True
                    self._kill()
            if self._stop.is_set():
                self._kill()
        t.join(30)
        self._tail(b, sent)
        return "repl"

    def _tail(self, b: VBoard, sent: tuple[int, int]) -> tuple[int, int]:
        """Copy the firmware's new console output (its VM log, one per boot) to the port."""
        boot, off = sent
        while boot <= b.boots:
            try:
                with open(b.workdir / f"vm{boot}.log", "rb") as f:
                    f.seek(off)
                    data = f.read()
            except OSError:
                data = b""
            if data:
                self._out(data.replace(b"\n", b"\r\n"))
            off += len(data)
            if boot == b.boots:
                break
            boot, off = boot + 1, 0
        return boot, off
