"""Fill the SL 323 real-time rain and water regime tables from the center store.

Chinese flood-dispatch software reads the national real-time database layout
(SL 323-2011, 实时雨水情数据库表结构与标识符). :func:`fill` writes hydrolink's
readings into those tables in a target database (SQLite or PostgreSQL), creating
them with the standard columns when they are absent, and upserting on each table's
primary key, so running it again (or over an overlapping range) writes each row once.

Fields filled, and how:

- ``ST_STBPRP_B`` (测站基本属性): STCD, STNM, LGTD, LTTD, STTP (``PP`` rain,
  ``ZZ`` river level, ``RR`` reservoir), USFL = ``1``, MODITIME.
- ``ST_PPTN_R`` (降水量): one row per interval with rain > 0: TM (end of the
  interval, local time), DRP (mm in the interval, 0.1 mm), INTV (the interval in the
  table's hours.minutes form: 5 min = 0.05, 1 h = 1.00). At each rain-day boundary
  (08:00 local by default, the station's ``rain_day_start_hour``) a row with DYP =
  the total of the rain day that ends there (the 08:00 row of the 15th holds the
  14th's 08-08 total, as SL 323 stores it), written even when the day was dry;
  DYP is left NULL when that day's data were incomplete, so a partial total is
  never passed off as the day's rain. Missing intervals get no row (SL 323 has no
  quality column; use ``export --format csv`` to see them).
- ``ST_RIVER_R`` (河道水情): STCD, TM, Z (level, m, 3 decimals) for a river station.
- ``ST_RSVR_R`` (水库水情): STCD, TM, RZ (level above the dam, m) for a reservoir.
- ``ST_RVFCCH_B`` (河道站防洪指标): WRZ = the ``warning`` stage (警戒), GRZ = the
  ``guarantee`` stage (保证), MODITIME; river stations with either stage.
- ``ST_RSVRFSR_B`` (库(湖)站汛限水位): FSLTDZ = the ``flood_limit`` stage (汛限),
  BGMD ``0101``, EDMD ``1231`` (the registry has no flood-season dates), FSTP ``1``.

Only usable readings (quality good, suspect, manual, maintenance) are written.
STCD is the station id as eight digits (``00001001``); an id above 99,999,999 does
not fit SL 323's CHAR(8) and is refused. TM is the station's local time without a
zone (SL 323 stores Beijing time; a station without a ``timezone`` is taken as
Asia/Shanghai here).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from typing import Any

from host_tools.center.model import StationMeta
from host_tools.center.rain import daily_totals, rain_day_of
from host_tools.center.series import usable
from host_tools.center.views import ViewError, zone

DDL = {
    "ST_STBPRP_B": "STCD CHAR(8) NOT NULL PRIMARY KEY, STNM VARCHAR(30), RVNM VARCHAR(30), "
                   "HNNM VARCHAR(30), BSNM VARCHAR(30), LGTD NUMERIC(10,6), LTTD NUMERIC(10,6), "
                   "STLC VARCHAR(50), ADDVCD CHAR(6), DTMNM VARCHAR(16), DTMEL NUMERIC(7,3), "
                   "STTP CHAR(2), FRGRD CHAR(1), ESSTYM CHAR(6), BGFRYM CHAR(6), ATCUNIT VARCHAR(20), "
                   "ADMAUTH VARCHAR(20), LOCALITY VARCHAR(10), STBK CHAR(1), STAZT NUMERIC(5), "
                   "DSTRVM NUMERIC(6,1), DRNA NUMERIC(7), PHCD CHAR(6), USFL CHAR(1), COMMENTS VARCHAR(200), "
                   "MODITIME TIMESTAMP",
    "ST_PPTN_R": "STCD CHAR(8) NOT NULL, TM TIMESTAMP NOT NULL, DRP NUMERIC(5,1), INTV NUMERIC(5,2), "
                 "PDR NUMERIC(5,2), DYP NUMERIC(5,1), WTH CHAR(1), PRIMARY KEY (STCD, TM)",
    "ST_RIVER_R": "STCD CHAR(8) NOT NULL, TM TIMESTAMP NOT NULL, Z NUMERIC(7,3), Q NUMERIC(9,3), "
                  "XSA NUMERIC(9,3), XSAVV NUMERIC(5,3), XSMXV NUMERIC(5,3), FLWCHRCD CHAR(1), "
                  "WPTN CHAR(1), MSQMT CHAR(1), MSAMT CHAR(1), MSVMT CHAR(1), PRIMARY KEY (STCD, TM)",
    "ST_RSVR_R": "STCD CHAR(8) NOT NULL, TM TIMESTAMP NOT NULL, RZ NUMERIC(7,3), INQ NUMERIC(9,3), "
                 "W NUMERIC(9,3), BLRZ NUMERIC(7,3), OTQ NUMERIC(9,3), RWCHRCD CHAR(1), RWPTN CHAR(1), "
                 "INQDR NUMERIC(5,2), MSQMT CHAR(1), PRIMARY KEY (STCD, TM)",
    "ST_RVFCCH_B": "STCD CHAR(8) NOT NULL PRIMARY KEY, LDKEL NUMERIC(7,3), RDKEL NUMERIC(7,3), "
                   "WRZ NUMERIC(7,3), WRQ NUMERIC(9,3), GRZ NUMERIC(7,3), GRQ NUMERIC(9,3), "
                   "FLPQ NUMERIC(9,3), OBHTZ NUMERIC(7,3), OBHTZTM TIMESTAMP, IVHZ NUMERIC(7,3), "
                   "IVHZTM TIMESTAMP, OBMXQ NUMERIC(9,3), OBMXQTM TIMESTAMP, IVMXQ NUMERIC(9,3), "
                   "IVMXQTM TIMESTAMP, HMXS NUMERIC(9,3), HMXSTM TIMESTAMP, HMXAVV NUMERIC(9,3), "
                   "HMXAVVTM TIMESTAMP, TAQ NUMERIC(9,3), LAZ NUMERIC(7,3), SFQ NUMERIC(9,3), "
                   "MODITIME TIMESTAMP",
    "ST_RSVRFSR_B": "STCD CHAR(8) NOT NULL, BGMD CHAR(4) NOT NULL, EDMD CHAR(4), FSLTDZ NUMERIC(7,3), "
                    "FSLTDW NUMERIC(9,3), FSTP CHAR(1), MODITIME TIMESTAMP, PRIMARY KEY (STCD, BGMD)",
}
"""The SL 323 tables hydrolink fills, with their standard columns (SL 323-2011)."""

KEYS = {"ST_STBPRP_B": ("STCD",), "ST_PPTN_R": ("STCD", "TM"), "ST_RIVER_R": ("STCD", "TM"),
        "ST_RSVR_R": ("STCD", "TM"), "ST_RVFCCH_B": ("STCD",), "ST_RSVRFSR_B": ("STCD", "BGMD")}


def stcd(station: int) -> str:
    """SL 323's eight-character station code for a hydrolink id."""
    if not 0 < station <= 99_999_999:
        raise ViewError(f"station {station} does not fit SL 323's 8-character STCD; "
                        "export it with --format csv instead")
    return f"{station:08d}"


