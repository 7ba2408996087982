"""Compile firmware to ``.mpy`` with ``mpy-cross``: the one build the simulator and the VM tests share.

A board imports ``.mpy`` bytecode, not source (compiling on the board needs far more heap),
so the simulator (``sim/vboard.py``) and the tests that run firmware on the VM
(``tests/mpvm.py``) load what this module builds. ``tools/check_firmware.py`` compiles for
the ESP32 on its own: it only wants the compiler's messages, not the files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
# The unix port's native emitter: @micropython.native/viper code (firmware/sha256.py)
# compiles only for a given CPU, and a .mpy for another one does not import.
VM_ARCH = "x64"


class BuildError(RuntimeError):
    """A module did not compile; the message is the compiler's."""


def tool(name: str) -> str:
    """A venv tool: the repo's ``.venv/bin``, then next to this Python, then ``PATH``.

    Raises:
        FileNotFoundError: it is nowhere (the venv is not set up).
    """
    for d in (ROOT / ".venv" / "bin", Path(sys.executable).parent):
        p = d / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: run `make setup`")
    return found


def build_mpy(dest: Path, src: Path = FIRMWARE, *, modules: Iterable[str] | None = None,
              arch: str = VM_ARCH) -> list[Path]:
    """Compile the ``.py`` files under ``src`` to ``.mpy`` files in ``dest`` (same layout).

    A ``.mpy`` newer than its source is kept, so ``dest`` may be reused between runs (one
    ``dest`` per ``arch``).

    Args:
        dest: the output tree.
        src: the source tree (default ``firmware/``).
        modules: paths relative to ``src`` (``"frame.py"``, ``"boards/sim.py"``) to build
            only those; default every ``.py`` under ``src``.
        arch: ``mpy-cross -march``: the CPU that native/viper code is compiled for.

    Returns:
        The ``.mpy`` paths, in source order.

    Raises:
        BuildError: a module did not compile.
    """
    srcs = sorted(src.rglob("*.py")) if modules is None else [src / m for m in modules]
    out: list[Path] = []
    for path in srcs:
        rel = path.relative_to(src)
        mpy = dest / rel.with_suffix(".mpy")
        out.append(mpy)
        if mpy.exists() and mpy.stat().st_mtime >= path.stat().st_mtime:
            continue
        mpy.parent.mkdir(parents=True, exist_ok=True)
        # compiled under another name and renamed when whole: an interrupted build leaves
        # no truncated .mpy that the mtime check above would then take as current
        # (per process and thread: fleet runs in threads of one process may build at once)
        part = mpy.with_name(f".{mpy.name}.{os.getpid()}.{threading.get_ident()}")
        proc = subprocess.run([tool("mpy-cross"), f"-march={arch}", "-o", str(part), "-s", str(rel), str(path)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            part.unlink(missing_ok=True)
            raise BuildError(f"mpy-cross {rel}: {proc.stderr.strip()}")
        os.replace(part, mpy)
    return out
