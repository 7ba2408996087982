"""``hydrolink flash``: write a build and a station's configuration to a board, then check it.

``--port PORT``: over the board's USB REPL with ``mpremote`` (its Python API: raw REPL,
raw-paste, file writes). The old ``main.py`` goes first and the new one last (see
:mod:`host_tools.field.plan`); stale code files not in the build are removed, data files
(the reading queue) are kept. Then every file's sha256 is read back from the board, the
firmware version it reports (``service.VERSION``) is compared to the build's, the board
is reset (``machine.reset()``) and the running firmware's boot line (``boot: station N ...``)
awaited.
Whatever did not match is listed, and the exit status is 1.

``--image FILE``: the same files in a littlefs2 image (littlefs-python) for the board's
filesystem partition, checked by mounting it again; a virtual board boots from it, and
``esptool`` writes it to a real ESP32 (README, "Preparing a board").
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import re
import sys
import time
from pathlib import Path
from typing import Any

from host_tools.field.build import DEFAULT_OUT, BuildFailed, fail
from host_tools.field.plan import LAST, FlashError, Plan, Progress, make_plan

CHUNK = 1536  # bytes per REPL write (2 KB as base64 text): little heap on the board
BOOT_LINE = re.compile(rb"boot: station (\d+) cause")  # station.py logs it once running
_HASH = """import hashlib,os
def _h(p):
 try:
  h=hashlib.sha256();b=bytearray(512)
  with open(p,'rb') as f:
   while True:
    n=f.readinto(b)
    if not n:break
    h.update(b[:n])
  print(p,h.digest().hex())
 except OSError:
  print(p,'-')
