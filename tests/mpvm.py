"""Run code on the MicroPython unix port, as the board would, from pytest and bench scripts.

``firmware/`` is importable on the VM through ``MICROPYPATH``; :func:`build_mpy` compiles
it to ``.mpy`` first when a test wants the bytecode a board would load (and the RAM
that saves: compiling source on the VM needs far more heap than importing ``.mpy``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
# The unix port's native emitter: @micropython.native/viper code (firmware/sha256.py)
# compiles only for a given CPU, and a .mpy for another one does not import.
VM_ARCH = "x64"


class VMResult(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def _tool(name: str) -> Path:
    """A venv tool: the repo's ``.venv/bin``, then next to this Python, then ``PATH``."""
    for candidate in (ROOT / ".venv" / "bin" / name, Path(sys.executable).parent / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: run `make setup`")
    return Path(found)


def micropython() -> Path:
    """Path of the ``micropython`` unix-port binary."""
    return _tool("micropython")


def mpy_cross() -> Path:
    """Path of the ``mpy-cross`` compiler."""
    return _tool("mpy-cross")


def build_mpy(dest_dir: Path, src_dir: Path = FIRMWARE) -> list[Path]:
    """Compile every ``.py`` under ``src_dir`` to ``.mpy`` in ``dest_dir`` (same layout),
    native code for the VM's CPU (``-march=x64``).

    Raises ``RuntimeError`` with the compiler's message if a module does not compile.
    """
    out: list[Path] = []
    for src in sorted(src_dir.rglob("*.py")):
        rel = src.relative_to(src_dir)
        dest = dest_dir / rel.with_suffix(".mpy")
        dest.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [str(mpy_cross()), f"-march={VM_ARCH}", "-o", str(dest), "-s", str(rel),
             str(src)],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"mpy-cross {rel}: {proc.stderr.strip()}")
        out.append(dest)
    return out


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
