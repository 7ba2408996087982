"""Rain statistics and regular series against hand-computed cases."""

from __future__ import annotations

import datetime as dt

from host_tools.center.rain import (
    daily_totals,
    level_days,
    rain_day_bounds,
    rain_day_of,
    storms,
    time_above,
    total,
    window_maxima,
)
from host_tools.center.series import gaps, regular

T0 = 1_780_000_200  # a multiple of 300: 2026-05-28T20:30:00Z
IV = 300


def rain(pairs: list[tuple[int, float]]) -> list[tuple[int, float | None, str]]:
    """Readings at T0 + k*IV with the given mm; every other slot 0.0 mm, good."""
    return [(T0 + k * IV, v, "good") for k, v in pairs]


def test_regular_fills_missing_slots_and_keeps_off_grid_readings() -> None:
    rows = [(T0, 1.0, "good"), (T0 + 2 * IV, 2.0, "suspect"), (T0 + 2 * IV + 60, 3.0, "manual")]
    out = regular(rows, T0, T0 + 3 * IV, IV)
    assert [(r.time - T0, r.value, r.quality) for r in out] == [
        (0, 1.0, "good"), (IV, None, "missing"), (2 * IV, 2.0, "suspect"),
        (2 * IV + 60, 3.0, "manual"), (3 * IV, None, "missing")]


def test_gaps_are_runs_of_slots_without_value() -> None:
    rows = [(T0 + k * IV, 0.0, "good") for k in (0, 1, 4, 5, 9)] + [(T0 + 6 * IV, None, "fault")]
    g = gaps(rows, T0, T0 + 9 * IV, IV)
    assert [(x.start - T0, x.end - T0, x.slots) for x in g] == [(2 * IV, 3 * IV, 2), (6 * IV, 8 * IV, 3)]
    assert [x.slots for x in gaps(rows, T0, T0 + 9 * IV, IV, min_slots=3)] == [3]


def test_window_maxima_hand_computed() -> None:
    # 12 five-minute slots = 1 h; 40 slots of rain, dry except these:
    vals = {3: 2.0, 10: 1.0, 11: 4.0, 12: 3.0, 20: 6.0, 30: 0.5}
    rows = rain([(k, vals.get(k, 0.0)) for k in range(40)])
    m = window_maxima(rows, IV)
    one = m[3600]
    assert one is not None
    # 1 h windows (e-3600, e] hold 12 readings. Best: k=9..20 -> 1+4+3+6 = 14 mm, ending at k=20.
    assert one.total == 14.0 and one.end == T0 + 20 * IV and one.start == T0 + 8 * IV
    assert one.complete  # 12 readings in the window
    three = m[3 * 3600]
    assert three is not None and three.total == 16.5  # every drop fits in 36 slots ending at k=30
    assert three.end == T0 + 30 * IV
    assert not three.complete  # only 31 readings exist before k=30, 36 needed


def test_window_tie_takes_the_earliest() -> None:
    rows = rain([(0, 5.0), (50, 5.0)])
    one = window_maxima(rows, IV, (3600,))[3600]
    assert one is not None and one.end == T0 and one.total == 5.0


def test_window_maxima_none_without_readings() -> None:
    assert window_maxima([(T0, None, "missing")], IV, (3600,)) == {3600: None}


def test_storms_split_by_dry_spell_and_flag_holes() -> None:
    # storm A: k=0..2; 2 h dry; storm B at k=26 (k=2 -> k=26 is 24 slots = 2 h > dry 1.5 h)
    rows = rain([(0, 1.0), (1, 2.0), (2, 0.5), (26, 4.0), (27, 1.0)])
    rows += [(T0 + k * IV, 0.0, "good") for k in range(3, 26)]
    s = storms(rows, IV, dry_s=5400)
    assert [(x.start - T0, x.end - T0, x.total, x.peak) for x in s] == [
        (-IV, 2 * IV, 3.5, 2.0), (25 * IV, 27 * IV, 5.0, 4.0)]
    assert all(x.complete for x in s)
    # one dry spell just shorter than the threshold joins them
    assert len(storms(rows, IV, dry_s=24 * IV)) == 1
    # a missing reading inside storm B makes it incomplete
    holed = [*rows, (T0 + 28 * IV, None, "missing"), (T0 + 29 * IV, 2.0, "good")]
    s2 = storms(holed, IV, dry_s=5400)
    assert s2[1].total == 7.0 and not s2[1].complete and s2[0].complete
    assert [x.total for x in storms(rows, IV, dry_s=5400, min_total=4.0)] == [5.0]


