"""The gateway end to end: simulated TCP stations -> real gateway -> real Mosquitto.

500 stations, each on its own TCP connection, send hourly ``data`` reports (12 rain and 12
level values, from ``common.simulate_day``) through ``hydrolink gateway`` (a subprocess, its
SQLite spool on disk with ``synchronous=FULL``) to a Mosquitto broker started here; a
``mosquitto_sub -C N`` counts the messages the center would receive.

* **throughput**: every station sends its frames one after the other as fast as the gateway
  ACKs them (a real station waits for each ACK). Frames/s = frames / (first send .. the
  last message at the subscriber), so it includes spool commits, ACKs and the MQTT QoS 1
  publishes with their PUBACKs. Target ≥ 3,000 frames/s.
* **latency**: the same stations paced to 1,000 frames/s in total; ACK latency is send ..
  ACK received, p50 and p99. Target p99 ≤ 50 ms.
* **codec floor**, same run, same frames, in this process: ``Deframer`` + ``decode_frame``
  of each frame and ``encode_frame`` of its ACK, single core, no I/O: what the protocol
  work alone costs, so the gateway's figure can be read as a fraction of it.

The stations run in this process (asyncio), the gateway in another, Mosquitto in a third:
on a 2-core machine all three share the cores, so the figures are a floor for a gateway
with the machine to itself. Exits 1 if a target is missed. ``--stations N --frames N``
change the load; ``--keep DIR`` keeps the spool and logs.

``--fsync-delay-ms MS`` models a slow disk (an SD card, a spinning disk): the gateway and its
forwarder run under ``strace``, which delays each of their ``fsync``/``fdatasync`` calls by MS;
the targets, set for a normal disk, are then printed but not enforced.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from bench.common import (  # noqa: E402
    STORM_DATE,
    day_after,
    hourly_reports,
    hydrolink_frames,
    simulate_day,
    station_key,
)
from host_tools.registry import registry_toml  # noqa: E402
from protocol.codec import ACK, EPOCH_UNIX, Ack, Deframer, decode_frame, encode_frame, wrap  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGET_FPS = 3000
TARGET_P99_MS = 50.0
LATENCY_RATE = 1000  # frames/s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_frames(stations: int, per_station: int) -> dict[int, list[bytes]]:
    """Distinct hourly frames per station: consecutive simulated days, 24 reports each."""
    days = {}
    out: dict[int, list[bytes]] = {}
    for i in range(stations):
        sid = 10_001 + i
        frames: list[bytes] = []
        d = 0
        while len(frames) < per_station:
            key = (i % 8, d)
            if key not in days:
                days[key] = hourly_reports(
                    simulate_day(100 * (i % 8) + d, day_after(STORM_DATE, d), storm=d % 2 == 0),
                    seed=d)
            frames += hydrolink_frames(days[key], sid, station_key(sid), seq0=len(frames) + 1)
            d += 1
        out[sid] = frames[:per_station]
    return out


class Station:
    def __init__(self, sid: int, frames: list[bytes]) -> None:
        self.sid = sid
        self.frames = frames
        self.latencies: list[float] = []

    async def run(self, port: int, frames: list[bytes], pace: float = 0.0,
                  start_at: float = 0.0) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        deframer = Deframer()
        if start_at:
            await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        nxt = time.monotonic()
        for raw in frames:
            seq = int.from_bytes(raw[5:9], "big")
            if pace:
                nxt += pace
            t0 = time.perf_counter()
            writer.write(wrap(raw))
            acked = False
            while not acked:
                data = await reader.read(4096)
                if not data:
                    raise ConnectionError(f"station {self.sid}: gateway closed the connection")
                for item in deframer.feed(data):
                    if isinstance(item, bytes) and int.from_bytes(item[5:9], "big") == seq:
                        acked = True
            self.latencies.append(time.perf_counter() - t0)
            if pace:
                await asyncio.sleep(max(0.0, nxt - time.monotonic()))
        writer.close()


def codec_floor(frames: dict[int, list[bytes]]) -> float:
    """Frames/s of deframe + verify + decode + ACK encode, one core, no I/O."""
    keys = {sid: station_key(sid) for sid in frames}
    stream = b"".join(wrap(r) for fl in frames.values() for r in fl)
    n = sum(len(fl) for fl in frames.values())
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        now = int(time.time()) - EPOCH_UNIX
        for raw in Deframer().feed(stream):
            assert isinstance(raw, bytes)
            f = decode_frame(raw, keys)
            wrap(encode_frame(ACK, f.station, f.seq, now, Ack((f.seq,)), keys[f.station]))
        best = max(best, n / (time.perf_counter() - t0))
    return best


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (None: this one)."""
    if pid is None:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stations", type=int, default=500)
    ap.add_argument("--frames", type=int, default=40, help="frames per station (throughput)")
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--keep", metavar="DIR")
    ap.add_argument("--fsync-delay-ms", type=float, default=0.0,
                    help="delay every fsync of the gateway by this much (needs strace)")
    ap.add_argument("--smoke", action="store_true",
                    help="a tiny run that checks the benchmark works (targets not enforced)")
    a = ap.parse_args()
    if a.smoke:
        a.stations, a.frames, a.latency_seconds = 20, 5, 1.0
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    msub = shutil.which("mosquitto_sub")
    if not os.path.exists(mosquitto) or not msub:
        print("bench/gateway.py: needs mosquitto and mosquitto_sub (apt-get install mosquitto"
              " mosquitto-clients)")
        return 1
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="hl-bench-gw-"))
    work.mkdir(parents=True, exist_ok=True)
    lat_per_station = max(1, round(LATENCY_RATE * a.latency_seconds / a.stations))
    print(f"building {a.stations} x {a.frames + lat_per_station} frames ...", flush=True)
    frames = build_frames(a.stations, a.frames + lat_per_station)
    (work / "stations.toml").write_text(registry_toml({sid: station_key(sid) for sid in frames}))
    bport, gport = free_port(), free_port()
    (work / "mosquitto.conf").write_text(
        f"listener {bport} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
        + ("user root\n" if os.geteuid() == 0 else ""))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(subprocess.Popen([mosquitto, "-c", str(work / "mosquitto.conf")],
                                      stderr=subprocess.DEVNULL))
        time.sleep(0.3)
        spool = work / "spool.db"
        for f in spool.parent.glob("spool.db*"):
            f.unlink()
        gw_log = open(work / "gateway.log", "wb")  # noqa: SIM115 - closed below
        slow_disk = [] if not a.fsync_delay_ms else [
            "strace", "-f", "-qq", "--seccomp-bpf", "-o", "/dev/null", "-e", "trace=fsync,fdatasync",
            "-e", f"inject=fsync,fdatasync:delay_exit={round(a.fsync_delay_ms * 1000)}"]
        if slow_disk:
            print(f"slow disk: each fsync/fdatasync of the gateway delayed {a.fsync_delay_ms:g} ms")
        gw = subprocess.Popen(
            [*slow_disk, sys.executable, *(["-m", "cProfile", "-o", str(work / "gw.prof")]
                               if os.environ.get("HL_PROFILE") else []),
             "-m", "host_tools.cli", "gateway", "--registry",
             str(work / "stations.toml"), "--spool", str(spool), "--listen",
             f"127.0.0.1:{gport}", "--mqtt", f"mqtt://127.0.0.1:{bport}", "--log-level",
             "warning", "--max-connections", str(a.stations + 100)],
            cwd=ROOT, stderr=gw_log)
        procs.append(gw)
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", gport)) == 0:
                    break
            if time.monotonic() > deadline or gw.poll() is not None:
                print((work / "gateway.log").read_text())
                return 1
            time.sleep(0.1)
        n = a.stations * a.frames
        counter = subprocess.Popen([msub, "-h", "127.0.0.1", "-p", str(bport), "-q", "1", "-t",
                                    "hydrolink/v1/+/obs", "-C", str(n)],
                                   stdout=subprocess.DEVNULL)
        procs.append(counter)
        time.sleep(0.5)
        stations = [Station(sid, fl) for sid, fl in frames.items()]

        async def throughput() -> float:
            t0 = time.perf_counter()
            await asyncio.gather(*(s.run(gport, s.frames[: a.frames]) for s in stations))
            return time.perf_counter() - t0

        print(f"throughput: {a.stations} stations x {a.frames} frames ...", flush=True)
        gw_pid = children(gw.pid)[0] if slow_disk else gw.pid  # under strace: its child
        fw = children(gw_pid)  # the forwarder process (and multiprocessing's helper)
        cpu0 = [cpu_seconds(procs[0].pid), cpu_seconds(gw_pid), cpu_seconds(),
                sum(cpu_seconds(p) for p in fw)]
        t_start = time.perf_counter()
        ack_seconds = asyncio.run(throughput())
        counter.wait(300)
        e2e_seconds = time.perf_counter() - t_start
        cpu = [b - a for a, b in zip(cpu0, [cpu_seconds(procs[0].pid), cpu_seconds(gw_pid),
                                              cpu_seconds(), sum(cpu_seconds(p) for p in fw)],
                                     strict=True)]
        acks = [x for s in stations for x in s.latencies]
        fps = n / e2e_seconds
        print(f"  {n} frames ACKed in {ack_seconds:.2f} s ({n / ack_seconds:,.0f}/s), all at"
              f" the subscriber after {e2e_seconds:.2f} s: {fps:,.0f} frames/s end to end"
              f" ({fps * 24:,.0f} readings/s)")
        print(f"  CPU during the run: gateway {cpu[1]:.1f} s ({1e6 * cpu[1] / n:.0f} µs/frame),"
              f" its forwarder {cpu[3]:.1f} s ({1e6 * cpu[3] / n:.0f} µs/frame),"
              f" mosquitto {cpu[0]:.1f} s, stations (this process) {cpu[2]:.1f} s,"
              f" of {2 * e2e_seconds:.1f} s on {os.cpu_count()} cores")
        print(f"  ACK latency under full load: p50 {1000 * pct(acks, 0.5):.1f} ms,"
              f" p99 {1000 * pct(acks, 0.99):.1f} ms")

        for s in stations:
            s.latencies.clear()
        pace = a.stations / LATENCY_RATE

        async def paced() -> float:
            t0 = time.monotonic() + 0.5
            # stagger the stations over one pacing period so the load is smooth
            await asyncio.gather(*(
                s.run(gport, s.frames[a.frames:], pace, t0 + pace * i / len(stations))
                for i, s in enumerate(stations)))
            return time.monotonic() - t0

        print(f"latency: paced to {LATENCY_RATE} frames/s for {a.latency_seconds:.0f} s ...",
              flush=True)
        took = asyncio.run(paced())
        lat = [x for s in stations for x in s.latencies]
        p50, p99 = 1000 * pct(lat, 0.5), 1000 * pct(lat, 0.99)
        print(f"  {len(lat)} frames in {took:.1f} s ({len(lat) / took:,.0f}/s): ACK latency"
              f" p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {1000 * max(lat):.1f} ms,"
              f" mean {1000 * statistics.fmean(lat):.1f} ms")

        floor = codec_floor({sid: fl[: a.frames] for sid, fl in frames.items()})
        print(f"codec floor (deframe + verify + decode + ACK encode, one core): {floor:,.0f}"
              f" frames/s; end to end = {fps / floor:.2f} of it")
        ok_fps, ok_lat = fps >= TARGET_FPS, p99 <= TARGET_P99_MS
        print(f"targets: >= {TARGET_FPS} frames/s end to end: {'met' if ok_fps else 'MISSED'}"
              f" ({fps:,.0f}); p99 <= {TARGET_P99_MS:.0f} ms at {LATENCY_RATE}/s:"
              f" {'met' if ok_lat else 'MISSED'} ({p99:.1f} ms)")
        os.kill(gw_pid, signal.SIGTERM)  # not strace's: it goes when its tracee does
        gw.wait(30)
        gw_log.close()
        return 0 if (ok_fps and ok_lat) or a.smoke or a.fsync_delay_ms else 1
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
