"""One gateway per spool: an exclusive ``flock`` on ``<spool>-lock``, which holds its pid.

Two gateways on one spool would ACK each other's stations from one replay window
they do not share, and take the MQTT session from each other. The lock goes with
the process (``kill -9`` included), so a stale lock file never blocks a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


class LockError(Exception):
    """Another process holds the spool. ``str()`` is one line."""


def lock_path(spool: str | Path) -> Path:
    p = Path(spool)
    return p.with_name(p.name + "-lock")


class SpoolLock:
    """Held from :meth:`acquire` until :meth:`release` (or the process ends)."""

    def __init__(self, spool: str | Path) -> None:
        self.spool = Path(spool)
        self.path = lock_path(spool)
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = holder(self.spool)
            raise LockError(f"spool {self.spool} is in use by another gateway"
                            + (f" (pid {pid})" if pid else "")
                            + "; stop that one, or give this one another --spool") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing the descriptor releases the lock
            self.fd = None


def holder(spool: str | Path) -> int | None:
    """The pid of the gateway running on ``spool``, or None if none is."""
    path = lock_path(spool)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
