"""A virtual board's USB port: the real mpremote CLI works on its pty as on a board's."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from sim.mpy import tool
from sim.repl import PtyBoard

from .flashkit import blank_image, wait_for


def mpremote(port: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("mpremote"), "connect", port, *args], capture_output=True, text=True,
                          timeout=60)


def test_mpremote_exec_cp_sha256_and_soft_reset_on_the_pty(tmp_path: Path) -> None:
    img = blank_image(tmp_path / "flash.img")
    b = PtyBoard(tmp_path / "board", img, None, t0=0).start(boot="repl")
    try:
        r = mpremote(b.port, "exec", "print(6 * 7)")  # mpremote soft-resets first: a board does too
        assert r.returncode == 0 and r.stdout == "42\n", r
        data = bytes(range(256)) * 40  # 10 KB, every byte value: raw-paste must pass them all
        (tmp_path / "blob.bin").write_bytes(data)
        assert mpremote(b.port, "fs", "cp", str(tmp_path / "blob.bin"), ":blob.bin").returncode == 0
        r = mpremote(b.port, "fs", "sha256sum", "blob.bin")
        assert hashlib.sha256(data).hexdigest() in r.stdout
        r = mpremote(b.port, "exec", "1/0")
        assert r.returncode == 1 and "ZeroDivisionError" in r.stdout + r.stderr
        r = mpremote(b.port, "exec", "import os; print(os.getcwd())")
        assert r.stdout.strip() == "/flash"  # the board's filesystem is the image
        fs = b.flash()  # and the host reads the file the board wrote
        with fs.open("blob.bin", "rb") as f:
            assert f.read() == data
        assert b.boots == ["repl"]
        # machine.reset() is a hard reset: the board boots main.py, finds none, and is back at its REPL
        mpremote(b.port, "exec", "--no-follow", "import machine; machine.reset()")
        wait_for(lambda: b.boots[-2:] == ["firmware", "repl"], 120, "the reset board back at its REPL")
        assert mpremote(b.port, "exec", "print('again')").stdout == "again\n"
    finally:
        b.stop()
