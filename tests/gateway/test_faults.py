"""Fault tests: every valid reading reaches MQTT, no rejected one does.

Line noise, broker outage, kill -9, replayed frames, unknown stations and a full spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from host_tools.gateway.spool import Spool
from protocol import codec as c

from .helpers import (
    GatewayProc,
    Mosquitto,
    MosquittoSub,
    PtyPort,
    SimStation,
    Subscriber,
    check_delivery,
    free_port,
    hydrolink,
    obs_by_key,
    resilient_station,
    run,
    station_key,
    tcp_conn,
    together,
)


def _first_arrival_in_order(messages: list[tuple[str, dict[str, object], bool]]) -> None:
    """Per station, frames first arrive in seq order (the spool order)."""
    seen: dict[int, list[int]] = {}
    for topic, p, _ in messages:
        if topic.endswith(("/obs", "/alarm")):
            seqs = seen.setdefault(int(p["station"]), [])  # type: ignore[call-overload]
            if p["seq"] not in seqs:
                seqs.append(p["seq"])  # type: ignore[arg-type]
    for sid, seqs in seen.items():
        assert seqs == sorted(seqs), f"station {sid} out of order: {seqs}"


def test_garbage_and_bit_flips(tmp_path: Path, broker: Mosquitto, registry: Path,
                               gateways: list[GatewayProc]) -> None:
    sub = Subscriber(broker.port, name="noise").start()
    pty = PtyPort()
    gw = GatewayProc(tmp_path, registry, broker.url, serial=[pty.path])
    gateways.append(gw)
    gw.start()
    rng = random.Random(1234)
    mangled = {"flip": 0, "garbage": 0}

    def noisy(wire: bytes) -> bytes:
        r = rng.random()
        if r < 0.25:  # one flipped bit somewhere in the frame
            b = bytearray(wire)
            i = rng.randrange(len(b) - 1)
            b[i] ^= 1 << rng.randrange(8)
            mangled["flip"] += 1
            return bytes(b)
        if r < 0.4:  # line noise before the frame, sometimes with delimiters in it
            mangled["garbage"] += 1
            return rng.randbytes(rng.randrange(1, 60)) + wire
        if r < 0.45:  # a burst of noise without any delimiter, longer than MAX_WIRE
            mangled["garbage"] += 1
            return bytes(rng.randrange(1, 256) for _ in range(1100)) + b"\x00" + wire
        return wire

    stations = [SimStation(1001 + i) for i in range(8)]

    async def scenario() -> None:
        async def serial_station(st: SimStation) -> None:
            conn = await pty.conn(st)
            for _ in range(25):
                await conn.send(st.report(), retry=0.3, mangle=noisy)
            await conn.close()
            pty.close_transports()

        await asyncio.gather(
            serial_station(stations[0]),
            *(resilient_station(st, lambda: gw.port, 25, retry=0.3, mangle=noisy)
              for st in stations[1:]),
        )

    run(scenario())
    assert mangled["flip"] > 10 and mangled["garbage"] > 10
    total = sum(len(st.acked) for st in stations)
    assert total == 8 * 25
    sub.wait(lambda m: len(obs_by_key(m)) >= total, 30, "every frame")
    assert check_delivery(stations, sub.messages) == total * 24
    assert gw.terminate() == 0
    status = hydrolink("gateway", "--status", "--spool", str(gw.spool)).stdout
    assert "bad_crc" in status, status
    sub.stop()
    pty.close()


def test_broker_stopped_and_restarted(tmp_path: Path, broker: Mosquitto, registry: Path,
                                      gateways: list[GatewayProc]) -> None:
    sub = Subscriber(broker.port, name="outage").start()
    msub = MosquittoSub(broker.port)
    gw = GatewayProc(tmp_path, registry, broker.url)
    gateways.append(gw)
    gw.start()
    stations = [SimStation(1001 + i) for i in range(10)]

    run(together(*(resilient_station(st, lambda: gw.port, 10) for st in stations)))
    sub.wait(lambda m: len(obs_by_key(m)) >= 100, 30, "the first 100 frames")
    broker.stop()
    gw.wait_log("mqtt unavailable")
    # The broker is away: the gateway keeps ACKing from the spool.
    run(together(*(resilient_station(st, lambda: gw.port, 15, alarm_every=5)
                         for st in stations)))
    assert sum(len(st.acked) for st in stations) == 250
    n = len(gw.log)
    broker.start()
    gw.wait_log("mqtt connected", 30, after=n)
    sub.wait(lambda m: len(obs_by_key(m)) >= 250, 60, "the drained spool")
    msub.wait(lambda m: len(obs_by_key(m)) >= 250, 10, "the drained spool")
    readings = check_delivery(stations, sub.messages)
    assert readings == 250 * 24
    assert check_delivery(stations, msub.messages) == readings
    _first_arrival_in_order(sub.messages)
    assert gw.terminate() == 0
    sub.stop()
    msub.stop()


def test_kill_9_during_busy_run_and_restart(tmp_path: Path, broker: Mosquitto, registry: Path,
                                            gateways: list[GatewayProc]) -> None:
    sub = Subscriber(broker.port, name="kill").start()
    port = free_port()
    gw = GatewayProc(tmp_path, registry, broker.url, listen=False,
                     extra=["--listen", f"127.0.0.1:{port}"])
    gateways.append(gw)
    gw.start()
    stations = [SimStation(1001 + i) for i in range(20)]

    async def scenario() -> None:
        runs = [asyncio.create_task(resilient_station(st, lambda: port, 40, retry=0.5))
                for st in stations]
        # kill -9 while all twenty are sending, then again on the restarted gateway
        for kill_at in (150, 450):
            while sum(len(st.acked) for st in stations) < kill_at:
                await asyncio.sleep(0.01)
            await asyncio.to_thread(gw.kill9)
            await asyncio.to_thread(gw.start)
        await asyncio.gather(*runs)

    run(scenario(), timeout=150)
    total = sum(len(st.acked) for st in stations)
    assert total == 800
    sub.wait(lambda m: len(obs_by_key(m)) >= total, 60, "every ACKed frame")
    assert check_delivery(stations, sub.messages) == total * 24
    assert gw.runs == 3
    assert gw.terminate() == 0
    sub.stop()


async def _sent(st: SimStation, port: int, frames: list[bytes], expect_ack: bool) -> list[bool]:
    """Send frames as they are (recordings, retransmissions); which ones were ACKed."""
    conn, w = await tcp_conn(st, port)
    out = []
    for raw in frames:
        try:
            await conn.send(raw, retry=1.0 if expect_ack else 0.5, deadline=0)
            out.append(True)
        except AssertionError:
            out.append(False)
    await conn.close()
    w.close()
    return out


def test_replayed_frames(tmp_path: Path, broker: Mosquitto, registry: Path,
                         gateways: list[GatewayProc]) -> None:
    sub = Subscriber(broker.port, name="replay").start()
    msub = MosquittoSub(broker.port)
    gw = GatewayProc(tmp_path, registry, broker.url)
    gateways.append(gw)
    gw.start()
    st = SimStation(1001)
    recorded = [st.report() for _ in range(3)]

    def send(frames: list[bytes], expect_ack: bool) -> Any:
        return _sent(st, gw.port, frames, expect_ack)

    assert run(send(recorded, True)) == [True] * 3
    # the station moves far ahead (seq 5000): seq 1..904 fall out of the replay window
    st.seq = 4999
    ahead = st.report()
    assert run(send([ahead], True)) == [True]
    # recorded frames below the window (seq <= 5000 - 4096) are replays: never ACKed
    assert run(send([recorded[0], recorded[2]], False)) == [False, False]
    # a retransmission of the newest frame is a duplicate: ACKed again
    assert run(send([ahead], True)) == [True]
    st.acked.update({1, 2, 3, 5000})
    sub.wait(lambda m: len(obs_by_key(m)) >= 4, 20, "the four frames")
    # restart: the replay window comes back from the spool
    assert gw.terminate() == 0
    gw.start()
    assert run(send([recorded[1]], False)) == [False]
    assert run(send([ahead], True)) == [True]
    assert gw.terminate() == 0
    msub.wait(lambda m: len(obs_by_key(m)) >= 4, 20, "the four frames")
    check_delivery([st], sub.messages)
    for msgs in (sub.messages, msub.messages):
        copies = [m for m in msgs if m[0].endswith("/obs") and m[1]["seq"] == 5000]
        assert len(copies) == 1, "a duplicate was forwarded again"
    assert "replay" in " ".join(gw.log)
    status = hydrolink("gateway", "--status", "--spool", str(gw.spool)).stdout
    assert "replay 3" in status, status
    sub.stop()
    msub.stop()


def test_frames_pruned_from_the_spool_are_not_new_after_a_restart(
        tmp_path: Path, broker: Mosquitto, registry: Path, gateways: list[GatewayProc]) -> None:
    # Rows go after --retain-days (or for room on a full disk); a recording of one of them,
    # still inside the replay window, must be a duplicate after a restart, not published again.
    sub = Subscriber(broker.port, name="pruned").start()
    gw = GatewayProc(tmp_path, registry, broker.url)
    gateways.append(gw)
    gw.start()
    st = SimStation(1001)
    recorded = [st.report() for _ in range(3)]
    assert run(_sent(st, gw.port, recorded, True)) == [True] * 3
    sub.wait(lambda m: len(obs_by_key(m)) >= 3, 20, "the three frames")
    assert gw.terminate() == 0
    spool = Spool(gw.spool)
    spool.mark_forwarded([r.id for r in spool.pending(0, 10)])
    assert spool.prune(None) == 3 and spool.count() == 0
    spool.close()
    gw.start()
    assert run(_sent(st, gw.port, [recorded[1], st.report()], True)) == [True, True]
    sub.wait(lambda m: len(obs_by_key(m)) >= 4, 20, "the new frame")  # published in spool order
    assert gw.terminate() == 0
    assert [m[1]["seq"] for m in sub.messages if m[0].endswith("/obs")] == [1, 2, 3, 4]
    sub.stop()


def test_unknown_station_and_bad_tag(tmp_path: Path, broker: Mosquitto, registry: Path,
                                     gateways: list[GatewayProc]) -> None:
    sub = Subscriber(broker.port, name="unknown").start()
    gw = GatewayProc(tmp_path, registry, broker.url)
    gateways.append(gw)
    gw.start()
    stranger = SimStation(777)                       # not in the registry
    forger = SimStation(1005, key=station_key(999))  # listed, but signs with the wrong key
    honest = SimStation(1006)

    async def scenario() -> list[bool]:
        out = []
        for st in (stranger, forger):
            conn, w = await tcp_conn(st, gw.port)
            for _ in range(3):
                try:
                    await conn.send(st.report(), retry=0.5, deadline=0)
                    out.append(True)
                except AssertionError:
                    out.append(False)
            await conn.close()
            w.close()
        await resilient_station(honest, lambda: gw.port, 3)
        return out

    assert run(scenario()) == [False] * 6
    sub.wait(lambda m: len(obs_by_key(m)) >= 3, 20, "the honest station's frames")
    check_delivery([stranger, forger, honest], sub.messages,
                   rejected_seqs={777: {1, 2, 3}, 1005: {1, 2, 3}})
    assert gw.terminate() == 0
    status = hydrolink("gateway", "--status", "--spool", str(gw.spool)).stdout
    assert "unknown_station 3" in status and "bad_tag 3" in status, status
    assert not any(p["station"] in (777, 1005) for _, p, _ in sub.messages)
    sub.stop()


async def acks_while_full(stations: list[SimStation], window: float) -> tuple[int, int, int]:
    """While the spool is full: frames ACKed so far, then frames sent and ACKed in ``window`` s.

    A row that still fits in a half-used page may squeeze in now and then, hence a ratio.
    """
    await asyncio.sleep(0.5)
    before = sum(len(st.acked) for st in stations)
    sent = sum(st.sends for st in stations)
    await asyncio.sleep(window)
    acked = sum(len(st.acked) for st in stations) - before
    return before, sum(st.sends for st in stations) - sent, acked

def test_disk_full_spool_stops_acks_and_says_why(tmp_path: Path, broker: Mosquitto,
                                                 registry: Path,
                                                 gateways: list[GatewayProc]) -> None:
    sub = Subscriber(broker.port, name="full").start()
    broker.stop()  # the broker is away, so nothing can leave the spool
    gw = GatewayProc(tmp_path, registry, broker.url, extra=["--spool-max-mb", "0.06"])
    gateways.append(gw)
    gw.start()
    stations = [SimStation(1001 + i) for i in range(5)]

    async def scenario() -> None:
        runs = [asyncio.create_task(resilient_station(st, lambda: gw.port, 40, retry=0.3,
                                                      deadline=120))
                for st in stations]
        line = await asyncio.to_thread(gw.wait_log, "NOT acknowledging", 60)
        assert "full" in line
        # Full: the stations keep sending, the gateway refuses.
        before, sent, acked = await acks_while_full(stations, 1.5)
        assert before < 200 and sent >= 10 and acked <= sent // 5, (before, sent, acked)
        # the broker returns: the spool drains, forwarded rows make room, ACKs resume
        await asyncio.to_thread(broker.start)
        await asyncio.gather(*runs)

    run(scenario(), timeout=150)
    gw.wait_log("spool writable again")
    assert (tmp_path / "spool.db-reserve").stat().st_size == 8 << 20  # the cap, not the disk
    total = sum(len(st.acked) for st in stations)
    assert total == 200
    sub.wait(lambda m: len(obs_by_key(m)) >= total, 60, "every ACKed frame")
    assert check_delivery(stations, sub.messages) == total * 24
    assert gw.terminate() == 0
    sub.stop()


def test_sigterm_flushes_and_restart_resumes_from_spool(tmp_path: Path, broker: Mosquitto,
                                                        registry: Path,
                                                        gateways: list[GatewayProc]) -> None:
    sub = Subscriber(broker.port, name="resume").start()
    gw = GatewayProc(tmp_path, registry, None)  # no broker at first: spool only
    gateways.append(gw)
    gw.start()
    stations = [SimStation(1001 + i) for i in range(5)]
    run(together(*(resilient_station(st, lambda: gw.port, 10) for st in stations)))
    assert gw.terminate() == 0
    gw.wait_log("gateway stopped")
    assert not sub.messages
    gw2 = GatewayProc(tmp_path, registry, broker.url, spool=gw.spool)
    gateways.append(gw2)
    gw2.start()
    sub.wait(lambda m: len(obs_by_key(m)) >= 50, 30, "the spooled frames")
    assert check_delivery(stations, sub.messages) == 50 * 24
    # the replay window survived the restart: old frames are duplicates, not new
    run(resilient_station(stations[0], lambda: gw2.port, 1))
    stations[0].acked.add(11)
    assert gw2.terminate() == 0
    sub.wait(lambda m: len(obs_by_key(m)) >= 51, 30, "the new frame")
    _ = c
    sub.stop()


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                           capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path, gateways: list[GatewayProc]) -> Iterator[Path]:
    """A 16 MB tmpfs, for a real ENOSPC; unmounted once the gateways on it are closed."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "16m"):
        pytest.skip("cannot mount a small tmpfs here (needs root and mount rights)")
    yield disk
    for g in gateways:
        g.close()
    subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=10)


