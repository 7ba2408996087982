"""Clock correction, queue overflow accounting and every command, on the VM sim board."""

from __future__ import annotations

import json
from pathlib import Path

from protocol import codec
from sim.link import Peer, Phase
from tests.firmware.simrun import DAY, HOUR, qstr_pools, station


def test_clock_corrected_from_ack_and_reported(tmp_path: Path) -> None:
    b, peer = station(tmp_path / "s", days=2, rtc_offset_s=137)
    b.run(DAY + HOUR)
    assert any("clock: corrected by -137 s" in ln for ln in b.log), b.log[:10]
    assert b.rtc_offset_s == 0  # the board's RTC now agrees with the host
    st = peer.of_type(codec.STATUS)
    assert st and st[-1].body.fields["clock_offset"] == 137  # type: ignore[union-attr]
    assert st[-1].body.fields["counters"]["8"] >= 1  # type: ignore[union-attr]
    # values after the sync sit on the host's marks
    late = [r for r in peer.readings if r.time > b.t0 + 3 * 3600]
    assert late and all(r.time % 300 == 0 for r in late)


def test_queue_overflow_drops_oldest_and_reports_the_count(tmp_path: Path) -> None:
    # 8 KB queue = 2 segments of 256 readings; 3 days of outage overflow it
    b, peer = station(tmp_path / "s", days=4, config={"queue_max_bytes": 8192},
                      phases=[Phase(0, loss=1.0), Phase(3 * DAY, loss=0.0)])
    b.run(3 * DAY + 6 * HOUR)
    reported = sum(f.body.dropped for f in peer.frames if isinstance(f.body, codec.Report))
    got = {(r.element, r.time) for r in peer.readings}
    recorded = [t for t in b.traces if t.time <= b.t0 + 3 * 86400 + 5 * 3600]
    lost = [t for t in recorded if (t.element, t.time) not in got]
    assert reported > 0
    assert len(lost) == reported  # every lost reading is counted, none silently
    assert max(t.time for t in lost) < min(r.time for r in peer.readings if r.time > b.t0 + 86400)


def _result(peer: Peer, cid: int) -> codec.Result | None:
    return peer.results.get(cid)


def test_commands(tmp_path: Path) -> None:
    # seven commands in one ACK (this raised MemoryError on the 128K heap when the
    # live heap was ~106 KB; see firmware/frame.py, station.py and main.py)
    b, peer = station(tmp_path / "s", days=2)
    b.run(2 * HOUR)
    t_from = b.t0 + 600
    peer.command(1, 1, {"report_interval": 1800, "rain_alarm_tenths": 150})  # set_config
    peer.command(2, 1, {"report_interval": 7})  # bad value: all or nothing
    peer.command(3, 2, ["report_interval", "key"])  # get_config
    peer.command(4, 3, [t_from, t_from + 900])  # resend
    peer.command(5, 4)  # test report
    peer.command(6, 6)  # status report
    peer.command(7, 42)  # unknown op
    n_readings = len(peer.readings)
    b.run(3 * HOUR + 10 * 60_000)  # commands ride on the ACK of the 03:00 report
    r = {i: _result(peer, i) for i in range(1, 8)}
    assert r[1] is not None and r[1].code == 0
    assert r[2] is not None and r[2].code == 2 and "report_interval" in r[2].detail
    assert r[3] is not None and r[3].code == 0
    assert r[3].detail == {"report_interval": 1800, "key": "***"}
    assert r[4] is not None and r[4].code == 0 and r[4].detail >= 6
    assert r[5] is not None and r[5].code == 0
    assert r[6] is not None and r[6].code == 0
    assert r[7] is not None and r[7].code == 1
    assert peer.of_type(codec.TEST)
    assert len(peer.of_type(codec.STATUS)) >= 1
    # resend: the readings of the range came again, under new seqs
    again = [x for x in peer.readings[n_readings:] if t_from <= x.time <= t_from + 900]
    assert len(again) >= 6
    # set_config persisted on flash: reports now every 30 min
    fs = b.flash()
    with fs.open("config.json", "r") as f:
        assert json.loads(f.read())["report_interval"] == 1800
    # at most once: the same id again is answered, not run again
    n_status = len(peer.of_type(codec.STATUS))
    peer.results.clear()
    peer.command(6, 6)
    b.run(4 * HOUR + 10 * 60_000)
    assert _result(peer, 6) is not None
    assert len(peer.of_type(codec.STATUS)) == n_status
    # reboot: answered, then a soft reset, and the station carries on
    peer.command(8, 5)
    b.run(5 * HOUR + 10 * 60_000)
    r8 = _result(peer, 8)
    assert r8 is not None and r8.code == 0
    assert b.resets and b.resets[-1][1] == 4
    assert max(x.time for x in peer.readings) >= b.t0 + 5 * 3600 - 3600
    assert not any("MemoryError" in ln or "Traceback" in ln for ln in b.log), b.log[-20:]
    pools = qstr_pools(b)
    assert len(pools) >= 3 and len({p for p, _ in pools}) == 1, pools  # no pool growth


def test_set_config_command_alone(tmp_path: Path) -> None:
    b, peer = station(tmp_path / "s", days=1)
    b.run(2 * HOUR)
    peer.command(1, 1, {"report_interval": 1800, "rain_alarm_tenths": 150})
    b.run(3 * HOUR + 10 * 60_000)
    r = peer.results.get(1)
    assert r is not None and r.code == 0
    with b.flash().open("config.json", "r") as f:
        assert json.loads(f.read())["report_interval"] == 1800


def test_get_config_without_keys_returns_the_whole_configuration(tmp_path: Path) -> None:
    # the whole configuration (MemoryError "allocating 944 bytes" on the 128K heap
    # when the map and the result frame were built as Python objects)
    b, peer = station(tmp_path / "s", days=1, config={"report_interval": 1800})
    peer.command(1, 2, at_ms=HOUR - 1000)  # get_config, no keys
    b.run(HOUR + 5 * 60_000)
    assert not any("MemoryError" in ln for ln in b.log), b.log[-20:]
    r = _result(peer, 1)
    assert r is not None and r.code == 0, r
    d = r.detail
    assert isinstance(d, dict)
    assert d["report_interval"] == 1800
    assert d["max_frame"] == 1024
    assert "station" in d and "record_interval" in d and "queue_max_bytes" in d
    assert d.get("key", "***") == "***"  # the secret never comes back
    assert len(d) >= 40
    # the same id again: answered again with the map (kept as its keys, not its values)
    peer.results.clear()
    peer.command(1, 2, at_ms=2 * HOUR - 1000)
    peer.command(2, 2, ["key", "station", "report_interval"], at_ms=2 * HOUR - 1000)
    b.run(2 * HOUR + 5 * 60_000)
    assert not any("MemoryError" in ln for ln in b.log), b.log[-20:]
    r1, r2 = _result(peer, 1), _result(peer, 2)
    assert r1 is not None and r1.code == 0 and r1.detail == d, r1
    assert r2 is not None and r2.code == 0, r2
    assert r2.detail == {"key": "***", "station": d["station"], "report_interval": 1800}
