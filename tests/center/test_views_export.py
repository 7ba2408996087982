"""``hydrolink export``: CSV parsed back, JSON, WaterML 2.0 validated offline, SL 323 tables read back."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from host_tools.center import Store, open_store
from host_tools.center.series import Reading, SeriesMeta
from host_tools.center.sl323 import intv
from host_tools.center.waterml import document, validate
from host_tools.cli import main
from tests.center import views_data as vd


@pytest.fixture
def filled(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    url = f"sqlite:///{tmp_path}/center.db"
    s = open_store(url)
    vd.fill(s, tmp_path)
    yield url, s
    s.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_csv_parses_back_with_header_gaps_and_units(filled: tuple[str, Store], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = filled
    out_file = tmp_path / "x.csv"
    code, _, err = run(capsys, "export", "--db", url, "--station", "1001", "--from", "2026-07-14T08:05",
                       "--to", "2026-07-15T08:00", "--element", "rain,level", "--format", "csv",
                       "-o", str(out_file))
    assert code == 0, err
    raw = out_file.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: a spreadsheet reads 高桥 as UTF-8
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    meta = {r[0]: r[1] for r in rows if r and r[0].startswith("#") and len(r) > 1}
    assert meta["#station"] == "1001" and meta["#name"] == "Gaoqiao 高桥"
    assert meta["#time_zone"] == "Asia/Shanghai" and meta["#record_interval_s"] == "300"
    assert meta["#element:rain"] == "mm" and meta["#element:water_level"] == "m"
    assert "#quality:missing" in meta and "#quality:fault" in meta
    head = next(i for i, r in enumerate(rows) if r and r[0] == "time_utc")
    assert rows[head] == ["time_utc", "time_local (Asia/Shanghai)", "rain (mm)", "rain_quality",
                          "water_level (m)", "water_level_quality"]
    table = rows[head + 1:]
    assert len(table) == 288  # every interval of the day, received or not
    assert table[0][:2] == ["2026-07-14T00:05:00Z", "2026-07-14 08:05:00"]
    by_time = {r[0]: r for r in table}
    gap_row = by_time["2026-07-14T08:20:00Z"]  # slot 100 = 08:20Z, inside the gap
    assert gap_row[2:] == ["", "missing", "", "missing"]
    assert sum(1 for r in table if r[3] == "missing") == len(vd.GAP)
    assert sum(float(r[2]) for r in table if r[2]) == pytest.approx(sum(vd.rain_mm(k) for k in range(289)))
    slot10 = by_time["2026-07-14T00:50:00Z"]
    assert slot10[4:] == ["70.5", "suspect"]


def test_csv_revisions_section(filled: tuple[str, Store], capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = filled
    code, out, _ = run(capsys, "export", "--db", url, "--station", "1001", "--from", "2026-07-14",
                       "--to", "2026-07-14", "--element", "level", "--revisions")
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    i = rows.index(["#revisions"])
    assert rows[i + 1][:4] == ["time_utc", "element", "old_value", "new_value"]
    rev = rows[i + 2]
    assert rev[:6] == ["2026-07-14T00:50:00Z", "water_level", repr(vd.level_m(10)), "70.5", "good", "suspect"]
    assert rev[7:] == ["qc", "spike"]


def test_json_export(filled: tuple[str, Store], capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = filled
    code, out, _ = run(capsys, "export", "--db", url, "--station", "1002", "--from", "2026-07-14T08:10",
                       "--to", "2026-07-14T09:00", "--format", "json", "--revisions")
    assert code == 0
    obj = json.loads(out)
    assert obj["station"] == 1002 and obj["record_interval_s"] == 600 and obj["revisions"] == []
    lv = next(s for s in obj["series"] if s["element"] == "water_level")
    assert lv["unit"] == "m" and len(lv["values"]) == 6  # 08:10 .. 09:00 every 10 min
    assert lv["values"][0] == {"time": "2026-07-14T00:10:00Z", "value": 11.01, "quality": "good"}


def test_waterml_validates_against_the_ogc_schema(filled: tuple[str, Store],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = filled
    code, out, _ = run(capsys, "export", "--db", url, "--station", "1001", "--from", "2026-07-14T16:00",
                       "--to", "2026-07-14T17:30", "--format", "waterml2")
    assert code == 0
    assert validate(out) == []
    from lxml import etree

    doc = etree.fromstring(out.encode())
    ns = {"wml2": "http://www.opengis.net/waterml/2.0", "xsi": "http://www.w3.org/2001/XMLSchema-instance",
          "xlink": "http://www.w3.org/1999/xlink"}
    series = doc.findall(".//wml2:MeasurementTimeseries", ns)
    assert len(series) == 2
    points = series[1].findall("wml2:point/wml2:MeasurementTVP", ns)
    assert len(points) == 19  # 16:00 .. 17:30 local, every 5 min
    nil = [p for p in points if p.find("wml2:value", ns).get(f"{{{ns['xsi']}}}nil") == "true"]
    assert len(nil) == 12  # the hour-long gap 16:20..17:15 local
    reason = nil[0].find(".//wml2:nilReason", ns)
    assert reason.get(f"{{{ns['xlink']}}}href") == "http://www.opengis.net/def/nil/OGC/0/missing"


def test_waterml_validation_catches_a_broken_document() -> None:
    m = SeriesMeta(1, "x", "water_level", "m", 300)
    good = document([(m, [Reading(1_800_000_000, 1.0, "good")])], generated=1_800_000_000,
                    start=1_800_000_000, end=1_800_000_000)
    assert validate(good) == []
    broken = good.replace("<wml2:value>1.0</wml2:value>", "<wml2:value>high</wml2:value>")
    assert validate(broken)
    no_result = good.replace("<om:result>", "<om:resultQuality>").replace("</om:result>", "</om:resultQuality>")
    assert validate(no_result)


def test_sl323_tables_read_back(filled: tuple[str, Store], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = filled
    target = tmp_path / "sl323.db"
    for _ in range(2):  # twice: the upsert writes each row once
        code, _, err = run(capsys, "export", "--db", url, "--station", "1001", "--from", "2026-07-14T08:00",
                           "--to", "2026-07-15T08:00", "--format", "sl323", "--to-db", f"sqlite:///{target}")
        assert code == 0, err
    code, _, err = run(capsys, "export", "--db", url, "--station", "1002", "--from", "2026-07-14T08:00",
                       "--to", "2026-07-15T08:00", "--format", "sl323", "--to-db", f"sqlite:///{target}")
    assert code == 0, err
    db = sqlite3.connect(target)
    pptn = db.execute("SELECT TM, DRP, INTV, DYP FROM ST_PPTN_R WHERE STCD = '00001001' ORDER BY TM").fetchall()
    wet = [k for k in range(1, 289) if vd.rain_mm(k) > 0]
    assert len(pptn) == len(wet) + 1  # wet intervals + the 08:00 day row
    assert pptn[0][0] == "2026-07-14 11:20:00" and pptn[0][1] == vd.rain_mm(40) and pptn[0][2] == 0.05
    day_row = pptn[-1]
    assert day_row[0] == "2026-07-15 08:00:00" and day_row[1] is None
    assert day_row[3] is None  # the day had an hour missing: no DYP rather than a partial one
    d2 = db.execute("SELECT TM, DYP FROM ST_PPTN_R WHERE STCD = '00001002' AND DYP IS NOT NULL").fetchall()
    assert d2 == [("2026-07-15 08:00:00", 1.8)]  # 9 x 0.2 mm, complete day
    rz = db.execute("SELECT COUNT(*), MAX(RZ) FROM ST_RSVR_R WHERE STCD = '00001001'").fetchone()
    assert rz[0] == 288 - len(vd.GAP) and rz[1] == 70.5  # the revised value is what is stored
    z = db.execute("SELECT COUNT(*) FROM ST_RIVER_R WHERE STCD = '00001002'").fetchone()
    assert z[0] == 144 - 1  # the fault reading is not written
    assert db.execute("SELECT WRZ, GRZ FROM ST_RVFCCH_B WHERE STCD = '00001002'").fetchone() == (12.0, 14.0)
    assert db.execute("SELECT FSLTDZ, BGMD, EDMD FROM ST_RSVRFSR_B WHERE STCD = '00001001'").fetchone() == (
        70.0, "0101", "1231")
    assert db.execute("SELECT STTP, STNM FROM ST_STBPRP_B ORDER BY STCD").fetchall() == [
        ("RR", "Gaoqiao 高桥"), ("ZZ", "Xiacun")]


def test_sl323_on_postgresql(filled: tuple[str, Store], postgres: object,
                             capsys: pytest.CaptureFixture[str]) -> None:
    import psycopg

    url, _ = filled
    target = postgres.new_database()  # type: ignore[attr-defined]
    code, _, err = run(capsys, "export", "--db", url, "--station", "1002", "--from", "2026-07-14T08:00",
                       "--to", "2026-07-15T08:00", "--format", "sl323", "--to-db", target)
    assert code == 0, err
    with psycopg.connect(target) as conn:
        dyp = conn.execute("SELECT tm, dyp FROM st_pptn_r WHERE dyp IS NOT NULL").fetchall()
        assert [(str(t), float(v)) for t, v in dyp] == [("2026-07-15 08:00:00", 1.8)]
        assert conn.execute("SELECT COUNT(*) FROM st_river_r").fetchone() == (143,)


def test_intv_notation() -> None:
    assert (intv(300), intv(3600), intv(5400), intv(43200)) == (0.05, 1.0, 1.3, 12.0)


def test_bad_input_is_one_line(filled: tuple[str, Store], capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = filled
    code, _, err = run(capsys, "export", "--db", url, "--station", "9", "--from", "2026-07-14", "--to", "2026-07-14")
    assert code == 2 and err.startswith("hydrolink: station 9 is not in the store") and err.count("\n") == 1
    code, _, err = run(capsys, "export", "--db", url, "--station", "1001", "--from", "July", "--to", "2026-07-14")
    assert code == 2 and "ISO 8601" in err and err.count("\n") == 1
    code, _, err = run(capsys, "export", "--db", url, "--station", "1001", "--from", "2026-07-14",
                       "--to", "2026-07-14", "--element", "snow")
    assert code == 2 and "unknown element 'snow'" in err
    code, _, err = run(capsys, "export", "--db", url, "--station", "1001", "--from", "2026-07-14",
                       "--to", "2026-07-14", "--format", "sl323")
    assert code == 2 and "--to-db" in err


def test_json_statistics(filled: tuple[str, Store], capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = filled
    code, out, _ = run(capsys, "export", "--db", url, "--station", "1001", "--from", "2026-07-14T08:05",
                       "--to", "2026-07-15T08:00", "--format", "json")
    assert code == 0
    st = json.loads(out)["statistics"]
    storm = st["rain"]["storms"]
    assert len(storm) == 1 and storm[0]["mm"] == sum(vd.rain_mm(k) for k in range(289))
    assert storm[0]["start"] == "2026-07-14T03:15:00Z" and storm[0]["end"] == "2026-07-14T05:45:00Z"
    one = st["rain"]["window_maxima"]["1h"]
    # the storm repeats 0.5, 1.0, 1.5, 2.0, 2.5 mm; the wettest hour has three 2.5 mm readings
    assert one["mm"] == 19.5 and one["complete"]
    day = st["rain"]["days"]
    assert [d["day"] for d in day] == ["2026-07-14"] and not day[0]["complete"]
    lv = st["water_level"]
    assert lv["time_above_s"]["guarantee"] == 0 and lv["time_above_s"]["warning"] > 0
    assert lv["days"][0]["max"] == 70.5