def test_rain_day_is_0800_to_0800_labelled_with_its_first_day() -> None:
    a, b = rain_day_bounds(dt.date(2026, 7, 14), "Asia/Shanghai")
    assert a == int(dt.datetime(2026, 7, 14, 0, 0, tzinfo=dt.UTC).timestamp())  # 08:00 +08
    assert b - a == 86400
    # the reading stamped 08:00 ends the previous rain day; 08:05 starts the new one
    assert rain_day_of(a, "Asia/Shanghai") == dt.date(2026, 7, 13)
    assert rain_day_of(a + 300, "Asia/Shanghai") == dt.date(2026, 7, 14)
    assert rain_day_of(a - 3600, "Asia/Shanghai") == dt.date(2026, 7, 13)  # 07:00 on the 14th
    a9, _ = rain_day_bounds(dt.date(2026, 7, 14), "Asia/Shanghai", 9)
    assert a9 - a == 3600


def test_daily_totals_and_incomplete_flag() -> None:
    tz = "Asia/Shanghai"
    a, b = rain_day_bounds(dt.date(2026, 7, 14), tz)
    rows = [(t, 0.1, "good") for t in range(a + IV, b + 1, IV)]  # 288 readings of 0.1 mm
    rows.append((a, 9.0, "good"))  # 08:00 on the 14th: belongs to the 13th
    rows.append((b + IV, 7.0, "good"))  # 08:05 on the 15th: belongs to the 15th
    days = daily_totals(rows, IV, tz, dt.date(2026, 7, 13), dt.date(2026, 7, 15))
    assert [(d.day.day, d.total, d.received, d.expected, d.complete) for d in days] == [
        (13, 9.0, 1, 288, False), (14, 28.8, 288, 288, True), (15, 7.0, 1, 288, False)]
    # drop one reading and flag it
    holed = [r for r in rows if r[0] != a + 10 * IV]
    d14 = daily_totals(holed, IV, tz, dt.date(2026, 7, 14), dt.date(2026, 7, 14))[0]
    assert d14.total == 28.7 and not d14.complete
    # 06:00 day start: the 14th's day starts two hours earlier and takes the 08:00 reading
    d6 = daily_totals(rows, IV, tz, dt.date(2026, 7, 14), dt.date(2026, 7, 14), start_hour=6)[0]
    assert d6.total == round(9.0 + 0.1 * (288 - 24), 6)


def test_total_over_a_span() -> None:
    rows = rain([(1, 1.0), (2, 2.0), (3, 4.0)])
    assert total(rows, IV, T0, T0 + 3 * IV) == (7.0, True)
    assert total(rows, IV, T0, T0 + 4 * IV) == (7.0, False)


def test_level_days_and_time_above() -> None:
    tz = "UTC"
    day0 = int(dt.datetime(2026, 7, 14, tzinfo=dt.UTC).timestamp())
    rows = [(day0 + k * IV, 60.0 + k * 0.01, "good") for k in range(288)]
    rows.append((day0 + 5 * IV, 99.0, "out_of_range"))  # not used
    rows.append((day0 + 86400, 70.0, "good"))  # next day
    d = level_days(rows, tz, dt.date(2026, 7, 14), dt.date(2026, 7, 16))
    assert d[0].max == 62.87 and d[0].max_time == day0 + 287 * IV
    assert d[0].min == 60.0 and d[0].min_time == day0
    assert d[0].mean == round(60.0 + 0.01 * 287 / 2, 6) and d[0].readings == 288
    assert d[1].max == 70.0 and d[1].readings == 1
    assert d[2].max is None and d[2].readings == 0
    above = time_above(rows, {"warning": 62.0, "guarantee": 71.0}, IV)
    # values >= 62.0: k = 200..287 (88 readings) plus the 70.0 next day
    assert above == {"warning": 89 * IV, "guarantee": 0}