"""


def _transport(port: str) -> Any:
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport
    try:
        t = SerialTransport(port, baudrate=115200, timeout=10)  # a board that dies never blocks us
        t.enter_raw_repl(soft_reset=False)
    except (TransportError, OSError) as e:
        raise FlashError(f"no board answers on {port} ({e}); check the cable and the port name "
                         "(python -m serial.tools.list_ports), and that no console has it open") from None
    return t


def _exec(t: Any, code: str, what: str) -> str:
    from mpremote.transport import TransportError, TransportExecError
    try:
        return bytes(t.exec(code)).decode(errors="replace")
    except TransportExecError as e:
        last = e.error_output.strip().splitlines()[-1:] or ["error"]
        raise FlashError(f"the board failed to {what}: {last[0]}", 1) from None
    except (TransportError, OSError) as e:
        raise FlashError(f"lost the board while trying to {what} ({e}); "
                         "the flash is incomplete: flash again", 1) from None


def board_hashes(t: Any, paths: list[str]) -> dict[str, str | None]:
    """sha256 hex of each path on the board (None: no such file), in one exec."""
    _exec(t, _HASH, "start hashing")
    out: dict[str, str | None] = {}
    for i in range(0, len(paths), 16):
        text = _exec(t, "\n".join(f"_h({p!r})" for p in paths[i:i + 16]), "hash its files")
        for line in text.splitlines():
            p, _, h = line.strip().rpartition(" ")
            if p:
                out[p] = None if h == "-" else h
    return out


def compare(plan: Plan, hashes: dict[str, str | None]) -> list[str]:
    """What on the board does not match the plan: one line per file."""
    bad = []
    for it in plan.items:
        got = hashes.get(it.path)
        if got is None:
            bad.append(f"{it.path}: missing on the board")
        elif got != it.sha256:
            bad.append(f"{it.path}: differs (board sha256 {got[:16]}, build {it.sha256[:16]})")
    return bad


def _stale(t: Any, plan: Plan) -> list[str]:
    # code files on the board that the build does not have (an older firmware's modules)
    keep = {it.path for it in plan.items}
    text = _exec(t, "import os\nfor d in ('', 'boards'):\n try:\n  for n in os.listdir(d or '.'):\n"
                 "   print((d + '/' if d else '') + n)\n except OSError:\n  pass", "list its files")
    keep.add("boot.py")  # the port's own (MicroPython writes one when it formats the flash)
    return [p for p in text.split() if p.endswith((".py", ".mpy", ".new")) and p not in keep]


def write_port(t: Any, plan: Plan, stream: Any) -> None:
    """Copy the plan to the board over the REPL, main.py removed first and written last."""
    _exec(t, f"import os\ntry:\n os.remove({LAST!r})\nexcept OSError:\n pass", f"remove the old {LAST}")
    for d in plan.dirs:
        _exec(t, f"import os\ntry:\n os.mkdir({d!r})\nexcept OSError:\n pass", f"make the folder {d}")
    for p in _stale(t, plan):
        _exec(t, f"import os\nos.remove({p!r})", f"remove the old {p}")
        stream.write(f"  removed {p} (not in this build)\n")
    bar = Progress(plan.size, stream)
    done = 0
    try:
        for it in plan.items:
            tmp = it.path + ".new"
            _exec(t, f"from binascii import a2b_base64 as _b\nf=open({tmp!r},'wb')\nw=f.write", f"open {it.path}")
            for i in range(0, len(it.data), CHUNK):
                # base64: 4/3 of the bytes on the wire, where repr() of .mpy bytes is ~2.5 times
                _exec(t, f"w(_b({base64.b64encode(it.data[i:i + CHUNK]).decode()!r}))", f"write {it.path}")
                done += len(it.data[i:i + CHUNK])
                bar.update(done, it.path)
            # whole or not at all: a cut leaves the old file, or a .new beside it
            _exec(t, f"f.close()\nimport os\nos.rename({tmp!r},{it.path!r})", f"close {it.path}")
            bar.file_done(it.path, len(it.data))
    finally:
        bar.close()


def _await_boot(port: str, timeout: float, ser: Any = None) -> int | None:
    # reads on the transport's own open port (nothing the board prints at boot is missed),
    # and opens the port again if it goes away (native USB leaves the bus at a reset)
    import serial
    deadline = time.monotonic() + timeout
    seen = b""
    try:
        while time.monotonic() < deadline:
            if ser is None:
                try:
                    ser = serial.serial_for_url(port, 115200, timeout=0.2)
                except (serial.SerialException, OSError):
                    time.sleep(0.2)  # a native-USB board leaves the bus while it resets
                    continue
            try:
                seen = (seen + (ser.read(ser.in_waiting or 1)))[-8192:]
            except (serial.SerialException, OSError):
                with contextlib.suppress(Exception):
                    ser.close()
                ser = None
                continue
            m = BOOT_LINE.search(seen)
            if m:
                return int(m.group(1))
    finally:
        if ser is not None:
            ser.close()
    return None


def flash_port(plan: Plan, port: str, *, verify_only: bool = False, reset: bool = True,
               boot_timeout: float = 30.0, out: Any = sys.stdout, err: Any = sys.stderr) -> list[str]:
    """Flash (or only check) a board; returns what did not match (empty: all good)."""
    t = _transport(port)
    try:
        if not verify_only:
            out.write(f"writing {len(plan.items)} files ({plan.size:,} B) to {port}\n")
            write_port(t, plan, err)
        hashes = board_hashes(t, [it.path for it in plan.items])
        bad = compare(plan, hashes)
        if not bad:
            text = _exec(t, "from service import VERSION\nprint(VERSION)", "report its firmware version")
            version = text.strip()
            if version != plan.manifest.version:
                bad.append(f"firmware version: the board reports {version!r}, the build is {plan.manifest.version!r}")
        if bad or not reset:
            return bad
        out.write(f"{len(plan.items)} files match the build (sha256); board reports firmware "
                  f"{plan.manifest.version}; resetting\n")
        from mpremote.transport import TransportError
        with contextlib.suppress(TransportError, OSError):  # the board may be gone before it says OK
            t.exec_raw_no_follow("import machine\nmachine.reset()")
        ser, t = t.serial, None  # keep the port open: the boot line comes on it
        ser.timeout = 0.2
    finally:
        if t is not None:
            with contextlib.suppress(Exception):
                t.close()
    boot = _await_boot(port, boot_timeout, ser)
    if boot is None:
        return [f"the board did not report a boot within {boot_timeout:.0f} s (no 'boot: station' line)"]
    if boot != plan.station:
        return [f"the board booted as station {boot}, expected {plan.station}"]
    out.write(f"the board booted the firmware as station {boot}\n")
    return []


def cmd_flash(argv: list[str]) -> int:
    """``hydrolink flash``: returns the exit status."""
    ap = argparse.ArgumentParser(prog="hydrolink flash",
                                 description="Write the build and a station's configuration to a board or an image.")
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="the board's USB serial port (/dev/ttyUSB0, COM3)")
    where.add_argument("--image", type=Path, help="write a littlefs2 image file instead")
    ap.add_argument("--station", type=int, required=True, help="station id (provisioned)")
    ap.add_argument("--board", default="esp32", help="build to flash: build/<board> (default esp32)")
    ap.add_argument("--build", type=Path, help="build folder (default build/<board>)")
    ap.add_argument("--stations", type=Path, default=Path("stations"),
                    help="provisioned stations folder (default ./stations)")
    ap.add_argument("--config", type=Path, help="the station's config.json (default <stations>/<id>/config.json)")
    ap.add_argument("--dry-run", action="store_true", help="list what would be written, write nothing")
    ap.add_argument("--verify-only", action="store_true", help="only compare the board's files with the build")
    ap.add_argument("--no-reset", action="store_true", help="do not reset the board after the check")
    ap.add_argument("--boot-timeout", type=float, default=30.0, help="seconds to wait for the boot line")
    ap.add_argument("--block-size", type=int, default=4096, help="image block size, bytes (default 4096)")
    ap.add_argument("--block-count", type=int, default=512,
                    help="image blocks (default 512: the 2 MiB vfs partition of a 4 MiB ESP32)")
    a = ap.parse_args(argv)
    build = a.build or DEFAULT_OUT / a.board
    config = a.config or a.stations / str(a.station) / "config.json"
    try:
        plan = make_plan(build, config, a.station)
        if a.dry_run:
            print(f"would write to {a.port or a.image} (firmware {plan.manifest.version}, "
                  f"{plan.manifest.board}, station {a.station}):")
            print("\n".join(plan.describe()))
            print(f"{len(plan.items)} files, {plan.size:,} B; then verify" + ("" if a.image else " and reset"))
            return 0
        if a.image is not None:
            from host_tools.field.image import write_image
            bad = write_image(plan, a.image, a.block_size, a.block_count)
        else:
            bad = flash_port(plan, a.port, verify_only=a.verify_only, reset=not a.no_reset,
                             boot_timeout=a.boot_timeout)
    except FlashError as e:
        return fail(str(e), e.status)
    except BuildFailed as e:
        return fail(str(e), 2)  # no build, or a broken one: a bad file
    if bad:
        print(f"hydrolink: the board does not match the build ({len(bad)} problem(s)); flash again:",
              file=sys.stderr)
        for line in bad:
            print(f"  {line}", file=sys.stderr)
        return 1
    if a.image is not None:
        print(f"wrote {a.image}: {len(plan.items)} files, {plan.size:,} B, station {a.station}, "
              f"firmware {plan.manifest.version}; checked by mounting it again")
    elif a.verify_only:
        print(f"{len(plan.items)} files on the board match the build")
    return 0
