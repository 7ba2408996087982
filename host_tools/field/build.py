"""``hydrolink build``: the firmware compiled for one board, with a manifest.

Every module of ``firmware/`` is compiled with ``mpy-cross`` for the board's CPU
(``-march``: native and viper functions, as in ``firmware/sha256.py``, only import on
the CPU they were compiled for). A board runs ``main.py`` only as source, and compiling
source on the board costs heap, so ``firmware/main.py`` becomes ``hlmain.mpy`` and the
board's ``main.py`` is a one-line stub that imports it. Only the board's own HAL goes in (``boards/esp32``
for the ESP32; ``boards/rp2040`` and the ESP32 HAL it extends for the RP2040;
``boards/sim`` for the virtual board); the sim's boot ROM and the test-only codec half
stay out.

``build/<board>/manifest.json`` names the firmware version (``firmware/service.py``),
the git revision of ``firmware/`` and the sha256 of every file. Nothing in the build
depends on the time or the machine: mpy-cross is given the module's relative name, the
manifest has no dates, so two builds of one revision are byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.mpy import FIRMWARE, ROOT, tool

ARCH = {"esp32": "xtensawin", "rp2": "armv6m", "sim": "x64"}
HAL = {"esp32": ("esp32",), "rp2": ("rp2040", "esp32"), "sim": ("sim",)}
NOT_FLASHED = ("frame_full.py",)  # the codec half only the tests use
ENTRY = "hlmain"  # firmware/main.py compiled under this name; the board's main.py imports it
STUB = (f"# hydrolink: the firmware's entry is {ENTRY}.mpy (firmware/main.py, compiled). A board runs\n"
        f"# main.py only as source; compiling it on the board would cost heap the station needs.\n"
        f"import {ENTRY}  # noqa: F401\n")
MANIFEST = "manifest.json"
DEFAULT_OUT = ROOT / "build"


class BuildFailed(Exception):
    """The firmware did not compile, or the tree is unusable. ``str()`` is one line."""


@dataclass(frozen=True)
class Manifest:
    """What a build holds: ``files`` maps a board path (``boards/sim.mpy``) to its sha256."""

    board: str
    version: str
    revision: str
    files: dict[str, str]
    sizes: dict[str, int]

    @classmethod
    def load(cls, build_dir: Path) -> Manifest:
        """Read ``build_dir/manifest.json``. Raises BuildFailed if it is missing or broken."""
        path = build_dir / MANIFEST
        try:
            d = json.loads(path.read_text())
            files = {str(f["path"]): str(f["sha256"]) for f in d["files"]}
            sizes = {str(f["path"]): int(f["size"]) for f in d["files"]}
            return cls(str(d["board"]), str(d["firmware_version"]), str(d["git_revision"]), files, sizes)
        except FileNotFoundError:
            raise BuildFailed(f"{path}: no build there; run `hydrolink build` first") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BuildFailed(f"{path}: not a build manifest ({e}); run `hydrolink build` again") from None


def firmware_version(src: Path = FIRMWARE) -> str:
    """The firmware's VERSION, as the station reports it in its status (firmware/service.py)."""
    m = re.search(r'^VERSION = "([^"]+)"', (src / "service.py").read_text(), re.M)
    if m is None:
        raise BuildFailed(f"{src / 'service.py'}: no VERSION = \"...\" line")
    return m.group(1)


def git_revision(src: Path = FIRMWARE) -> str:
    """The last commit that changed ``firmware/``, ``+dirty`` when it has uncommitted changes.

    Not HEAD: a commit elsewhere in the repository does not change the firmware.
    """
    def git(*args: str) -> str:
        p = subprocess.run(["git", *args], cwd=src, capture_output=True, text=True, check=False)
        return p.stdout.strip() if p.returncode == 0 else ""
    rev = git("log", "-1", "--format=%H", "--", ".") or "unknown"
    return rev + ("+dirty" if git("status", "--porcelain", "--", ".") else "")


def sources(board: str, src: Path = FIRMWARE) -> list[str]:
    """The firmware files a board gets, relative to ``src``, sorted."""
    out = []
    for p in sorted(src.rglob("*.py")):
        rel = p.relative_to(src).as_posix()
        if rel in NOT_FLASHED or "__pycache__" in rel:
            continue
        if rel.startswith("boards/") and rel[len("boards/"):-3] not in HAL[board]:
            continue
        out.append(rel)
    return out


def _compile(mpy_cross: str, arch: str, src: Path, rel: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([mpy_cross, f"-march={arch}", "-o", str(dest), "-s", rel, rel],
                          cwd=src, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        msg = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise BuildFailed(f"mpy-cross {rel}: {msg[-1] if msg else 'failed'}")


def build(board: str, out: Path = DEFAULT_OUT, src: Path = FIRMWARE) -> tuple[Path, Manifest]:
    """Compile the firmware for ``board`` into ``out/<board>/`` (replaced whole) with its manifest."""
    if board not in ARCH:
        raise BuildFailed(f"unknown board {board!r}; boards: {', '.join(ARCH)}")
    mpy_cross = tool("mpy-cross")
    dest = out / board
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{board}-", dir=out))
    try:
        files: dict[str, str] = {}
        sizes: dict[str, int] = {}
        (tmp / "main.py").write_text(STUB)
        for rel in sources(board, src):
            target = f"{ENTRY}.mpy" if rel == "main.py" else rel[:-3] + ".mpy"
            _compile(mpy_cross, ARCH[board], src, rel, tmp / target)
        for p in sorted(tmp.rglob("*")):
            if p.is_file():
                target = p.relative_to(tmp).as_posix()
                data = p.read_bytes()
                files[target] = hashlib.sha256(data).hexdigest()
                sizes[target] = len(data)
        man = Manifest(board, firmware_version(src), git_revision(src), files, sizes)
        doc: dict[str, Any] = {
            "board": board, "arch": ARCH[board], "firmware_version": man.version,
            "git_revision": man.revision,
            "files": [{"path": p, "sha256": files[p], "size": sizes[p]} for p in sorted(files)],
        }
        (tmp / MANIFEST).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        for p in sorted(tmp.rglob("*")):
            os.utime(p, (0, 0))  # no build time anywhere, not even in file dates
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest, man


def cmd_build(argv: list[str]) -> int:
    """``hydrolink build``: returns the exit status."""
    ap = argparse.ArgumentParser(prog="hydrolink build",
                                 description="Compile the firmware for a board into build/<board>/.")
    ap.add_argument("--board", choices=sorted(ARCH), default="esp32", help="target board (default esp32)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default build/)")
    ap.add_argument("--src", type=Path, default=FIRMWARE, help="firmware source tree (default firmware/)")
    a = ap.parse_args(argv)
    if not (a.src / "main.py").is_file():
        return fail(f"{a.src}: no main.py there; give the firmware folder", 2)
    try:
        dest, man = build(a.board, a.out, a.src.resolve())
    except (BuildFailed, FileNotFoundError) as e:
        return fail(str(e))
    total = sum(man.sizes.values())
    print(f"built firmware {man.version} ({man.revision[:12]}) for {a.board}: "
          f"{len(man.files)} files, {total:,} bytes in {dest}")
    return 0


def fail(msg: str, status: int = 1) -> int:
    """Print ``hydrolink: msg`` on stderr (one line, no traceback); returns the exit status."""
    print(f"hydrolink: {msg}", file=sys.stderr)
    return status
