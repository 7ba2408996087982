"""Real parts for the gateway tests: Mosquitto, the gateway process, stations, subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from host_tools.jsonview import frame_to_si
from host_tools.registry import registry_toml
from protocol import codec as c

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
T0 = 80_000_000  # hydrolink seconds (2026-07-14): where simulated station clocks start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(pred: Callable[[], bool], timeout: float, what: str, step: float = 0.02) -> None:
    """Poll a condition that has no event to await (another process's state)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def station_key(sid: int) -> bytes:
    return random.Random(sid).randbytes(32)


def write_registry(path: Path, stations: Iterable[int]) -> Path:
    path.write_text(registry_toml({s: station_key(s) for s in stations}))
    path.chmod(0o600)  # keys: readable by the owner only (else every command warns)
    return path


# ---------------------------------------------------------------- Mosquitto


class Mosquitto:
    """A real broker on a free loopback port, with persistence so sessions survive restarts."""

    def __init__(self, workdir: Path, extra: str = "") -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            ("per_listener_settings true\n" if extra else "")
            + f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {self.dir}/\nmax_queued_messages 0\n"
            "max_inflight_messages 0\nautosave_interval 1\n"
            f"log_dest file {self.dir}/mosquitto.log\n"
            # as root, mosquitto would switch to the 'mosquitto' user, which cannot
            # write its persistence file into the test's private directory
            + ("user root\n" if os.geteuid() == 0 else "")
            + extra
        )
        self.conf = conf

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for(self._accepting, 10, "mosquitto to listen")

    def _accepting(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"mosquitto exited: {(self.dir / 'mosquitto.log').read_text()}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


# ---------------------------------------------------------------- subscribers


LIVE: list[Any] = []  # subscribers still running; the conftest stops them after each test


class Subscriber:
    """An aiomqtt subscriber (own thread and loop), persistent session, QoS 1."""

    def __init__(self, port: int, topic: str = "hydrolink/v1/#", name: str = "") -> None:
        self.port = port
        self.topic = topic
        self.client_id = f"test-sub-{name or os.getpid()}-{random.Random(port).randrange(10**6)}"
        self.messages: list[tuple[str, dict[str, Any], bool]] = []
        self.cond = threading.Condition()
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> Subscriber:
        LIVE.append(self)
        self.thread.start()
        if not self._subscribed.wait(10):
            raise AssertionError("subscriber did not subscribe")
        return self

    async def _main(self) -> None:
        while not self._stop.is_set():
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, identifier=self.client_id,
                                          clean_session=False, keepalive=5) as client:
                    await client.subscribe(self.topic, qos=1)
                    self._subscribed.set()
                    async for m in client.messages:
                        payload = json.loads(bytes(m.payload))  # type: ignore[arg-type]
                        with self.cond:
                            self.messages.append((str(m.topic), payload, bool(m.retain)))
                            self.cond.notify_all()
                        if self._stop.is_set():
                            return
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    def wait(self, pred: Callable[[list[tuple[str, dict[str, Any], bool]]], bool],
             timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what} ({len(self.messages)} messages)")
                self.cond.wait(left)

    def stop(self) -> None:
        self._stop.set()


def _line_buffered() -> list[str]:
    """mosquitto_sub writes through stdio: without this, the last lines wait in its buffer."""
    exe = shutil.which("stdbuf")
    return [exe, "-oL"] if exe else []


