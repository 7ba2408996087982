"""Run code on the MicroPython unix port, as the board would, from pytest and bench scripts.

``firmware/`` is importable on the VM through ``MICROPYPATH``; :func:`build_mpy`
(``sim/mpy.py``, the simulator's build) compiles it to ``.mpy`` first when a test wants the
bytecode a board would load (and the RAM that saves: compiling source on the VM needs far
more heap than importing ``.mpy``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import NamedTuple

from sim.mpy import FIRMWARE, ROOT, VM_ARCH, build_mpy, tool

__all__ = ["FIRMWARE", "ROOT", "VM_ARCH", "VMResult", "build_mpy", "micropython", "mpy_cross", "run"]


class VMResult(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def micropython() -> Path:
    """Path of the ``micropython`` unix-port binary."""
    return Path(tool("micropython"))


def mpy_cross() -> Path:
    """Path of the ``mpy-cross`` compiler."""
    return Path(tool("mpy-cross"))


def run(
    script: str | Path | None = None,
    *,
    code: str | None = None,
    args: tuple[str, ...] = (),
    heapsize: str = "128K",
    mpy_dir: Path | None = None,
    timeout: float = 300,
    cwd: Path = ROOT,
) -> VMResult:
    """Run a script file or a code string on the VM with a board-sized heap.

    Modules are imported from ``mpy_dir`` (see :func:`build_mpy`) if given, else from
    ``firmware/`` source. Returns the exit status and the decoded stdout and stderr.
    """
    if (script is None) == (code is None):
        raise ValueError("give exactly one of script and code")
    cmd = [str(micropython()), "-X", f"heapsize={heapsize}"]
    cmd += ["-c", code] if code is not None else [str(script)]
    cmd += list(args)
    env = dict(os.environ)
    env["MICROPYPATH"] = f"{mpy_dir if mpy_dir is not None else FIRMWARE}:.frozen"
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env, check=False
    )
    return VMResult(proc.returncode, proc.stdout, proc.stderr)
