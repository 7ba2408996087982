"""The pages' content over a store on SQLite and PostgreSQL (app in-process)."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

from starlette.testclient import TestClient

from host_tools.center.store import as_rows, open_store
from host_tools.dashboard.app import create_app
from host_tools.dashboard.charts import COLUMNS, hydrograph_svg
from host_tools.dashboard.i18n import translator
from host_tools.dashboard.status import RANK
from host_tools.dashboard.timefmt import station_zone
from tests.dashboard import fleet
from tests.dashboard.conftest import Clock, login, token


def rows(html: str) -> list[tuple[int, list[str]]]:
    return [(int(s), states.split()) for s, states in
            re.findall(r'data-station="(\d+)" data-state="([^"]+)"', html)]


def test_overview_states_worst_first(db_url: str, tmp_path: Path) -> None:
    app = create_app(db_url, clock=Clock(fleet.NOW + 30), overview_ttl_s=0.0)
    with TestClient(app, base_url="http://127.0.0.1:8080") as c:
        assert login(c, "vic") == 303
        html = c.get("/").text
    got = rows(html)
    assert {s: states[0] for s, states in got} == fleet.EXPECTED
    ranks = [RANK[states[0]] for _, states in got]
    assert ranks == sorted(ranks)
    assert got[0][0] == 1001 and got[-1][0] == 1002
    row = html[html.index('data-station="1001"'):html.index('data-station="1003"')]
    assert "70.2" in row or "70.9" in row or "70." in row  # the level, in m
    assert "超汛限水位" in row                              # the active center alarm, labelled
    assert "2026-05-29 04:25 CST" in row                 # last seen, local time with its zone (20:25Z)
    m = re.search(r'<td class="num">([\d.]+)</td>\s*<td class="num">([\d.]+)</td>', row)
    assert m and (float(m.group(1)), float(m.group(2))) == (0.0, 57.6)  # rain 1 h, 24 h: 48 x 1.2 mm


def test_overview_refreshes_after_a_reading(sqlite_url: str) -> None:
    clock = Clock(fleet.NOW + 30)
    app = create_app(sqlite_url, clock=clock, overview_ttl_s=0.5)
    with TestClient(app, base_url="http://127.0.0.1:8080") as c:
        assert login(c, "vic") == 303
        page = c.get("/").text
        version = re.search(r'data-version="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
        assert c.get(f"/overview/table?v={version}").status_code == 204  # nothing new
        store = open_store(sqlite_url)
        try:
            store.upsert_observations(as_rows({"water_level": [(fleet.NOW + 300, 71.234, "good")]},
                                              1002, fleet.NOW + 310))
        finally:
            store.close()
        deadline = time.monotonic() + 5.0
        while True:
            r = c.get(f"/overview/table?v={version}")
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert r.status_code == 200 and "71.234" in r.text
        assert r.headers["x-overview-version"] != version
        # 71.234 m is above the 70 m flood limit: station 1002 is now in alarm
        assert dict(rows(r.text))[1002][0] == "alarm"


def test_station_page_chart_is_the_stored_series(db_url: str) -> None:
    app = create_app(db_url, clock=Clock(fleet.NOW + 30))
    with TestClient(app, base_url="http://127.0.0.1:8080") as c:
        assert login(c, "vic") == 303
        html = c.get("/station/1001").text
        week = c.get("/station/1001?span=7d").text
    store = open_store(db_url)
    try:
        level = store.observations(1001, "water_level", fleet.NOW + 30 - 86400, fleet.NOW + 30)
    finally:
        store.close()
    values = [o.value for o in level if o.value is not None]
    g = re.search(r'<g class="series" data-series="water_level" ([^>]*)>', html)
    assert g
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', g.group(1)))
    assert int(attrs["n"]) == len(values) == 288
    assert float(attrs["min"]) == round(min(values), 3) and float(attrs["max"]) == round(max(values), 3)
    assert float(attrs["last"]) == values[-1]
    rain = re.search(r'data-series="rain" data-n="(\d+)" data-total="([\d.]+)"', html)
    assert rain and float(rain.group(2)) == 57.6
    assert html.count('class="stage"') == 4 and "汛限水位 70" in html
    assert "(CST Asia/Shanghai)</text>" in html         # the axis's zone
    assert re.search(r"<td>水位</td><td class=\"num\">288</td><td class=\"num\">288</td>", html)
    assert 'data-series="battery"' in html and 'data-series="clock_offset"' in html
    assert "water level reached flood_limit" in html    # the center alarm
    assert html.count('class="alarm-mark" data-kind="stage_flood_limit"') == 1  # marked on the chart
    assert "7天" in week and "2016" in week              # 7 d: 2,016 expected readings


def line_pixels(chart: str) -> list[list[tuple[float, float]]]:
    """The level's polylines in pixels: their data coordinates through the series' transform."""
    m = re.search(r'data-series="water_level"[^>]*transform="matrix\(([^)]*)\)"', chart)
    assert m
    a, b, c, d, e, f = map(float, m.group(1).split())
    assert b == c == 0
    return [[(e + a * float(x), f + d * float(y)) for x, y in (p.split(",") for p in line.split())]
            for line in re.findall(r'points="([^"]+)"', chart)]


def test_month_thinned_in_sql_keeps_what_the_store_has(db_url: str) -> None:
    """30 days of 5-minute level (8,640 readings, a fault gap, a one-reading spike): the
    page reads them thinned per pixel column in SQL; the chart still carries the store's
    count, extremes, first and last, its line breaks at the gap and reaches the spike."""
    now = fleet.NOW + 30
    start = now - 30 * 86400
    times = range(fleet.NOW - 30 * 86400, fleet.NOW + 1, 300)  # from 30 s before the window
    level = [(t, round(65.0 + 0.5 * math.sin(t / 40_000), 3), "good") for t in times]
    spike = len(level) // 3
    level[spike] = (level[spike][0], 69.875, "good")
    for i in range(2 * len(level) // 3, 2 * len(level) // 3 + 12):
        level[i] = (level[i][0], None, "fault")
    rain = [(t, 0.5 if (t // 3600) % 50 == 0 else 0.0, "good") for t in times]
    store = open_store(db_url)
    try:
        store.upsert_observations(as_rows({"water_level": level, "rain": rain}, 1002, fleet.NOW))
        stored = [o for o in store.observations(1002, "water_level", start, now)]
        rained = [o.value for o in store.observations(1002, "rain", start, now) if o.value is not None]
    finally:
        store.close()
    values = [o.value for o in stored if o.value is not None]
    assert len(stored) > 8000 and max(values) == 69.875
    app = create_app(db_url, clock=Clock(now), overview_ttl_s=0.0)
    with TestClient(app, base_url="http://127.0.0.1:8080") as c:
        assert login(c, "vic") == 303
        html = c.get("/station/1002?span=30d").text
    g = re.search(r'<g class="series" data-series="water_level" ([^>]*)>', html)
    assert g
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', g.group(1)))
    assert int(attrs["n"]) == len(values)
    assert (float(attrs["min"]), float(attrs["max"])) == (round(min(values), 3), 69.875)
    assert (float(attrs["first"]), float(attrs["last"])) == (values[0], values[-1])
    chart = html[html.index('data-series="water_level"'):html.index("</g>", html.index('data-series="water_level"'))]
    lines = line_pixels(chart)
    ys = [y for line in lines for _, y in line]
    assert len(lines) == 2 and len(ys) <= 4 * COLUMNS  # the gap breaks it; thinned
    assert abs(min(ys) - float(attrs["ymin-px"])) < 0.11 and abs(max(ys) - float(attrs["ymax-px"])) < 0.11
    r = re.search(r'data-series="rain" data-n="(\d+)" data-total="([\d.]+)"', html)
    assert r and int(r.group(1)) == len(rained) and float(r.group(2)) == round(sum(rained), 1)
    # completeness counts the readings in (start, end]
    got = sum(1 for o in stored if o.value is not None and o.time > start)
    assert re.search(rf'<td>水位</td><td class="num">{got}</td><td class="num">8640</td>', html)


def _series(html: str, name: str) -> dict[str, str]:
    g = re.search(rf'<g class="series" data-series="{name}" ([^>]*)>', html)
    assert g
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', g.group(1)))


def test_week_from_the_rollup_follows_late_readings_and_corrections(db_url: str) -> None:
    """The 7-day page reads whole hours from the hourly rollup. A reading that arrives late
    for an hour five days back, a person's correction three days back and a rain reading in
    an old hour all show on the next page, as the store has them, though no background
    catch-up ran in between (the page catches up the station first)."""
    now = fleet.NOW + 30
    start = now - 7 * 86400
    times = range(fleet.NOW - 7 * 86400, fleet.NOW + 1, 300)
    store = open_store(db_url)
    try:
        store.upsert_observations(as_rows({
            "water_level": [(t, round(65.0 + 0.5 * math.sin(t / 40_000), 3), "good") for t in times],
            "rain": [(t, 0.5 if (t // 3600) % 50 == 0 else 0.0, "good") for t in times]}, 1002, fleet.NOW))
    finally:
        store.close()
    app = create_app(db_url, clock=Clock(now), overview_ttl_s=0.0)

    def truth() -> tuple[list[float], float, int]:
        store = open_store(db_url)
        try:
            level = [o.value for o in store.observations(1002, "water_level", start, now) if o.value is not None]
            rain = [o.value for o in store.observations(1002, "rain", start, now) if o.value is not None]
        finally:
            store.close()
        return level, round(sum(rain), 1), len(rain)

    with TestClient(app, base_url="http://127.0.0.1:8080") as c:
        assert login(c, "vic") == 303
        before = c.get("/station/1002?span=7d").text
        late, fixed = fleet.NOW - 5 * 86400 + 150, fleet.NOW - 3 * 86400 - 3600
        store = open_store(db_url)
        try:
            assert not store.observations(1002, "water_level", late, late)  # (a time between readings)
            store.upsert_observations([(1002, "water_level", late, 74.5, "good", float(now)),
                                       (1002, "rain", late, 12.5, "good", float(now))])
            old = store.observations(1002, "water_level", fixed, fixed)[0].value
            assert old is not None
            assert store.correct(1002, "water_level", fixed, 40.25, who="qc", why="test")
        finally:
            store.close()
        after = c.get("/station/1002?span=7d").text
    level, rain_total, rain_n = truth()
    b, a = _series(before, "water_level"), _series(after, "water_level")
    assert int(a["n"]) == int(b["n"]) + 1 == len(level)
    assert (float(a["min"]), float(a["max"])) == (40.25, 74.5) == (min(level), max(level))
    assert (float(a["first"]), float(a["last"])) == (level[0], level[-1])
    r = _series(after, "rain")
    assert (float(r["total"]), int(r["n"]), r["bin-s"]) == (rain_total, rain_n, "3600")
    assert float(r["total"]) == round(float(_series(before, "rain")["total"]) + 12.5, 1)
    # the line's highest and lowest points are where the new values map
    at = after.index('data-series="water_level"')
    chart = after[at:after.index("</g>", at)]
    ys = [y for line in line_pixels(chart) for _, y in line]
    assert abs(min(ys) - float(a["ymin-px"])) < 0.11 and abs(max(ys) - float(a["ymax-px"])) < 0.11
    assert len(ys) < 5 * 24 * 7  # hours' envelopes, not the 2,016 readings


def test_overview_refresh_bound() -> None:
    """A stored reading reaches an open overview within 5 s: at most one recomputation period
    (the app's default ttl) until a computation starts, the computation (0.2 s for 1,000
    stations in bench/dashboard.py), and one poll period of the page, read from the real
    template and app: the two periods must leave the computation at least a second."""
    import inspect

    from host_tools.dashboard.web import TEMPLATES

    page = (TEMPLATES / "overview.html").read_text()
    polls = [int(ms) for ms in re.findall(r"setTimeout\(poll, (\d+)\)", page)]
    ttl = inspect.signature(create_app).parameters["overview_ttl_s"].default
    assert polls and ttl > 0
    assert ttl + max(polls) / 1000 <= 4.0, (ttl, polls)


def test_chart_line_extremes_sit_where_the_data_maps() -> None:
    start = fleet.NOW - 86400
    level = [(t, fleet.level_at(1001, t)) for t in range(start + 300, fleet.NOW + 1, 300)]
    svg = hydrograph_svg(level, [], start, fleet.NOW, station_zone("Asia/Shanghai"), {"flood_limit": 70.0},
                         300, translator("en"))
    ys = [y for line in line_pixels(svg) for _, y in line]
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', svg))
    assert abs(min(ys) - float(attrs["ymin-px"])) < 0.11 and abs(max(ys) - float(attrs["ymax-px"])) < 0.11
    assert "flood-limit level 70" in svg
    # a gap breaks the line: two polylines
    gap = level[:100] + [(t, None) for t, _ in level[100:110]] + level[110:]
    svg = hydrograph_svg(gap, [], start, fleet.NOW, station_zone("UTC"), {}, 300, translator("en"))
    assert svg.count("<polyline") == 2


def test_language_switch(client: TestClient) -> None:
    assert login(client, "vic") == 303
    page = client.get("/")
    assert "<h1>总览" in page.text and ">Overview<" not in page.text
    client.post("/lang", data={"csrf_token": token(page.text), "lang": "en", "next": "/alarms"})
    page = client.get("/alarms")
    assert "<h1>Alarms</h1>" in page.text and "above flood-limit level" in page.text
    assert "告警" not in page.text.split("<main>")[1] and 'lang="en"' in page.text


def test_station_page_lists_commands_and_results(client: TestClient, spool_path: str) -> None:
    from host_tools.gateway.spool import Spool

    spool = Spool(spool_path)
    try:
        cid = spool.queue_command(1001, 4, None)
        spool.db.execute("UPDATE commands SET result = 0, detail = ?, done = ? WHERE id = ?",
                         ('{"sent": true}', fleet.NOW, cid))
    finally:
        spool.close()
    assert login(client, "vic") == 303
    html = client.get("/station/1001").text
    table = html[html.index('id="commands"'):]
    assert "test_report" in table and ">ok<" in table and "sent" in table
