"""The simulator's inputs: storms, replayed rain, runoff, the reservoir, sensor faults, the battery."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim import runoff, weather
from sim.faults import Battery, Fault
from sim.sensors import Weather


def test_storms_are_a_function_of_the_seed_and_follow_the_season() -> None:
    a, b = weather.storms(4, 365), weather.storms(4, 365)
    assert a == b and a != weather.storms(5, 365)
    wet = sum(1 for s in a if abs((200 + s.start_s / 86400) % 365.25 - 200) < 60)
    dry = sum(1 for s in a if abs((200 + s.start_s / 86400) % 365.25 - 200 - 182) < 60)
    assert wet > 2 * dry  # the wet season has the storms
    assert all(1800 <= s.duration_s <= 86400 for s in a)
    gaps = [b.start_s - (a_.start_s + a_.duration_s) for a_, b in zip(a, a[1:], strict=False)]
    assert max(gaps) > 10 * 86400  # dry spells


@pytest.mark.parametrize("profile", ["huff1", "huff2", "huff3", "huff4", "block", "triangle"])
def test_a_storm_profile_keeps_its_depth(profile: str) -> None:
    s = weather.Storm(0, 6 * 3600, 42.0, profile)
    d = s.minute_depths()
    assert len(d) == 360 and abs(sum(d) - 42.0) < 1e-6 and min(d) >= 0
    peak = d.index(max(d)) / len(d)
    want = {"huff1": (0, .25), "huff2": (.25, .5), "huff3": (.5, .75), "huff4": (.75, 1.0),
            "block": (.45, .55), "triangle": (.45, .55)}[profile]
    assert want[0] <= peak <= want[1], (profile, peak)


def test_replay_csv(tmp_path: Path) -> None:
    t0 = 1_756_080_000
    p = tmp_path / "rain.csv"
    p.write_text(f"time,mm\n{t0},0\n2025-08-25T01:00:00Z,6.0\n{t0 + 7200},0\n")
    r = weather.replay_csv(p, t0, 1)
    assert abs(sum(r[:60]) - 6.0) < 1e-9 and abs(r[30] - 0.1) < 1e-9 and sum(r[60:]) == 0
    p.write_text("time,mm\n2025-08-25T00:00:00Z,1\nnot a time,2\n")
    with pytest.raises(weather.ReplayError, match=r"rain.csv:3: expected time,mm"):
        weather.replay_csv(p, t0, 1)


def test_river_rises_with_a_lag_and_recedes() -> None:
    rain = [0.0] * 3000
    for m in range(600, 660):
        rain[m] = 0.5  # 30 mm in an hour
    lv = runoff.river_level(rain)
    peak = lv.index(max(lv))
    assert peak > 660 + 60  # after the rain stopped: the lag
    assert max(lv) > lv[0] + 500
    assert lv[-1] < max(lv) - 0.8 * (max(lv) - lv[0])  # receding towards the base flow
    assert abs(lv[599] - lv[0]) < 1


def test_reservoir_is_held_by_its_spillway_near_the_flood_limit() -> None:
    rain = [0.0] * (3 * 1440)
    for m in range(600, 900):
        rain[m] = 0.25  # 75 mm in 5 h
    lv = runoff.reservoir_level(rain)
    assert 69_900 < lv[0] < 70_050
    assert 70_100 < max(lv) < 72_000  # over the crest while the flood passes
    assert lv[-1] < max(lv) - 0.5 * (max(lv) - 70_000)  # the spillway brings it back down


def test_battery_charges_by_day_and_sags_in_a_long_storm() -> None:
    dry = Battery(start_soc=0.5).millivolts([0.0] * 1440)
    assert dry[15 * 60] > dry[6 * 60]  # the sun charged it by mid-afternoon
    wet = Battery(start_soc=0.5).millivolts([0.05] * (3 * 1440))
    assert min(wet) < min(dry) and wet[-1] < dry[-1]


def test_transducer_faults() -> None:
    w = Weather(seed=1, days=1, rain_mm=[0.0] * 1500, level_true=[5000.0] * 1500,
                faults=[Fault("open", 60_000, 120_000), Fault("spike", 600_000, size=1000.0),
                        Fault("flat", 3_600_000, 7_200_000), Fault("noise", 0, size=2.0)])
    assert w.level_uv(90_000) == 0  # open loop: no current
    base = 4000 + 5000 * 16000 / 10000
    assert abs(w.level_uv(610_000) / 100 - (base + 1600)) < 20  # +1 m for one minute
    assert abs(w.level_uv(700_000) / 100 - base) < 20
    assert w.level_uv(20_000) != w.level_uv(21_000)  # noise, the same at each query
    assert w.level_uv(20_000) == w.level_uv(20_000)


def test_tipping_bucket_quantises_the_rain() -> None:
    rain = [0.0] * 1500
    for m in range(100, 160):
        rain[m] = 0.1  # 6 mm
    w = Weather(seed=2, days=1, rain_mm=rain)
    assert w.tips_between(0, 86_400_000) == 30  # 6 mm / 0.2 mm
    assert len(w.edges) >= len(w.tips)  # bounce adds closing edges
