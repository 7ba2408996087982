"""Wrong gateway clocks, through the real gateway with its injected clock set wrong: hours
behind for a day (an NTP step), and a year ahead from the start (a PC that lost its RTC).
No station records an (element, time) twice with different values, nothing is lost, and
no alarm fires again."""

from __future__ import annotations

from pathlib import Path

from protocol.codec import EPOCH_UNIX
from sim.fleet import DAY_MS, T0, Fleet, Options
from sim.report import build
from sim.weather import Storm

START = EPOCH_UNIX + T0
STORM = Storm(86400, 4 * 3600, 80.0, "huff2")  # inside the wrong-clock day: alarms


def _check(f: Fleet) -> None:
    rep = build(f)
    t = rep.total
    assert t["duplicates"] == 0 and not any(r.recorded_twice for r in rep.rows)
    assert t["lost"] == 0, [r.lost_keys for r in rep.rows if r.lost]
    assert t["alarms_truth"] > 0 and t["alarms_arrived"] == t["alarms_truth"]
    assert f.center is not None
    raised = {(a.station, a.kind, a.time) for a in f.center.alarms
              if a.state == "raised" and a.kind in ("rain", "level_high")}
    assert len(raised) == t["alarms_truth"]  # each once: none raised again at a replayed or stepped time
    for row in rep.rows:  # readings stamped with true time: the level at the center is the truth's there
        assert row.level_err_max_m is None or row.level_err_max_m < 0.1, row
    # the stations kept true time: every mark stored where the truth has it
    for row, b in zip(rep.rows, f.boards, strict=True):
        assert row.stored + row.in_flight == row.recorded >= row.truth - 12
        assert b.rtc_offset_s == 0 or abs(b.rtc_offset_s) < 30


def test_gateway_clock_five_hours_behind_for_a_day(tmp_path: Path) -> None:
    def err(t: float) -> float:
        return -5 * 3600.0 if START + 0.6 * 86400 <= t < START + 1.6 * 86400 else 0.0

    f = Fleet(Options(stations=3, days=2.5, seed=5, workdir=tmp_path, progress=False, clock_error_s=err,
                      storm=STORM))
    f.run()
    _check(f)


def test_gateway_clock_a_year_ahead_from_the_start(tmp_path: Path) -> None:
    f = Fleet(Options(stations=3, days=2, seed=6, workdir=tmp_path, progress=False,
                      clock_error_s=lambda t: 365 * 86400.0, storm=STORM))
    f.run()
    _check(f)
    assert DAY_MS  # the fleet ran whole days
