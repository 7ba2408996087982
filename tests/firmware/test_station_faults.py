"""Field faults end to end, on the VM sim board: a corrupting link, a jammed rain gauge,
a flat battery (load shedding with hysteresis), a brownout restart, and a hung driver
that the watchdog resets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from protocol import codec
from sim.link import Peer, Phase
from sim.sensors import Storm, Weather
from sim.vboard import VBoard
from tests.firmware.simrun import DAY, HOUR, station

MIN = 60_000


def _reports(peer: Peer) -> list[tuple[codec.Frame, codec.Report]]:
    return [(f, f.body) for f in peer.frames if isinstance(f.body, codec.Report)]


def _statuses(peer: Peer) -> list[dict[str, object]]:
    return [dict(f.body.fields) for f in peer.frames if isinstance(f.body, codec.Status)]


def _all_once(b: VBoard, peer: Peer, until_t: int) -> None:
    """Every reading the board recorded up to ``until_t`` reached the peer once, unchanged."""
    got = Counter((r.element, r.time) for r in peer.readings)
    assert max(got.values()) == 1, [k for k, n in got.items() if n > 1][:5]
    by_key = {(r.element, r.time): r for r in peer.readings}
    board = [t for t in b.traces if t.time <= until_t]
    assert board
    missing = [t for t in board if (t.element, t.time) not in by_key]
    assert not missing, missing[:5]
    for t in board:
        r = by_key[(t.element, t.time)]
        assert (r.value, r.quality) == (t.value, t.quality)


def test_bit_flips_and_line_noise_lose_nothing(tmp_path: Path) -> None:
    # both directions: 20 % of frames get a flipped bit, 20 % follow line noise, 5 % are lost
    phases = [Phase(0, loss=0.05, corrupt=0.2, garbage=0.2), Phase(30 * HOUR)]
    b, peer = station(tmp_path / "s", days=2, seed=3, phases=phases)
    b.run(34 * HOUR)
    assert peer.errors.get("BadCrc", 0) + peer.errors.get("Malformed", 0) >= 5, peer.errors
    assert not any("Traceback" in ln for ln in b.log), b.log[-20:]
    _all_once(b, peer, b.t0 + 33 * 3600)
    # the board counted the damaged ACKs it threw away (status counter 11)
    st = _statuses(peer)
    assert st and st[-1]["counters"]["11"] >= 3, st  # type: ignore[index]


def test_stuck_rain_switch_is_a_fault_not_rain(tmp_path: Path) -> None:
    # rain from 08:00 to 20:00; the bucket jams closed from 10:00 to 16:00
    jam = (10 * HOUR + 123_456, 16 * HOUR + 654_321)
    w = Weather(seed=4, days=2, storms=[Storm(8 * 3600, 12 * 3600, 12.0)], stuck=[jam])
    b, peer = station(tmp_path / "s", days=2, seed=4, weather=w)
    b.run(24 * HOUR + 10 * MIN)
    rain = {r.time: r for r in peer.readings if r.element == 1}
    t0 = b.t0

    def truth(t: int) -> int:
        ms = (t - t0) * 1000
        return w.tips_between(ms - 300_000, ms) * 2

    in_jam = [r for t, r in rain.items() if t0 + jam[0] // 1000 < t <= t0 + jam[1] // 1000 + 300]
    assert len(in_jam) >= 70
    bad = [((r.time - t0) / 3600, r.value, r.quality) for r in in_jam if r.quality != 4]
    assert not bad, bad
    # before the jam and after it cleared, every interval counts the true tips
    before = [r for t, r in rain.items() if t0 + 9 * 3600 <= t <= t0 + jam[0] // 1000]
    after = [r for t, r in rain.items() if t0 + jam[1] // 1000 + 600 <= t <= t0 + 20 * 3600]
    assert before and after and sum(r.value or 0 for r in after) > 0
    for r in before + after:
        assert r.value == truth(r.time), (r, truth(r.time))
    st = _statuses(peer)
    assert st and st[-1]["counters"]["2"] >= len(in_jam), st  # type: ignore[index]
    # polled every minute while jammed, not every second: the lockstep saw few wakes
    assert b.messages < 40_000, b.messages


def test_low_battery_sheds_load_and_recovers_with_hysteresis(tmp_path: Path) -> None:
    # link down 08:00-22:00 (a backlog); battery low from 20:00, just above the shed
    # threshold but inside its hysteresis from 30:00, recovered from 36:00; a storm at 24:00
    bat = [(20 * HOUR - MIN, 11_400), (30 * HOUR - MIN, 11_650), (36 * HOUR - MIN, 12_200)]
    w = Weather(seed=6, days=3, storms=[Storm(24 * 3600, 3 * 3600, 45.0)], battery_mv=bat)
    phases = [Phase(0), Phase(8 * HOUR, loss=1.0), Phase(22 * HOUR)]
    b, peer = station(tmp_path / "s", days=3, seed=6, weather=w, phases=phases)
    peer.command(1, 6, at_ms=26 * HOUR)  # a status report while shedding
    b.run(46 * HOUR)
    t0 = b.t0
    shed = [(f, r) for f, r in _reports(peer) if t0 + 20 * 3600 + 60 <= f.time < t0 + 36 * 3600]
    assert shed
    assert all(r.flags & 1 for _, r in shed)  # low_power on everything sent
    # scheduled reports every shed_report_interval (3 h): 16 h of shedding, at most 6
    # reports where a normal station sends 16; no backfill
    sched = [f for f, r in shed if f.type == codec.DATA]
    assert 3 <= len(sched) <= 6, [(f.time - t0) / 3600 for f in sched]
    assert not any(r.flags & 8 for f, r in shed), "backfill while shedding"
    # alarms still go out at once
    assert any(f.type == codec.ALARM and f.time < t0 + 25 * 3600 for f, _ in shed)
    # the status report says so
    st = _statuses(peer)
    assert st and st[0]["flags"] & 1, st  # type: ignore[operator]
    # back to normal at the 36:00 battery reading (not at 30:00: hysteresis), then backfill
    late = [(f, r) for f, r in _reports(peer) if f.time >= t0 + 36 * 3600]
    assert late and not any(r.flags & 1 for _, r in late)
    assert any(r.flags & 8 for _, r in late)
    _all_once(b, peer, t0 + 44 * 3600)


def test_brownout_restart_without_a_retry_burst(tmp_path: Path) -> None:
    # the link is dead for 14 h (a backlog and a high backoff level); at 10:00 the battery
    # browns out; the board comes back, the link still dead
    phases = [Phase(0, loss=1.0), Phase(14 * HOUR)]
    b, peer = station(tmp_path / "s", days=2, seed=8, phases=phases)
    cut = 10 * HOUR
    b.run(26 * HOUR, cuts=[cut], cut_cause=5)
    assert b.cuts_done == 1
    boot = cut + b.boot_delay_ms
    burst = [ms for ms in b.writes if boot <= ms < boot + 15 * MIN]
    before = [ms for ms in b.writes if cut - 60 * MIN <= ms < cut]
    # after the boot: a holdoff, then the persisted backoff - not a burst of retries
    assert len(burst) <= 2, burst
    assert len(before) <= 6, before
    # the restart is reported as a brownout, and nothing was lost
    st = _statuses(peer)
    assert st and st[0]["reset_cause"] == 5, st
    _all_once(b, peer, b.t0 + 25 * 3600)


def test_watchdog_resets_a_hung_board_and_it_is_reported(tmp_path: Path) -> None:
    # at 10:32:30 the level ADC's driver wedges (mid median window): the firmware's next
    # read never returns, no task runs, nothing feeds the watchdog (10 min, the host's)
    b, peer = station(tmp_path / "s", days=2, seed=9)
    hang = 10 * HOUR + 32 * MIN + 30_000
    b.run(25 * HOUR, hangs=[hang])
    assert b.boots == 2 and b.cuts_done == 0
    assert b.wdt_ms == 10 * MIN  # started again after the reset
    # fed for the last time at the 10:32 sample, bitten 10 min later
    assert b.resets == [(10 * HOUR + 42 * MIN, 2)], b.resets
    at = b.resets[0][0]
    assert any("boot: station 4242 cause 2" in ln for ln in b.log), b.log[-20:]
    assert not any("Traceback" in ln for ln in b.log), b.log[-20:]
    # the daily status report says why the board restarted, and counts it
    st = _statuses(peer)
    assert st and st[0]["reset_cause"] == 2, st
    assert st[0]["counters"]["10"] == 1, st  # type: ignore[index]
    # nothing committed before the hang was lost (10:05-10:30 was not yet sent when it
    # hung: reports are hourly), nothing twice; readings go on after the restart
    unsent = [t for t in b.traces if b.t0 + 10 * 3600 < t.time <= b.t0 + hang // 1000]
    assert len(unsent) == 12, unsent
    got = {(r.element, r.time) for r in peer.readings}
    assert all((t.element, t.time) in got for t in unsent)
    assert any(r.time > b.t0 + (at + b.boot_delay_ms) // 1000 for r in peer.readings)
    _all_once(b, peer, b.t0 + 24 * 3600)


@pytest.mark.parametrize("sample_s", [60, 3600])
def test_watchdog_spares_a_healthy_board_asleep_between_hourly_records(tmp_path: Path,
                                                                        sample_s: int) -> None:
    # hourly records: the sampler sleeps ~56 min between its median windows (one sample
    # an hour with sample_interval 3600), far past the 10-min watchdog; the feed rule
    # (asleep in its timer and not late) must keep the board running all day
    cfg = {"record_interval": 3600, "rain_window_s": 3600, "sample_interval": sample_s,
           "median_n": 5 if sample_s == 60 else 1}
    b, peer = station(tmp_path / "s", days=2, seed=10, config=cfg)
    b.run(DAY + 10 * MIN)
    assert b.wdt_ms == 10 * MIN
    assert b.boots == 1 and b.resets == [], b.resets
    levels = [r for r in peer.readings if r.element == 2]
    assert len(levels) >= 23 and all(r.time % 3600 == 0 for r in levels)
    st = _statuses(peer)
    assert st and st[0]["reset_cause"] == 0 and "10" not in st[0]["counters"], st  # type: ignore[operator]
