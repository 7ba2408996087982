"""Shared parts of the flash tests: the hydrolink CLI, a real gateway, a virtual board on a pty."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from littlefs import LittleFS

from protocol.codec import EPOCH_UNIX
from sim.repl import GatewayLink, PtyBoard

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def hydrolink(cwd: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess, run in ``cwd`` (where registry.toml and stations/ live)."""
    return subprocess.run([PY, "-m", "host_tools.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def blank_image(path: Path, blocks: int = 256) -> Path:
    """A freshly formatted littlefs2 flash (4096-byte blocks): a board with nothing on it."""
    fs = LittleFS(block_size=4096, block_count=blocks)
    path.write_bytes(bytes(fs.context.buffer))
    return path


def key_of(cwd: Path, station: int) -> bytes:
    cfg = json.loads((cwd / "stations" / str(station) / "config.json").read_text())
    return bytes.fromhex(cfg["key"])


def board(workdir: Path, image: Path, gateway_port: int, **kw: object) -> tuple[PtyBoard, GatewayLink]:
    """A virtual board whose firmware links to the gateway's TCP input."""
    link = GatewayLink("127.0.0.1", gateway_port)
    kw.setdefault("ratio", 600.0)  # ten virtual minutes a second: the first hourly report in seconds
    b = PtyBoard(workdir, image, link, t0=int(time.time()) - EPOCH_UNIX, **kw)  # type: ignore[arg-type]
    return b, link
