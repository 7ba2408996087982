"""The simulation's MQTT broker: Mosquitto on a free loopback port, or amqtt in-process.

Mosquitto when it is installed (persistence on, so a broker outage, which is a stop and a
start, keeps the center's queued session); otherwise the embedded amqtt broker (MQTT 3.1.1)
on its own thread and loop. ``stop``/``start`` again are the broker outages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepting(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Broker:
    """``kind``: "mosquitto", "amqtt" or "auto" (Mosquitto if ``mosquitto`` is on PATH)."""

    def __init__(self, workdir: Path, kind: str = "auto") -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        exe = shutil.which("mosquitto")  # on PATH: so a PATH without it is the embedded path
        self.kind = ("mosquitto" if exe else "amqtt") if kind == "auto" else kind
        self.exe = exe
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._amqtt: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.kind == "mosquitto":
            conf = self.dir / "mosquitto.conf"
            conf.write_text(
                f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                f"persistence_location {self.dir}/\nmax_queued_messages 0\nautosave_interval 1\n"
                f"log_dest file {self.dir}/mosquitto.log\n" + ("user root\n" if os.geteuid() == 0 else ""))
            assert self.exe is not None
            self.proc = subprocess.Popen([self.exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
        else:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="sim-amqtt", daemon=True)
            self._thread.start()
            asyncio.run_coroutine_threadsafe(self._amqtt_start(), self._loop).result(30)
        deadline = time.monotonic() + 15
        while not _accepting(self.port):
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: see {self.dir / 'mosquitto.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the MQTT broker did not listen on port {self.port}")
            time.sleep(0.02)

    async def _amqtt_start(self) -> None:
        from amqtt.broker import Broker as AmqttBroker  # type: ignore[import-untyped,unused-ignore]

        # it logs every connection that closes unspoken (the simulator's reachability probe)
        logging.getLogger("amqtt").setLevel(logging.CRITICAL)

        cfg = {"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
               "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}}
        self._amqtt = AmqttBroker(cfg, loop=asyncio.get_running_loop())
        await self._amqtt.start()

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self._loop is not None:
            if self._amqtt is not None:
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(self._amqtt.shutdown(), self._loop).result(15)
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            if not self._loop.is_running():
                self._loop.close()
            self._loop = None
            self._amqtt = None