def test_real_disk_full_then_space_freed(tmp_path: Path, broker: Mosquitto, registry: Path,
                                         gateways: list[GatewayProc], small_disk: Path) -> None:
    """The spool's file system really fills up (ENOSPC); an operator frees space."""
    sub = Subscriber(broker.port, name="enospc").start()
    broker.stop()  # nothing leaves the spool
    filler = small_disk / "filler"
    filler.write_bytes(bytes(15_300 * 1024))  # leaves ~700 KB for the spool and its WAL
    gw = GatewayProc(tmp_path, registry, broker.url, spool=small_disk / "spool.db")
    gateways.append(gw)
    gw.start()
    stations = [SimStation(1001 + i) for i in range(5)]

    async def scenario() -> None:
        runs = [asyncio.create_task(resilient_station(st, lambda: gw.port, 300,
                                                      retry=0.3, deadline=120))
                for st in stations]
        line = await asyncio.to_thread(gw.wait_log, "NOT acknowledging", 60)
        assert "full" in line
        before, sent, acked = await acks_while_full(stations, 1.0)
        assert sent >= 10 and acked <= sent // 5, (sent, acked)
        assert before > 0  # some were stored and ACKed before the disk filled
        filler.unlink()  # the operator makes room
        await asyncio.to_thread(broker.start)
        await asyncio.gather(*runs)

    run(scenario(), timeout=150)
    _all_acked_at_the_center(gw, stations, sub, 1500)


