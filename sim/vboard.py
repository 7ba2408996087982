"""A virtual station board: the real firmware on the real MicroPython VM.

The firmware is compiled to ``.mpy`` with ``mpy-cross`` and written, with the station
config JSON, into a littlefs2 image (``littlefs-python``); the unix-port VM mounts that
image through ``boards/simboot`` and runs ``main`` from it with a board-sized heap. The
board's clock is virtual: the VM asks to idle, this host advances time to the next
event (rain-gauge edge, link bytes, the end of the idle) and answers with the sensor
inputs at that time. A power cut is ``kill -9`` of the VM; the next boot uses the same
image. The watchdog is this host's, as a WDT is outside the CPU: the firmware starts and
feeds it, and when virtual time passes its timeout unfed the VM is killed and booted again
with reset cause 2. See ``firmware/boards/sim.py`` for the board's side of the lockstep.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import json
import os
import random
import shutil
import socket
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from littlefs import LittleFS

from sim.link import Peer
from sim.mpy import BuildError, build_mpy, tool
from sim.sensors import Weather

BLOCK = 4096
T_FMT = struct.Struct("<QiHhBBH")
B_FMT = struct.Struct("<iBI")
EDGE_BUNDLE_MS = 40
MAX_RX = 256  # link bytes per lockstep reply: the board's link buffer (boards/sim.py)
PIN_HUNG = 2  # header pin byte: the level ADC hangs (bit 0: the rain switch is closed)
PIN_CONSOLE = 4  # header pin byte: console bytes follow the link bytes (<H n, n bytes)
WATCHDOG = 2  # reset cause after a watchdog reset (SPEC §8)
SHUNT_OHM = 100  # the firmware's default shunt_ohm (firmware/config.py)


class SimError(Exception):
    """The VM crashed, hung or broke the lockstep protocol."""


def make_image(path: Path, mpy: Path, config: dict[str, Any], blocks: int = 256) -> None:
    """A littlefs2 flash image with the firmware .mpy files and ``config.json``."""
    fs = LittleFS(block_size=BLOCK, block_count=blocks)
    for f in sorted(mpy.rglob("*.mpy")):
        rel = f.relative_to(mpy).as_posix()
        if rel in ("boards/simboot.mpy", "frame_full.mpy") or rel.startswith(("boards/esp32", "boards/rp2040")):
            continue  # the ROM, other boards' HALs, the codec half only tests use
        if "/" in rel:
            d = rel.rsplit("/", 1)[0]
            with contextlib.suppress(Exception):  # littlefs raises its own errors
                fs.makedirs(d, exist_ok=True)
        with fs.open(rel, "wb") as out:
            out.write(f.read_bytes())
    with fs.open("config.json", "w") as out:
        out.write(json.dumps(config))
    path.write_bytes(bytes(fs.context.buffer))


def read_image(path: Path, blocks: int = 256) -> LittleFS:
    """Mount a flash image on the host (to inspect the queue after a run)."""
    fs = LittleFS(block_size=BLOCK, block_count=blocks, mount=False)
    fs.context.buffer = bytearray(path.read_bytes())
    fs.mount()
    return fs


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live (or unreaped) process so far; 0 where /proc has none."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass(frozen=True)
class Trace:
    """A reading the board committed to its queue (its own record)."""

    element: int
    time: int
    value: int | None
    quality: int


@dataclass
class VBoard:
    """One virtual station.

    Args:
        workdir: where the image, the compiled firmware and the logs go.
        config: the station config JSON written into the image.
        weather: sensor inputs.
        peer: the far end of the link.
        t0: hydrolink time at virtual ms 0 (true UTC).
        rtc_offset_s: the board's RTC error at first boot (station minus true).
        heapsize: the VM heap.
        seed: seeds power-cut timing details and the board's random numbers.

    ``resets`` lists (virtual ms, cause) of every reset that was not a power cut: the
    firmware's own (``board.reset``) and the watchdog's (cause 2). ``wdt_ms`` is the
    timeout the firmware gave its watchdog at its last boot (0: not started).
    """

    workdir: Path
    config: dict[str, Any]
    weather: Weather
    peer: Peer
    t0: int
    rtc_offset_s: int = 0
    heapsize: str = "128K"
    seed: int = 1
    blocks: int = 256
    boot_delay_ms: int = 3000
    traces: list[Trace] = field(default_factory=list)
    boots: int = 0
    cuts_done: int = 0
    log: list[str] = field(default_factory=list)
    vms: int = 0
    resets: list[tuple[int, int]] = field(default_factory=list)  # (ms, cause)
    messages: int = 0
    writes: list[int] = field(default_factory=list)  # virtual ms of each link write
    wdt_ms: int = 0
    console: Any = None  # sim.console_pty.ConsolePty: the console UART on a pty
    _wdt_due: int | None = None  # virtual ms at which the watchdog bites, if started
    _hangs: list[int] = field(default_factory=list)  # pending ADC hangs, virtual ms
    _rx: list[tuple[int, int, bytes]] = field(default_factory=list)  # heap (ms, n, bytes)
    _rx_n: int = 0
    vm_cpu_s: float = 0.0  # CPU seconds the VM processes used (Linux; bench/sim_speed.py)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        # the VM runs with its working directory here: a relative path would not resolve
        self.workdir = Path(self.workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.image = self.workdir / "flash.img"
        self.mpy = self.workdir.parent / "mpy"
        try:
            build_mpy(self.mpy)
        except BuildError as e:
            raise SimError(str(e)) from None
        self.rom = self.workdir / "rom"
        self.rom.mkdir(exist_ok=True)
        shutil.copy(self.mpy / "boards" / "simboot.mpy", self.rom / "simboot.mpy")
        make_image(self.image, self.mpy, self.config, self.blocks)

    # ---- running ---------------------------------------------------------
    def run(self, until_ms: int, cuts: list[int] | tuple[int, ...] = (), cut_cause: int = 0,
            hangs: list[int] | tuple[int, ...] = ()) -> None:
        """Run the station until virtual ``until_ms``, cutting power at each of ``cuts``.

        ``cut_cause``: the reset cause the board reads after a cut (0 power-on, 5 brownout).
        ``hangs``: from each of these virtual ms on, the level ADC hangs: the firmware's
        next read of it never returns (a wedged driver), so only the watchdog gets the
        board going again. A watchdog reset due after ``until_ms`` still happens, at its time.
        """
        pending = sorted(c for c in cuts if c > self.vms)
        self._hangs = sorted([*self._hangs, *hangs])
        cause = 0 if self.boots == 0 else 1
        while self.vms < until_ms:
            cut = pending.pop(0) if pending and pending[0] < until_ms else None
            end, cause = self._boot(until_ms, cut, cause)
            if end == "done":
                return
            if end == "cut":
                self.cuts_done += 1
                cause = cut_cause
            self.vms += self.boot_delay_ms

    def _boot(self, until_ms: int, cut: int | None, cause: int) -> tuple[str, int]:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(0.2)
        port = srv.getsockname()[1]
        env = dict(os.environ)
        env.update(HL_FLASH=str(self.image), HL_PORT=str(port), HL_BS=str(BLOCK),
                   MICROPYPATH=f"{self.rom}:.frozen")
        self.boots += 1
        self._wdt_due = None  # a reset stops the watchdog until the firmware starts it
        self.wdt_ms = 0
        logf = open(self.workdir / f"vm{self.boots}.log", "w")  # noqa: SIM115
        pre = os.environ.get("HL_VM_PREFIX", "").split()
        proc = subprocess.Popen([*pre, tool("micropython"), "-X", f"heapsize={self.heapsize}",
                                 "-c", "import simboot"], env=env, stdout=logf,
                                # its own session: a Ctrl-C at the terminal is the host's to
                                # handle (it stops the VMs); a VM whose host is gone exits
                                stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True)
        try:
            conn = None
            for _ in range(300):
                try:
                    conn, _ = srv.accept()
                    break
                except TimeoutError:
                    if proc.poll() is not None:
                        break
            if conn is None:
                raise SimError(self._crash(proc, "VM did not connect"))
            conn.settimeout(60)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                with conn, conn.makefile("rb") as f:
                    return self._serve(conn, f, proc, until_ms, cut, cause)
            finally:
                conn.close()
        finally:
            srv.close()
            self.vm_cpu_s += _cpu_s(proc.pid)
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            logf.close()
            self.log.extend((self.workdir / f"vm{self.boots}.log").read_text().splitlines())

    def _crash(self, proc: subprocess.Popen[bytes], why: str) -> str:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        text = (self.workdir / f"vm{self.boots}.log").read_text()
        return f"{why} at {self.vms} ms (boot {self.boots}):\n{text[-3000:]}"

    def _serve(self, conn: socket.socket, f: Any, proc: subprocess.Popen[bytes], until_ms: int,
               cut: int | None, cause: int) -> tuple[str, int]:
        kill_after = -1  # messages still allowed before the power cut
        while True:
            head = f.read(3)
            if len(head) < 3:
                raise SimError(self._crash(proc, "VM closed the link"))
            kind = head[:1]
            n = int.from_bytes(head[1:], "little")
            data = f.read(n) if n else b""
            self.messages += 1
            if kill_after == 0:
                proc.kill()  # kill -9: a power cut, wherever the VM is
                return "cut", 0
            if kill_after > 0:
                kill_after -= 1
            if kind == b"H":
                conn.sendall(B_FMT.pack(self.t0 + self.rtc_offset_s, cause, self._rng.randrange(1, 2**31)))
                conn.sendall(self._reply(self.vms))
            elif kind == b"I":
                (dt,) = struct.unpack_from("<I", data)
                if len(data) >= 8:  # the firmware fed its watchdog since its last message
                    (self.wdt_ms,) = struct.unpack_from("<I", data, 4)
                    self._wdt_due = self.vms + self.wdt_ms
                target = self.vms + dt
                nxt = self._next_event()  # (nothing below moves it: computed once a step)
                if self.console is not None:  # paced while a technician types (sim/console_pty.py)
                    target = self.console.pace(self.vms, min(target, nxt, until_ms))
                if kill_after >= 0:
                    proc.kill()
                    return "cut", 0
                due = self._wdt_due
                if due is not None and due < min(target, nxt, until_ms) and (cut is None or cut > due):
                    return self._bite(proc, due)  # not fed in time: the board slept through it
                if target >= until_ms and nxt >= until_ms:
                    self.vms = until_ms
                    return "done", 0
                if cut is not None and cut <= min(target, nxt):
                    # the cut lands while the board works on what wakes it there
                    self.vms = max(self.vms, cut)
                    kill_after = self._rng.randrange(0, 6)
                    conn.sendall(self._reply(self.vms))
                    cut = None
                    continue
                conn.sendall(self._reply(min(target, nxt)))
            elif kind == b"W":
                self.writes.append(self.vms)
                for ms, b in self.peer.uplink(self.vms, data):
                    self._rx_n += 1
                    heapq.heappush(self._rx, (ms, self._rx_n, b))
            elif kind == b"R":
                el, t, v, q = struct.unpack("<BIiB", data)
                self.traces.append(Trace(el, t, None if q in (3, 4) else v, q))
            elif kind == b"D":  # a feed just before a hang (an idle carries the others)
                (self.wdt_ms,) = struct.unpack("<I", data)
                self._wdt_due = self.vms + self.wdt_ms
            elif kind == b"B":
                # hung in a driver: nothing runs until the watchdog bites (or the power goes)
                self._hangs.pop(0)
                if self._wdt_due is None:
                    raise SimError(self._crash(proc, "the board hung and has no watchdog"))
                if cut is not None and cut <= self._wdt_due:
                    self.vms = max(self.vms, cut)
                    proc.kill()
                    return "cut", 0
                return self._bite(proc, self._wdt_due)
            elif kind == b"K":
                if self.console is not None:
                    self.console.write(data)
            elif kind == b"C":
                (off,) = struct.unpack("<i", data)
                self.rtc_offset_s = off - self.t0
            elif kind == b"X":
                self.resets.append((self.vms, data[0]))
                proc.wait(timeout=30)
                return "reset", data[0]
            else:
                raise SimError(self._crash(proc, f"unknown message {kind!r}"))

    def _bite(self, proc: subprocess.Popen[bytes], due: int) -> tuple[str, int]:
        """The watchdog resets the board at ``due``: the VM dies where it is (RAM lost)."""
        proc.kill()
        self.vms = max(self.vms, due)
        self.resets.append((self.vms, WATCHDOG))
        return "reset", WATCHDOG

    def _next_event(self) -> int:
        e = self.weather.edges
        i = bisect.bisect_right(e, self.vms)
        nxt = e[i] if i < len(e) else 2**62
        if self._rx:
            nxt = min(nxt, self._rx[0][0])
        return max(nxt, self.vms)

    def _reply(self, ms: int) -> bytes:
        e = self.weather.edges
        i = bisect.bisect_right(e, self.vms)
        edges: list[int] = []
        if i < len(e) and e[i] <= ms:
            first = e[i]
            while i < len(e) and e[i] <= first + EDGE_BUNDLE_MS and len(edges) < 200:
                edges.append(e[i])
                i += 1
            ms = edges[-1]
        self.vms = max(ms, self.vms)
        rx = b""
        while self._rx and self._rx[0][0] <= self.vms and len(rx) < MAX_RX:
            at, n, b = heapq.heappop(self._rx)
            rx += b
            if len(rx) > MAX_RX:
                # the rest of this chunk goes first next time: under its own
                # key, which sorts before every chunk still pending
                heapq.heappush(self._rx, (at, n, rx[MAX_RX:]))
                rx = rx[:MAX_RX]
        w = self.weather
        cfg = self.config
        pin = int(w.pin_closed(self.vms))
        if self._hangs and self._hangs[0] <= self.vms:
            pin |= PIN_HUNG
        con = self.console.take() if self.console is not None else b""
        if con:
            pin |= PIN_CONSOLE
        head = T_FMT.pack(self.vms, w.level_uv(self.vms, cfg.get("shunt_ohm", SHUNT_OHM),
                                               cfg.get("level_4ma_mm", 0),
                                               cfg.get("level_20ma_mm", 10000)),
                          w.battery(self.vms), w.temperature(self.vms), pin, len(edges), len(rx))
        offs = b"".join(struct.pack("<H", self.vms - t) for t in edges)
        return head + offs + rx + (struct.pack("<H", len(con)) + con if con else b"")

    # ---- reading the results -------------------------------------------------
    def flash(self) -> LittleFS:
        """The flash image as it is now."""
        return read_image(self.image, self.blocks)
