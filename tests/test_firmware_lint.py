"""tools/check_firmware.py: it flags what the board cannot run, and passes firmware/."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKER = ROOT / "tools" / "check_firmware.py"
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: (?P<msg>.+)  \[[\w-]+\]$")

# name -> (source, what the problem line must say). Each is CPython-only or not
# MicroPython at all; each line number is where the problem is.
BAD: dict[str, tuple[str, str]] = {
    "dataclasses": ("import dataclasses\n", 'module named "dataclasses"'),
    "hmac": ("import hmac\n", 'module named "hmac"'),
    "host_package": ("import cbor2\n", 'module named "cbor2"'),
    "monotonic": ("import time\nt = time.monotonic()\n", 'no attribute "monotonic"'),
    "in_untyped_def": ("import time\n\n\ndef f(x):\n    return time.perf_counter() + x\n",
                       'no attribute "perf_counter"'),
    "os_path": ("import os\np = os.path.join('a', 'b')\n", 'no attribute "path"'),
    "os_getpid": ("import os\nn = os.getpid()\n", "MicroPython has no os.getpid"),
    "re_findall": ("import re\nm = re.findall('a', 'aa')\n", "MicroPython has no re.findall"),
    "bit_length": ("n = 5\nb = n.bit_length()\n", "MicroPython has no int.bit_length"),
    "removeprefix": ("s = 'ab'\nt = s.removeprefix('a')\n", "MicroPython has no str.removeprefix"),
    "hexdigest": ("import hashlib\nh = hashlib.sha256(b'').hexdigest()\n",
                  "MicroPython has no _Hash.hexdigest"),
    "typing_at_runtime": ("import typing\n", "the board has no module 'typing'"),
    "future": ("from __future__ import annotations\n", "the board has no module '__future__'"),
    "abc_in_def": ("def f():\n    from collections.abc import Iterable\n    return Iterable\n",
                   "the board has no module 'collections.abc'"),
    "syntax": ("x = 1\ndef f(:\n    pass\n", "SyntaxError"),
}
BAD_LINES = {"monotonic": 2, "in_untyped_def": 5, "os_path": 2, "os_getpid": 2, "re_findall": 2,
             "bit_length": 2, "removeprefix": 2, "hexdigest": 2, "abc_in_def": 2, "syntax": 2}

# Board code that uses what MicroPython v1.29 has: no problem may be reported.
GOOD = """\
# board code
import array
import asyncio
import binascii
import collections
import errno
import gc
import hashlib
import io
import json
import os
import re
import struct
import sys
import time

import machine
from micropython import alloc_emergency_exception_buf, const

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence

try:
    from typing import Any  # noqa
except ImportError:
    pass

_SIZE = const(64)
alloc_emergency_exception_buf(100)


class Ring:
    def __init__(self, n: int) -> None:
        self.buf = bytearray(n)
        self.mv = memoryview(self.buf)
        self.q = collections.deque((), n)
        self.od = collections.OrderedDict()

    def put(self, data: bytes, at: int) -> int:
        self.mv[at : at + len(data)] = data
        struct.pack_into(">IH", self.buf, 0, 1, 2)
        self.q.append(at)
        return struct.unpack_from(">I", self.buf, 0)[0]


def total(xs: "Sequence[int]") -> int:
    return sum(xs)


def work(path, payload):
    t0 = time.ticks_ms()
    time.sleep_ms(1)
    dt = time.ticks_diff(time.ticks_ms(), t0)
    out = []
    for name in os.listdir("/"):
        out.append(name)
    st = os.stat(path)
    os.rename(path, path + ".bak")
    os.remove(path + ".bak")
    r = os.urandom(4)
    u = os.uname()
    h = hashlib.sha256(payload).digest()
    c = binascii.crc32(payload) & 0xFFFFFFFF
    x = binascii.hexlify(h).decode()
    b = (5).to_bytes(4, "big") + int.from_bytes(b"\\x01\\x02", "big").to_bytes(2, "little")
    m = re.compile(r"(\\d+)").match("12")
    s = re.sub("a", "b", "aaa")
    j = json.dumps({"a": [1, 2.5, None]})
    buf = io.BytesIO(b"abc")
    a = array.array("B", [1, 2])
    gc.collect()
    free = gc.mem_free() + gc.mem_alloc()
    sys.stdout.write("x\\n")
    text = "{} {}".format(1, "a").encode().decode()
    try:
        raise OSError(errno.ETIMEDOUT)
    except OSError as e:
        err = e.errno
        sys.print_exception(e)
    pin = machine.Pin(2, machine.Pin.OUT)
    pin.value(1)
    wdt = machine.WDT(timeout=5000)
    wdt.feed()
    return dt, out, st, r, u, c, x, b, m, s, j, buf.read(), a, free, text, err


async def loop():
    from asyncio import core

    idle = not core._task_queue.peek()
    ev = asyncio.Event()
    tsf = asyncio.ThreadSafeFlag()
    task = asyncio.create_task(asyncio.sleep_ms(10))
    await asyncio.wait_for(ev.wait(), 1)
    await tsf.wait()
    await asyncio.gather(task)
    return idle


def main():
    asyncio.run(loop())
    if sys.implementation.name != "micropython":
        sys.exit(1)
"""


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHECKER), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=240, check=False)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("firmware-lint-cache")


@pytest.fixture(scope="module")
def bad_output(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> dict[str, list[str]]:
    """Problem lines per bad file, from one run over a directory of them."""
    root = tmp_path_factory.mktemp("bad_firmware")
    for name, (source, _) in BAD.items():
        (root / f"bad_{name}.py").write_text(source)
    p = run(root, "--cache-dir", cache, cwd=root)
    assert p.returncode == 1, p.stdout + p.stderr
    lines: dict[str, list[str]] = {}
    for line in p.stdout.splitlines():
        m = LINE.match(line)
        assert m, f"not one problem per line: {line!r}"
        lines.setdefault(Path(m["file"]).stem.removeprefix("bad_"), []).append(line)
    return lines


@pytest.mark.parametrize("name", BAD)
def test_flags_what_the_board_lacks(name: str, bad_output: dict[str, list[str]]) -> None:
    expected = BAD[name][1]
    found = [line for line in bad_output.get(name, []) if expected in line]
    assert found, f"bad_{name}.py: no problem saying {expected!r} in {bad_output.get(name)}"
    if name in BAD_LINES:
        assert any(f":{BAD_LINES[name]}: error:" in line for line in found), found


def test_passes_board_code(tmp_path: Path, cache: Path) -> None:
    (tmp_path / "good.py").write_text(GOOD)
    p = run(tmp_path, "--cache-dir", cache)
    assert (p.returncode, p.stdout) == (0, ""), p.stdout + p.stderr


def test_firmware_tree_passes(cache: Path) -> None:
    assert sorted((ROOT / "firmware").glob("*.py")), "firmware/ has no modules"
    p = run("--cache-dir", cache)
    assert p.returncode == 0, f"make lint fails on firmware/:\n{p.stdout}{p.stderr}"


def test_mypy_uses_the_board_typeshed(cache: Path) -> None:
    p = run("--cache-dir", cache, "--print-mypy-command")
    assert p.returncode == 0, p.stderr
    assert "--custom-typeshed-dir" in p.stdout and "mypy-firmware.ini" in p.stdout