class MosquittoSub:
    """The ``mosquitto_sub`` command, one ``topic payload`` line per message."""

    def __init__(self, port: int, topic: str = "hydrolink/v1/#") -> None:
        exe = shutil.which("mosquitto_sub")
        if exe is None:
            raise AssertionError("mosquitto_sub not found: apt-get install mosquitto-clients")
        self.proc = subprocess.Popen(
            [*_line_buffered(), exe, "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-q", "1", "-v", "-c",
             "-i", f"test-msub-{port}", "-k", "5"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        LIVE.append(self)
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                topic, _, payload = line.decode().rstrip("\n").partition(" ")
                with self.cond:
                    self.messages.append((topic, json.loads(payload)))
                    self.cond.notify_all()

    def wait(self, pred: Callable[[list[tuple[str, dict[str, Any]]]], bool], timeout: float,
             what: str) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what} (mosquitto_sub: "
                                         f"{len(self.messages)} messages)")
                self.cond.wait(left)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.thread.join(5)


# ---------------------------------------------------------------- the gateway process


class GatewayProc:
    """``hydrolink gateway`` as a subprocess; its log is kept for assertions."""

    def __init__(self, tmp: Path, registry: Path, mqtt: str | None, *, listen: bool = True,
                 serial: Iterable[str] = (), extra: Iterable[str] = (), spool: Path | None = None,
                 ) -> None:
        self.tmp = tmp
        self.spool = spool or tmp / "spool.db"
        self.args = ["--registry", str(registry), "--spool", str(self.spool),
                     "--mqtt-client-id", f"gw-{tmp.name}"]
        self.args += ["--mqtt", mqtt] if mqtt else ["--no-mqtt"]
        if listen:
            self.args += ["--listen", "127.0.0.1:0"]
        for s in serial:
            self.args += ["--serial", s]
        self.args += list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: list[str] = []
        self.log_cond = threading.Condition()
        self.port = 0
        self.runs = 0
        self.readers: list[threading.Thread] = []

    def start(self) -> GatewayProc:
        self.runs += 1
        after = len(self.log)
        self.proc = subprocess.Popen(
            [PY, "-m", "host_tools.cli", "gateway", *self.args], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        reader.start()
        self.readers.append(reader)
        line = self.wait_log("gateway running", 20, after=after)
        m = re.search(r'listen"?[=:] ?"?[^\s":]+:(\d+)', line)  # text or JSON log line
        self.port = int(m.group(1)) if m else 0
        return self

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        with proc.stderr, open(self.tmp / "gateway.log", "ab") as keep:
            for raw in proc.stderr:
                keep.write(raw)
                keep.flush()
                with self.log_cond:
                    self.log.append(raw.decode(errors="replace").rstrip("\n"))
                    self.log_cond.notify_all()

    def wait_log(self, text: str, timeout: float = 10, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        with self.log_cond:
            while True:
                for line in self.log[after:]:
                    if text in line:
                        return line
                if self.proc is not None and self.proc.poll() is not None:
                    self.log_cond.wait(0.2)  # let the reader catch the last lines
                    for line in self.log[after:]:
                        if text in line:
                            return line
                    raise AssertionError(f"gateway exited ({self.proc.returncode}) before "
                                         f"{text!r}:\n" + "\n".join(self.log[-30:]))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {text!r} in the gateway log:\n"
                                         + "\n".join(self.log[-30:]))
                self.log_cond.wait(min(left, 0.5))

    def terminate(self, timeout: float = 20) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        return rc

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for t in self.readers:
            t.join(5)


def cli(*args: str) -> tuple[int, str, str]:
    """``hydrolink ARGS`` in this process (no interpreter start): status, stdout, stderr."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from host_tools.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


def hydrolink(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "host_tools.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


# ---------------------------------------------------------------- stations


@dataclass
class SimStation:
    """A station that builds signed frames and remembers what it sent."""

    sid: int
    key: bytes = b""
    seq: int = 0
    clock: int = T0
    rng: random.Random = field(default_factory=random.Random)
    sent: dict[int, c.Frame] = field(default_factory=dict)   # seq -> frame
    acked: set[int] = field(default_factory=set)
    commands: list[c.Command] = field(default_factory=list)
    ack_times: list[int] = field(default_factory=list)
    sends: int = 0  # frames written, retransmissions included

    def __post_init__(self) -> None:
        self.key = self.key or station_key(self.sid)
        self.rng = random.Random(self.sid * 7919)

    def report(self, n: int = 12, alarm: bool = False) -> bytes:
        """The next hourly report (12 five-minute water levels, and rain), as a raw frame."""
        self.seq += 1
        self.clock += 3600
        mark = self.clock - self.clock % 300
        level = [70_000 + self.rng.randrange(-500, 500) for _ in range(n)]
        quality = [0] * n
        if self.rng.random() < 0.2:
            quality[self.rng.randrange(n)] = 3
        values = tuple(None if q == 3 else v for v, q in zip(level, quality, strict=True))
        rain = tuple(self.rng.randrange(0, 30) for _ in range(n))
        series = (
            c.Series(2, 300, mark - (n - 1) * 300, values, tuple(quality)),
            c.Series(1, 300, mark - (n - 1) * 300, rain, (0,) * n),
        )
        alarms = (c.Alarm(2, 1, level[-1], 69_000),) if alarm else ()
        ftype = c.ALARM if alarm else c.DATA
        body = c.Report(series, 0, alarms, 4 if alarm else 0)
        raw = c.encode_frame(ftype, self.sid, self.seq, self.clock + 3, body, self.key)
        self.sent[self.seq] = c.decode_frame(raw, {self.sid: self.key})
        return raw

    def result(self, results: Iterable[c.Result]) -> bytes:
        self.seq += 1
        raw = c.encode_frame(c.RESULT, self.sid, self.seq, self.clock, c.Results(tuple(results)),
                             self.key)
        self.sent[self.seq] = c.decode_frame(raw, {self.sid: self.key})
        return raw

    def expected(self, seq: int) -> dict[str, Any]:
        """What the center must receive for this frame (the SI view's body)."""
        si = frame_to_si(self.sent[seq])
        return {k: si[k] for k in ("type", "seq", "time", "series", "alarms") if k in si}


class Conn:
    """A station's byte stream to the gateway: sends frames and matches ACKs by seq."""

    def __init__(self, station: SimStation, reader: asyncio.StreamReader,
                 write: Callable[[bytes], None]) -> None:
        self.station = station
        self.reader = reader
        self.write = write
        self.waiters: dict[int, asyncio.Future[c.Frame]] = {}
        self.task = asyncio.create_task(self._read())
        self.acks: list[c.Frame] = []

    async def _read(self) -> None:
        deframer = c.Deframer()
        keys = {self.station.sid: self.station.key}
        while True:
            data = await self.reader.read(4096)
            if not data:
                return
            for item in deframer.feed(data):
                if isinstance(item, Exception):
                    continue
                frame = c.decode_frame(item, keys)
                assert frame.type == c.ACK and isinstance(frame.body, c.Ack)
                assert frame.seq in frame.body.acks
                self.acks.append(frame)
                self.station.ack_times.append(frame.time)
                for cmd in frame.body.commands:
                    if cmd not in self.station.commands:
                        self.station.commands.append(cmd)
                fut = self.waiters.pop(frame.seq, None)
                if fut is not None and not fut.done():
                    fut.set_result(frame)

    async def send(self, raw: bytes, *, retry: float = 1.0, deadline: float = 60.0,
                   mangle: Callable[[bytes], bytes] | None = None) -> c.Frame:
        """Send until ACKed (byte-for-byte retransmissions, as a station does)."""
        seq = int.from_bytes(raw[5:9], "big")
        end = time.monotonic() + deadline
        while True:
            fut = self.waiters.get(seq)
            if fut is None or fut.done():
                fut = self.waiters[seq] = asyncio.get_running_loop().create_future()
            if self.task.done():
                raise ConnectionError("the gateway closed the connection")
            wire = c.wrap(raw)
            self.write(mangle(wire) if mangle else wire)
            self.station.sends += 1
            try:
                ack = await asyncio.wait_for(asyncio.shield(fut), retry)
            except TimeoutError:
                if time.monotonic() > end:
                    raise AssertionError(f"station {self.station.sid} seq {seq}: no ACK") from None
                continue
            self.station.acked.add(seq)
            return ack

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task


async def tcp_conn(station: SimStation, port: int) -> tuple[Conn, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return Conn(station, reader, writer.write), writer


class PtyPort:
    """A pseudo-terminal: the gateway opens ``path``; the station uses the master side."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tty.setraw(self.master)
        self.path = os.ttyname(self.slave)
        self.transports: list[asyncio.BaseTransport] = []

    async def conn(self, station: SimStation) -> Conn:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        rfd = os.dup(self.master)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(rfd, "rb", buffering=0))
        self.transports.append(transport)
        master = self.master

        def write(data: bytes) -> None:
            view = memoryview(data)
            while view:
                n = os.write(master, view)
                view = view[n:]

        return Conn(station, reader, write)

    def close_transports(self) -> None:
        for t in self.transports:
            t.close()
        self.transports.clear()

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class SocketSerialServer:
    """A network serial server (like a Moxa box) the gateway reaches as ``socket://``."""

    def __init__(self) -> None:
        self.port = 0
        self.server: asyncio.Server | None = None
        self.connected: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue())
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> SocketSerialServer:
        async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.writers.append(w)
            await self.connected.put((r, w))

        self.server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    async def conn(self, station: SimStation, timeout: float = 20) -> tuple[Conn, Any]:
        r, w = await asyncio.wait_for(self.connected.get(), timeout)
        return Conn(station, r, w.write), w

    async def close(self) -> None:
        if self.server:
            self.server.close()
        for w in self.writers:
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()


async def resilient_station(st: SimStation, port: Callable[[], int], frames: int, *,
                            retry: float = 1.0, deadline: float = 90.0,
                            mangle: Callable[[bytes], bytes] | None = None,
                            pause: float = 0.0, alarm_every: int = 0) -> None:
    """Send ``frames`` reports over TCP, reconnecting whenever the gateway goes away.

    A frame is sent again byte for byte until ACKed, across reconnections.
    """
    end = time.monotonic() + deadline
    pending: bytes | None = None
    done = 0
    while done < frames:
        if time.monotonic() > end:
            raise AssertionError(f"station {st.sid}: only {done} of {frames} frames ACKed")
        try:
            conn, w = await tcp_conn(st, port())
        except OSError:
            await asyncio.sleep(0.05)
            continue
        try:
            while done < frames:
                if pending is None:
                    alarm = bool(alarm_every) and done % alarm_every == alarm_every - 1
                    pending = st.report(alarm=alarm)
                await conn.send(pending, retry=retry, deadline=end - time.monotonic(),
                                mangle=mangle)
                pending = None
                done += 1
                if pause:
                    await asyncio.sleep(pause)
        except (ConnectionError, OSError):
            await asyncio.sleep(0.05)
        finally:
            await conn.close()
            w.close()


def obs_by_key(messages: Iterable[tuple[Any, ...]]) -> dict[tuple[int, int], dict[str, Any]]:
    """Station frames published (obs, alarm, events), by (station, seq); last copy wins.
    (Events that are not frames, such as ``command_sent``, have no seq.)"""
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for m in messages:
        topic, payload = m[0], m[1]
        if topic.rsplit("/", 1)[-1] in ("obs", "alarm", "status", "events") and "seq" in payload:
            out[(payload["station"], payload["seq"])] = payload
    return out


def check_delivery(stations: Iterable[SimStation], messages: list[Any],
                   rejected_seqs: dict[int, set[int]] | None = None) -> int:
    """Every ACKed frame reached MQTT with exactly its readings, and nothing else did.

    Returns the number of readings counted.
    """
    got = obs_by_key(messages)
    readings = 0
    expected_keys: set[tuple[int, int]] = set()
    for st in stations:
        for seq in st.acked:
            key = (st.sid, seq)
            expected_keys.add(key)
            assert key in got, f"station {st.sid} seq {seq} was ACKed but never published"
            payload = got[key]
            want = st.expected(seq)
            assert {k: payload[k] for k in want} == want, f"{key}: payload differs"
            readings += sum(len(s["values"]) for s in payload.get("series", []))
        for seq in (rejected_seqs or {}).get(st.sid, ()):
            assert (st.sid, seq) not in got, f"rejected {st.sid}/{seq} was published"
    extra = set(got) - expected_keys
    assert not extra, f"published but never ACKed/expected: {sorted(extra)[:5]}"
    return readings


def run(coro: Any, timeout: float = 120) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


async def together(*coros: Any) -> list[Any]:
    """``asyncio.gather`` created inside the running loop (for :func:`run`)."""
    return list(await asyncio.gather(*coros))


class Rfc2217Server:
    """A network serial server speaking RFC 2217 (as pyserial's example server does),
    in front of the slave side of a pty: the gateway reaches it as ``rfc2217://``."""

    def __init__(self, device: str) -> None:
        import serial
        import serial.rfc2217

        class PtySerial(serial.Serial):  # a pty has no modem lines
            cts = dsr = ri = cd = property(lambda self: False)  # type: ignore[assignment]

            def _update_dtr_state(self) -> None:
                pass

            def _update_rts_state(self) -> None:
                pass

        self.serial = PtySerial(device, timeout=0.1)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = int(self.sock.getsockname()[1])
        self.stop = threading.Event()
        self.baudrates: list[int] = []
        self._rfc2217 = serial.rfc2217
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"rfc2217://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        conn.settimeout(0.1)

        class Wire:
            def write(self, data: bytes) -> None:
                conn.sendall(data)

        manager = self._rfc2217.PortManager(self.serial, Wire())

        def to_network() -> None:
            while not self.stop.is_set():
                data = self.serial.read(4096)
                if data:
                    conn.sendall(b"".join(manager.escape(data)))

        threading.Thread(target=to_network, daemon=True).start()
        with conn:
            while not self.stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                out = b"".join(manager.filter(data))
                if out:
                    self.serial.write(out)
                self.baudrates.append(self.serial.baudrate)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        time.sleep(0.15)  # let the threads see the flag before the port closes
        self.serial.close()