def kind(meta: StationMeta) -> str:
    """``reservoir``, ``river`` or ``rain``: the registry's kind, else from sensors and stages."""
    if meta.kind:
        return meta.kind
    if "flood_limit" in meta.stages:
        return "reservoir"
    return "river" if "water_level" in meta.sensors or meta.stages else "rain"


def intv(seconds: int) -> float:
    """An interval in SL 323's hours.minutes notation (300 s -> 0.05, 5400 s -> 1.30)."""
    h, m = divmod(seconds // 60, 60)
    return round(h + m / 100, 2)


class _Target:
    """The target database: SQLite (``?``) or PostgreSQL (psycopg, ``%s``)."""

    def __init__(self, url: str) -> None:
        self.pg = url.startswith(("postgresql://", "postgres://"))
        try:
            if self.pg:
                import psycopg

                self.conn: Any = psycopg.connect(url)
            elif url.startswith("sqlite:///"):
                self.conn = sqlite3.connect(url[len("sqlite:///"):])
            else:
                raise ViewError(f"--to-db {url!r}: use sqlite:///PATH or postgresql://HOST/DB")
        except (sqlite3.Error, OSError) as e:
            raise ViewError(f"cannot open the SL 323 database: {e}") from None
        except Exception as e:  # psycopg.OperationalError and friends
            if type(e).__module__.startswith("psycopg"):
                raise ViewError(f"cannot open the SL 323 database: {str(e).strip().splitlines()[0]}") from None
            raise

    def create(self) -> None:
        for table, cols in DDL.items():
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols})")

    def upsert(self, table: str, cols: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        if not rows:
            return 0
        keys = KEYS[table]
        mark = "%s" if self.pg else "?"
        sets = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in keys)
        sql = (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))}) "
               f"ON CONFLICT ({', '.join(keys)}) DO " + (f"UPDATE SET {sets}" if sets else "NOTHING"))
        if self.pg:
            with self.conn.cursor() as cur:
                cur.executemany(sql, rows)
        else:
            self.conn.executemany(sql, rows)
        return len(rows)

    def close(self, commit: bool) -> None:
        (self.conn.commit if commit else self.conn.rollback)()
        self.conn.close()


