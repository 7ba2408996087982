"""Wrong clocks, frames the host never acknowledges, replayed ACKs, commands across a
watchdog reset, small frames and damaged queue state, on the VM sim board."""

from __future__ import annotations

import heapq
import json
from pathlib import Path

from protocol import codec
from sim.link import Peer, Phase
from sim.vboard import VBoard
from tests.firmware.simrun import HOUR, STATION, T0, station

MIN = 60_000


def _statuses(peer: Peer) -> list[dict[str, object]]:
    return [dict(f.body.fields) for f in peer.frames if isinstance(f.body, codec.Status)]


def _edit_flash(b: VBoard, edit: object) -> None:
    """Change the board's flash between two runs (the VM is not running)."""
    fs = b.flash()
    edit(fs)  # type: ignore[operator]
    b.image.write_bytes(bytes(fs.context.buffer))


def test_rtc_48h_fast_at_boot_records_every_mark(tmp_path: Path) -> None:
    # the first ACK sets the clock back 48 h: the marks start afresh (they were all
    # "at or before the last one" and dropped: 26 readings in 40 h)
    b, peer = station(tmp_path / "s", days=2, rtc_offset_s=48 * 3600)
    b.run(40 * HOUR)
    assert b.rtc_offset_s == 0
    late = [t for t in b.traces if t.time < b.t0 + 40 * 3600]
    assert len(late) >= 2 * 12 * 38, len(late)
    got = {(r.element, r.time) for r in peer.readings}
    assert all((t.element, t.time) in got for t in late if t.time <= b.t0 + 39 * 3600)
    # the daily status went through: uptime is not negative after the step back
    st = _statuses(peer)
    assert st and all(s["uptime"] >= 0 for s in st), st  # type: ignore[operator]


def test_rtc_reset_to_2000_gets_the_clock_from_the_host(tmp_path: Path) -> None:
    # ESP32 after a power cut: the RTC restarts at 2000-01-01, negative hydrolink seconds
    b, peer = station(tmp_path / "s", days=2, rtc_offset_s=-(T0 + 24 * 365 * 86400))
    b.run(3 * HOUR)
    assert any("clock: corrected" in ln for ln in b.log), b.log[-20:]
    assert b.rtc_offset_s == 0
    first = peer.frames[0]
    assert first.type == codec.STATUS and first.body.fields["flags"] & 2  # type: ignore[union-attr]
    # nothing recorded with the wrong clock; hourly reports after the sync
    assert b.traces and all(t.time >= b.t0 for t in b.traces)
    assert any(r.time == b.t0 + 2 * 3600 for r in peer.readings)
    assert not any("Traceback" in ln for ln in b.log), b.log[-20:]


class DeafPeer(Peer):
    """A peer that rejects the frames with the given seqs (no ACK, nothing stored), and
    notes when each reading first arrives (virtual ms)."""

    deaf: set[int] = set()
    arrived: dict[tuple[int, int], int] = {}

    def uplink(self, ms: int, data: bytes) -> list[tuple[int, bytes]]:
        self.now = ms
        return super().uplink(ms, data)

    def _take(self, f: codec.Frame) -> None:
        if f.seq not in self.deaf:
            super()._take(f)
            for r in self.readings:
                self.arrived.setdefault((r.element, r.time), self.now)

    def _ack(self, ms: int, f: codec.Frame) -> bytes:
        return b"" if f.seq in self.deaf else super()._ack(ms, f)


def test_a_frame_the_host_rejects_delays_only_its_own_readings(tmp_path: Path) -> None:
    b, _ = station(tmp_path / "s", days=2)
    peer = DeafPeer({STATION: bytes(range(1, 33))}, t0=b.t0)
    peer.deaf = {2}  # the 02:00 report (01:05 .. 02:00)
    peer.arrived = {}
    b.peer = peer
    b.run(22 * HOUR)
    # every later hourly report goes ahead of the rejected frame: late by at most one
    # backoff (900 s cap) and an ACK wait, where it used to wait ~5 h for the give-up
    late = {h: (peer.arrived[(1, b.t0 + h * 3600)] - h * HOUR) / MIN for h in range(3, 21)}
    assert max(late.values()) <= 16, late
    # the rejected frame is given up after its 32 tries and its readings come again
    assert all((t.element, t.time) in peer.arrived for t in b.traces if t.time <= b.t0 + 20 * 3600)
    assert 60 < (peer.arrived[(1, b.t0 + 2 * 3600)] - 2 * HOUR) / MIN < 8 * 60
    peer.command(1, 6)
    b.run(24 * HOUR)
    st = _statuses(peer)
    assert st and st[-1]["counters"]["12"] >= 1, st  # type: ignore[index]


