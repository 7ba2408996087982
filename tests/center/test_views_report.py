"""``hydrolink report``: numbers against a store the test filled (both databases), and its layouts."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from host_tools.center import Gap, Store
from host_tools.center.model import Batch, StationAlarm, StatusRow
from host_tools.center.report import station_day
from host_tools.cli import main
from tests.center import views_data as vd


def _extra(store: Store) -> None:
    d0 = vd.D0
    a = store.add_center_alarm(1001, "rain_1h", d0 + 50 * vd.IV, value=40.0, threshold=30.0)
    store.clear_center_alarm(a, d0 + 80 * vd.IV)
    store.add_center_alarm(1001, "silence", d0 - 7200)  # raised the day before: not counted
    status = [StatusRow(1001, d0 + t, 7 + i, d0 + t + 1, v, 25.0, off, 0, None, 100, "1.0",
                        None, None, None, None, None)
              for i, (t, v, off) in enumerate([(4000, 11.7, 1.5), (9000, 12.1, -0.5)])]
    alarms = [StationAlarm(1001, d0 + 5000, 9, "level_high", "active", 70.3, 70.0, "m", None, d0 + 5001),
              StationAlarm(1001, d0 + 9000, 10, "level_high", "cleared", 69.9, 70.0, "m", None, d0 + 9001)]
    store.store_batch(Batch(status=status, alarms=alarms))
    store.set_gap(Gap(1001, "water_level", vd.GAP[0], vd.GAP[-1], "requested", 5, d0 + 40000))


def test_report_counts_an_alarm_episode_once(store: Store, tmp_path: Path) -> None:
    """A station repeats an ongoing alarm as "active" every interval: the morning report counts
    one raise per episode, and an alarm raised the day before and still active is no new raise."""
    vd.fill(store, tmp_path)
    meta = {m.station: m for m in store.stations()}[1001]
    base = station_day(store, meta, vd.DAY)
    d0, states = vd.D0, ["active"] * 3 + ["cleared", "raised"] + ["active"] * 2
    rows = [StationAlarm(1001, d0 - 3600, 1, "level_high", "raised", 70.2, 70.0, "m", None, d0 - 3599)]
    rows += [StationAlarm(1001, d0 + 600 * (i + 1), 2 + i, "level_high", st, 70.3, 70.0, "m", None, d0 + 600 * (i + 1))
             for i, st in enumerate(states)]
    store.store_batch(Batch(alarms=rows))
    r = station_day(store, meta, vd.DAY)
    assert (r.alarms_raised - base.alarms_raised, r.alarms_cleared - base.alarms_cleared) == (1, 1)


def test_report_numbers(store: Store, tmp_path: Path) -> None:
    vd.fill(store, tmp_path)
    _extra(store)
    metas = {m.station: m for m in store.stations()}
    r = station_day(store, metas[1001], vd.DAY)
    assert (r.expected, r.received) == (2 * 288, 2 * (288 - len(vd.GAP)))
    assert r.completeness == pytest.approx(100 * 552 / 576)
    assert (r.gaps, r.longest_gap_s) == (2, len(vd.GAP) * vd.IV)  # one hour, in rain and in level
    assert r.gap_states == {"requested": 1}
    assert r.battery_min_v == pytest.approx(11.7)  # status 11.7 V below the 11.9 V reading
    assert r.clock_offset_s == pytest.approx(-0.5)  # the last status frame's
    assert (r.alarms_raised, r.alarms_cleared) == (2, 2)
    assert r.faults == 0
    wet = sum(vd.rain_mm(k) for k in range(1, 289) if vd.D0 + k * vd.IV not in vd.GAP)
    assert r.rain_mm == pytest.approx(round(wet, 1)) and not r.rain_complete
    levels = [(vd.D0 + k * vd.IV, vd.level_m(k)) for k in range(1, 289) if vd.D0 + k * vd.IV not in vd.GAP]
    levels = [(t, 70.5 if t == vd.D0 + 10 * vd.IV else v) for t, v in levels]  # the revision
    top = max(levels, key=lambda p: (p[1], -p[0]))
    assert (r.level_max_m, r.level_max_time) == (top[1], top[0])
    assert r.level_min_m == min(v for _, v in levels)
    assert r.above_s["flood_limit"] == vd.IV * sum(1 for _, v in levels if v >= 70.0)
    assert r.above_s["guarantee"] == 0
    r2 = station_day(store, metas[1002], vd.DAY)
    assert (r2.expected, r2.received, r2.faults) == (288, 288, 1)  # 10-minute interval: 144 per element
    assert r2.rain_mm == pytest.approx(1.8) and r2.rain_complete
    assert r2.rain_1h_max_mm == pytest.approx(1.2)  # six 10-minute readings of 0.2 mm
    # a day without data: expected still comes from the interval
    empty = station_day(store, metas[1002], vd.DAY.replace(day=20))
    assert (empty.expected, empty.received, empty.completeness) == (288, 0, 0.0)


def test_report_layouts(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        store_url: str) -> None:
    vd.fill(store, tmp_path)
    _extra(store)
    assert main(["report", "--db", store_url, "--day", "2026-07-14"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert all(len(line) <= 120 for line in lines)
    row = next(line for line in lines if line.strip().startswith("1001"))
    assert "95.8%" in row and "60 min" in row and "11.70 V" in row and "-0.5 s" in row and "2/2" in row
    assert "gap recovery 1001: requested 1" in out
    assert "level 1001: max 70.50 m at 07-14 08:50" in out
    above = vd.IV * sum(1 for k in range(1, 289) if vd.D0 + k * vd.IV not in vd.GAP and vd.level_m(k) >= 68.0)
    assert f"above 1001 (h:mm): warning {above // 3600}:{above % 3600 // 60:02d}, flood limit" in out
    assert main(["report", "--db", store_url, "--day", "2026-07-14", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["station"] for r in rows] == ["1001", "1002"]
    assert rows[0]["expected"] == "576" and rows[0]["received"] == "552" and rows[0]["rain_complete"] == "False"
    assert main(["report", "--db", store_url, "--day", "2026-07-14", "--format", "json", "--station", "1002"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert [s["station"] for s in obj["stations"]] == [1002]
    assert obj["stations"][0]["elements"]["rain"] == {"expected": 144, "received": 144}
    assert main(["report", "--db", store_url, "--day", "yesterday"]) == 2
    assert capsys.readouterr().err.startswith("hydrolink: --day 'yesterday'")