def _tm(t: int, tz: Any) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, tz).replace(tzinfo=None)


def fill(store: Any, to_url: str, stations: Sequence[int], start: int, end: int) -> int:
    """Write the stations' readings in ``[start, end]`` into the SL 323 tables at ``to_url``.

    Returns:
        How many rows were written (inserted or updated).
    """
    target = _Target(to_url)
    ok = False
    n = 0
    try:
        target.create()
        for sid in stations:
            meta = store.station(sid)
            if meta is None:
                raise ViewError(f"station {sid} is not in the store")
            n += _fill_station(store, target, meta, start, end)
        ok = True
    finally:
        target.close(ok)
    return n


def _fill_station(store: Any, target: _Target, meta: StationMeta, start: int, end: int) -> int:
    code = stcd(meta.station)
    tzname = meta.timezone or "Asia/Shanghai"  # SL 323 keeps Beijing time
    tz = zone(tzname)
    sqltz = _sqltime(target)
    now = sqltz(dt.datetime.now(tz).replace(tzinfo=None, microsecond=0))
    k = kind(meta)
    n = target.upsert("ST_STBPRP_B", ("STCD", "STNM", "LGTD", "LTTD", "STTP", "USFL", "MODITIME"),
                      [(code, meta.name[:30], meta.lon, meta.lat,
                        {"reservoir": "RR", "river": "ZZ"}.get(k, "PP"), "1", now)])
    interval = meta.record_interval_s
    rain = store.observations(meta.station, "rain", start, end)
    if rain:
        rows: dict[Any, list[Any]] = {}
        for r in rain:
            if usable(r) and r[1] > 0:
                tm = sqltz(_tm(int(r[0]), tz))
                rows[tm] = [code, tm, round(float(r[1]), 1), intv(interval), None]
        first = rain_day_of(start + 1, tzname, meta.rain_day_start_hour)
        last = rain_day_of(end, tzname, meta.rain_day_start_hour)
        for day in daily_totals(rain, interval, tzname, first, last, meta.rain_day_start_hour):
            if day.end > end:
                continue  # that day is not over within the range asked for
            tm = sqltz(_tm(day.end, tz))
            dyp = round(day.total, 1) if day.complete else None
            row = rows.setdefault(tm, [code, tm, None, None, None])
            row[4] = dyp
        n += target.upsert("ST_PPTN_R", ("STCD", "TM", "DRP", "INTV", "DYP"),
                           [rows[t] for t in sorted(rows)])
    if k in ("river", "reservoir"):
        table, col = ("ST_RSVR_R", "RZ") if k == "reservoir" else ("ST_RIVER_R", "Z")
        level = [(code, sqltz(_tm(int(r[0]), tz)), round(float(r[1]), 3))
                 for r in store.observations(meta.station, "water_level", start, end) if usable(r)]
        n += target.upsert(table, ("STCD", "TM", col), level)
    st = meta.stages
    if k == "river" and ("warning" in st or "guarantee" in st):
        n += target.upsert("ST_RVFCCH_B", ("STCD", "WRZ", "GRZ", "MODITIME"),
                           [(code, st.get("warning"), st.get("guarantee"), now)])
    if "flood_limit" in st:
        n += target.upsert("ST_RSVRFSR_B", ("STCD", "BGMD", "EDMD", "FSLTDZ", "FSTP", "MODITIME"),
                           [(code, "0101", "1231", st["flood_limit"], "1", now)])
    return n


def _sqltime(target: _Target) -> Any:
    """Local times as the target wants them: datetime for psycopg, ISO text for SQLite."""
    if target.pg:
        return lambda d: d
    return lambda d: d.strftime("%Y-%m-%d %H:%M:%S")