def test_a_replayed_ack_does_not_set_the_clock_back(tmp_path: Path) -> None:
    b, peer = station(tmp_path / "s", days=1)
    acks: list[bytes] = []
    real = peer.uplink

    def tap(ms: int, data: bytes) -> list[tuple[int, bytes]]:
        out = real(ms, data)
        acks.extend(x for _, x in out)
        return out

    peer.uplink = tap  # type: ignore[method-assign]
    b.run(2 * HOUR + MIN)
    old = acks[-1]  # the 02:00 report's ACK (its seq is still one of the last 16)
    b.run(4 * HOUR + 30 * MIN)
    heapq.heappush(b._rx, (b.vms + 1000, 0, old))
    b.run(6 * HOUR)
    assert b.rtc_offset_s == 0
    assert not any("clock: corrected" in ln for ln in b.log), b.log[-20:]


def test_a_command_runs_at_most_once_across_a_watchdog_reset(tmp_path: Path) -> None:
    # the test report's level read hangs inside the command (before its result is kept):
    # the watchdog resets the board; the host sends the command again
    b, peer = station(tmp_path / "s", days=1)
    peer.command(1, 4, at_ms=2 * HOUR - MIN)
    b.run(3 * HOUR, hangs=[2 * HOUR + 100])
    assert b.resets and b.resets[0][1] == 2, b.resets
    b.run(4 * HOUR + 5 * MIN)
    r = peer.results.get(1)
    assert r is not None and r.code == 3, r  # unknown outcome: failed, not ok
    assert not peer.of_type(codec.TEST)


def test_a_result_larger_than_max_frame_fails(tmp_path: Path) -> None:
    b, peer = station(tmp_path / "s", days=1, config={"max_frame": 256})
    keys = ["station", "record_interval", "sample_interval", "report_interval", "level_sensor",
            "rain_alarm_tenths", "level_alarm_mm", "retry_base_s", "retry_cap_s", "max_frame",
            "queue_max_bytes", "status_interval", "ack_timeout_s", "holdoff_s", "batt_low_mv",
            "clock_sync_threshold_s", "debounce_ms", "stuck_ms", "tip_tenths", "median_n"]
    peer.command(1, 2, keys, at_ms=HOUR - MIN)  # get_config: > 256 B
    b.run(HOUR + 5 * MIN)
    r = peer.results.get(1)
    assert r is not None and r.code == 3 and r.detail == "max_frame", r


def test_lost_state_files_never_reuse_a_seq(tmp_path: Path) -> None:
    b, peer = station(tmp_path / "s", days=1)
    b.run(3 * HOUR + 5 * MIN)
    seqs = {f.seq for f in peer.frames}

    def spoil(fs: object) -> None:
        for n in ("q/state", "q/state.tmp"):
            with fs.open(n, "w") as f:  # type: ignore[attr-defined]
                f.write("{torn")

    _edit_flash(b, spoil)
    b.run(6 * HOUR + 5 * MIN)
    assert any("store: state lost" in ln for ln in b.log), b.log[-20:]
    assert peer.dup_frames == 0
    assert max(f.seq for f in peer.frames) > max(seqs)
    got = {(r.element, r.time) for r in peer.readings}
    assert all((t.element, t.time) in got for t in b.traces if t.time <= b.t0 + 6 * 3600)


def test_a_segment_shorter_than_top_is_padded(tmp_path: Path) -> None:
    b, peer = station(tmp_path / "s", days=1)
    b.run(3 * HOUR + 5 * MIN)

    def cut(fs: object) -> None:
        with fs.open("q/state", "r") as f:  # type: ignore[attr-defined]
            top = json.loads(f.read())["top"]
        assert top > 20
        with fs.open("q/g0", "rb") as f:  # type: ignore[attr-defined]
            data = f.read()
        with fs.open("q/g0", "wb") as f:  # type: ignore[attr-defined]
            f.write(data[: 10 * 16])  # flash lost records below top

    _edit_flash(b, cut)
    n = len(peer.readings)
    b.run(6 * HOUR + 5 * MIN)
    assert any("store: padded g0" in ln for ln in b.log), b.log[-20:]
    got = {(r.element, r.time) for r in peer.readings[n:]}
    after = [t for t in b.traces if b.t0 + 3 * 3600 + 600 <= t.time <= b.t0 + 6 * 3600]
    assert after and all((t.element, t.time) in got for t in after)


def test_in_flight_frames_evicted_or_given_up_are_counted(tmp_path: Path) -> None:
    # a 20 h outage with an hourly status report: more status frames than the in-flight
    # table holds; the oldest go (or are given up), and every one that never arrived is
    # counted (12; data frames given up count there too, their readings come again)
    b, peer = station(tmp_path / "s", days=1, config={"status_interval": 3600},
                      phases=[Phase(0, loss=1.0), Phase(20 * HOUR)])
    b.run(22 * HOUR + 5 * MIN)
    made = sum(1 for ln in b.log if ln.startswith("heap: alloc="))
    st = _statuses(peer)
    assert made >= 20 and st
    gone = st[-1]["counters"].get("12", 0)  # type: ignore[attr-defined]
    assert len(st) < made and gone >= made - len(st), (made, len(st), gone)
    got = {(r.element, r.time) for r in peer.readings}
    assert all((t.element, t.time) in got for t in b.traces if t.time <= b.t0 + 21 * 3600)
