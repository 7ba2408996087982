"""A station's state from its facts (pure)."""

from __future__ import annotations

from host_tools.dashboard.status import Facts, conditions, stage_position

NOW = 1_780_000_000.0


def state(age: float | None, period: float | None = None, **kw: object) -> list[str]:
    return conditions(Facts(now=NOW, interval_s=300, last_seen=None if age is None else NOW - age,
                            period_s=period, **kw))  # type: ignore[arg-type]


def test_late_and_silent_follow_the_report_period() -> None:
    # reporting every 5 min: late past 7.5 min, silent at 20 min
    assert state(400) == ["ok"] and state(451) == ["late"] and state(1200) == ["silent"]
    # recording every 5 min, reporting hourly (the firmware default): late at 62.5, silent at 75 min
    assert state(40 * 60, 3600) == ["ok"]
    assert state(63 * 60, 3600) == ["late"]
    assert state(75 * 60, 3600) == ["silent"]
    assert state(None) == ["silent"]                      # never heard of
    assert state(60, alarms={"silent_intervals": 1}) == ["ok"]
    assert state(600, alarms={"silent_intervals": 1}) == ["silent"]


def test_conditions_worst_first() -> None:
    got = state(5000, stages={"warning": 68.0}, level_m=68.2, qualities={"rain": "fault"},
                battery_v=11.0, alarms={"battery_low_v": 11.8})
    assert got == ["alarm", "silent", "fault", "battery"]
    assert state(60, active_alarms={"rain_1h"}) == ["alarm"]
    assert state(60, active_alarms={"battery_low"}) == ["battery"]
    assert state(60, active_alarms={"silent"}) == ["silent"]   # the watch said so


def test_stage_position() -> None:
    stages = {"action": 66.5, "warning": 68.0, "guarantee": 71.5}
    assert stage_position(67.0, stages) == ("action", "warning", -1.0)
    assert stage_position(72.0, stages) == ("guarantee", "guarantee", 0.5)
    assert stage_position(60.0, stages) == (None, "action", -6.5)
    assert stage_position(None, stages) == (None, None, None)
