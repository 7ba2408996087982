"""The real ``hydrolink center`` process, and a publisher thread that keeps messages coming."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from tests.gateway.helpers import PY, ROOT, wait_for

from .feed import Msg, Publisher


class CenterProc:
    """``hydrolink center`` as a subprocess; stderr goes to a log file."""

    def __init__(self, workdir: Path, db: str, mqtt: str, client_id: str, *extra: str) -> None:
        self.args = ["--db", db, "--mqtt", mqtt, "--client-id", client_id, "--log-level", "info", *extra]
        self.log = workdir / f"{client_id}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> CenterProc:
        self.starts += 1
        mark = "mqtt subscribed"
        before = self.text().count(mark)
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen([PY, "-m", "host_tools.cli", "center", *self.args], cwd=ROOT,
                                         stdout=subprocess.DEVNULL, stderr=err)
        wait_for(lambda: self._alive() and self.text().count(mark) > before, 60, "the center to subscribe")
        return self

    def _alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"center exited {self.proc.returncode}: {self.text()[-2000:]}")
        return True

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stacks(self) -> str:
        """Every thread's stack (faulthandler on SIGUSR1) and the log's tail: for a failure message."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGUSR1)
            time.sleep(1)
        return self.text()[-6000:]

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return 0
        self.proc.terminate()
        rc = self.proc.wait(60)
        self.proc = None
        return rc

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Feeder:
    """Publishes ``messages`` in chunks from a thread, so they keep coming during a fault."""

    def __init__(self, port: int, messages: Sequence[Msg], chunk: int = 20, pause: float = 0.02) -> None:
        self.pub = Publisher(port, f"feeder-{port}-{id(self)}")
        self.messages, self.chunk, self.pause = messages, chunk, pause
        self.sent = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Feeder:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            for i in range(0, len(self.messages), self.chunk):
                self.sent += self.pub.publish(self.messages[i:i + self.chunk])
                time.sleep(self.pause)
        except BaseException as e:  # surfaced by join()
            self.error = e

    def join(self, timeout: float = 120) -> None:
        self.thread.join(timeout)
        self.pub.close()
        if self.error is not None:
            raise self.error
        assert self.sent == len(self.messages), f"published {self.sent} of {len(self.messages)}"