def _fill(path: Path) -> int:
    """Write zeros to ``path`` until its file system is full; the file's size."""
    with open(path, "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(bytes(64 * 1024))
    return path.stat().st_size


def test_disk_filled_by_another_program_recovers_without_an_operator(
        tmp_path: Path, broker: Mosquitto, registry: Path, gateways: list[GatewayProc],
        small_disk: Path) -> None:
    """Something else fills the spool's disk to the last byte while the center is up: the
    gateway makes room from what MQTT already has and goes on ACKing, the filler still there."""
    sub = Subscriber(broker.port, name="selfheal").start()
    gw = GatewayProc(tmp_path, registry, broker.url, spool=small_disk / "spool.db",
                     extra=["--spool-reserve-mb", "2"])
    gateways.append(gw)
    gw.start()
    stations = [SimStation(1001 + i) for i in range(5)]
    run(together(*(resilient_station(st, lambda: gw.port, 200) for st in stations)))
    sub.wait(lambda m: len(obs_by_key(m)) >= 1000, 30, "the first frames at the center")
    filled = _fill(small_disk / "filler")
    assert filled > 1_000_000
    # more than the 2 MB reserve holds: the spool lives on the rows MQTT already has
    run(together(*(resilient_station(st, lambda: gw.port, 1000, retry=0.3, deadline=120)
                   for st in stations)), timeout=150)
    assert (small_disk / "filler").stat().st_size == filled  # nobody freed anything
    # released at least once; taken again only when the disk had room (a WAL checkpoint can
    # give back megabytes), so releases and retakes alternate; a few, not a thrash
    released = sum("released the spool's reserve" in ln for ln in gw.log)
    retaken = sum("spool reserve held" in ln for ln in gw.log)
    assert 1 <= released <= 3 and released - retaken in (0, 1), (released, retaken)
    _all_acked_at_the_center(gw, stations, sub, 6000)


def _all_acked_at_the_center(gw: GatewayProc, stations: list[SimStation], sub: Subscriber,
                             total: int) -> None:
    assert sum(len(st.acked) for st in stations) == total
    sub.wait(lambda m: len(obs_by_key(m)) >= total, 60, "every ACKed frame")
    assert check_delivery(stations, sub.messages) == total * 24
    assert gw.terminate() == 0
    sub.stop()


def test_forwarder_process_killed_is_restarted(tmp_path: Path, broker: Mosquitto,
                                               registry: Path,
                                               gateways: list[GatewayProc]) -> None:
    sub = Subscriber(broker.port, name="fwkill").start()
    gw = GatewayProc(tmp_path, registry, broker.url)
    gateways.append(gw)
    gw.start()
    assert gw.proc is not None
    stations = [SimStation(1001 + i) for i in range(5)]
    run(together(*(resilient_station(st, lambda: gw.port, 10) for st in stations)))
    sub.wait(lambda m: len(obs_by_key(m)) >= 50, 20, "the first frames")
    kids = Path(f"/proc/{gw.proc.pid}/task/{gw.proc.pid}/children").read_text().split()
    # multiprocessing's spawn also starts a resource tracker: the forwarder is the other one
    forwarder = [int(k) for k in kids
                 if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()]
    assert len(forwarder) == 1
    os.kill(forwarder[0], signal.SIGKILL)
    gw.wait_log("forwarder exited; starting another")
    run(together(*(resilient_station(st, lambda: gw.port, 10) for st in stations)))
    sub.wait(lambda m: len(obs_by_key(m)) >= 100, 30, "the frames after the restart")
    assert check_delivery(stations, sub.messages) == 100 * 24
    assert gw.terminate() == 0
    sub.stop()


def test_chaos_noise_broker_flaps_and_kills_together(tmp_path: Path, broker: Mosquitto,
                                                     registry: Path,
                                                     gateways: list[GatewayProc]) -> None:
    """Everything at once for a while: noise, the broker flapping, kill -9 twice."""
    sub = Subscriber(broker.port, name="chaos").start()
    port = free_port()
    gw = GatewayProc(tmp_path, registry, broker.url, listen=False,
                     extra=["--listen", f"127.0.0.1:{port}"])
    gateways.append(gw)
    gw.start()
    rng = random.Random(99)

    def noisy(wire: bytes) -> bytes:
        if rng.random() < 0.1:
            b = bytearray(wire)
            b[rng.randrange(len(b) - 1)] ^= 1 << rng.randrange(8)
            return bytes(b)
        return wire

    stations = [SimStation(1001 + i) for i in range(30)]

    async def scenario() -> None:
        runs = [asyncio.create_task(resilient_station(st, lambda: port, 60, retry=0.3,
                                                      mangle=noisy, pause=0.02, deadline=150,
                                                      alarm_every=7))
                for st in stations]
        for step in range(6):
            while sum(len(st.acked) for st in stations) < 250 * (step + 1):
                await asyncio.sleep(0.02)
            if step % 2 == 0:
                await asyncio.to_thread(broker.stop)
                await asyncio.sleep(0.5)
                await asyncio.to_thread(broker.start)
            else:
                await asyncio.to_thread(gw.kill9)
                await asyncio.to_thread(gw.start)
        await asyncio.gather(*runs)

    run(scenario(), timeout=200)
    total = sum(len(st.acked) for st in stations)
    assert total == 30 * 60
    sub.wait(lambda m: len(obs_by_key(m)) >= total, 90, "every ACKed frame")
    assert check_delivery(stations, sub.messages) == total * 24
    assert gw.terminate() == 0
    sub.stop()
