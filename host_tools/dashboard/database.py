"""The reads the pages need, on the center store; one store per worker thread.

The overview asks for 1,000 stations at once, so it does not call the store's
per-station methods in a loop: it runs a few statements that each answer for a
chunk of stations, every lookup an index seek on the primary keys ((station,
element, time) for observations, (station, time, seq) for status). "Last seen" is the
newest ``received`` of the station's latest reading of each element, its latest status
frame and its latest alarm frame: what the center last got from it without scanning
its history (the store has no index on ``received``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from host_tools.center import rollup
from host_tools.center.model import CenterAlarm, Obs, StationMeta
from host_tools.center.store import Store, open_store

CHUNK = 400  # (station, element) pairs per statement: 800 parameters


class Stores:
    """One :class:`Store` per thread on the same URL (the store is not thread-safe)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._all: list[Store] = []
        self._lock = threading.Lock()

    def get(self) -> Store:
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            store = open_store(self.url)
            self._local.store = store
            with self._lock:
                self._all.append(store)
        return store

    def discard(self) -> None:
        """Forget this thread's store after an error (a database restarted under it): the
        next request of the thread opens a new connection."""
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            return
        self._local.store = None
        with self._lock:
            if store in self._all:
                self._all.remove(store)
        with contextlib.suppress(Exception):  # a broken connection may fail to close
            store.close()

    def close(self) -> None:
        with self._lock:
            for s in self._all:
                s.close()
            self._all.clear()
        self._local = threading.local()


class StationsCache:
    """The stations' registry metadata, read at most every ``ttl_s`` (it changes when the
    registry is synced, rarely; a station page should not parse 1,000 rows of it)."""

    def __init__(self, stores: Stores, ttl_s: float = 10.0) -> None:
        self.stores, self.ttl_s = stores, ttl_s
        self._at = -1e18
        self._by_id: dict[int, StationMeta] = {}
        self._lock = threading.Lock()

    def all(self) -> dict[int, StationMeta]:
        with self._lock:
            if time.monotonic() - self._at >= self.ttl_s:
                self._by_id = {m.station: m for m in self.stores.get().stations()}
                self._at = time.monotonic()
            return self._by_id

    def get(self, station: int) -> StationMeta | None:
        return self.all().get(station)


class Rollups:
    """Keeps the hourly rollup (:mod:`host_tools.center.rollup`) caught up for the long
    spans: :meth:`catch_up` from the overview's background thread every few seconds, and
    :meth:`fresh_for` before a long page, which catches up first if the station has
    readings or revisions the rollup has not seen (a page shows what is stored)."""

    ROUNDS = 20  # catch_up calls per run: a long backlog (a first start) is worked off in turns

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def catch_up(self, store: Store) -> None:
        with self._lock:  # one at a time per process (catch_up itself is safe across processes)
            for _ in range(self.ROUNDS):
                if not rollup.catch_up(store.db):
                    break

    def fresh_for(self, store: Store, station: int) -> None:
        rid = rollup.row_id(store.db)
        mark = "(SELECT last FROM obs_hourly_marks WHERE name = '{}')"
        rows = store.db.query(
            f"SELECT (SELECT 1 FROM observations WHERE {rid} > {mark.format('observations')}"
            f" AND +station = ? LIMIT 1), (SELECT 1 FROM revisions WHERE id > {mark.format('revisions')}"
            " AND +station = ? LIMIT 1)", (station, station))  # (+: by the row ids, not the station's rows)
        if rows[0][0] or rows[0][1]:
            self.catch_up(store)


class Periods:
    """Each station's report period, learned from when its readings of the last day arrived
    (:func:`host_tools.center.alarms.report_period`, the watch's rule), kept ``ttl_s``
    (spread over 0.5 .. 1.5 x ttl by station, so they are not all read again at once)."""

    def __init__(self, ttl_s: float = 600.0) -> None:
        self.ttl_s = ttl_s
        self._known: dict[int, tuple[float, float | None]] = {}  # station -> (until, period)

    def get(self, store: Store, meta: StationMeta, elements: Sequence[str], now: int) -> float | None:
        hit = self._known.get(meta.station)
        mono = time.monotonic()
        if hit is not None and mono < hit[0]:
            return hit[1]
        from host_tools.center.alarms import report_period

        stamps = store.received_since(meta.station, elements, now - 86400)
        period = report_period(stamps, meta.record_interval_s)
        self._known[meta.station] = (mono + self.ttl_s * (0.5 + (meta.station % 101) / 100), period)
        return period


@dataclass
class StationFacts:
    """What the overview shows of one station."""

    meta: StationMeta
    latest: dict[str, Obs] = field(default_factory=dict)
    last_seen: float | None = None
    rain_1h: float | None = None
    rain_24h: float | None = None
    battery_v: float | None = None
    alarms: list[CenterAlarm] = field(default_factory=list)
    period_s: float | None = None


def _chunks(seq: Sequence[Any], n: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def _values(rows: Sequence[tuple[Any, ...]]) -> tuple[str, list[Any]]:
    width = len(rows[0])
    one = "(" + ", ".join(["CAST(? AS BIGINT)"] + ["?"] * (width - 1)) + ")"
    return ", ".join([one] * len(rows)), [v for r in rows for v in r]


def packed(store: Store, cols: Sequence[str], rest: str, params: Sequence[Any] = (),
           with_: str = "") -> list[list[Any]]:
    """``with_ SELECT cols rest``, its rows as lists. On SQLite the rows come packed in one JSON
    text (one row for sqlite3 to step: it retakes the GIL for every row it steps, and with
    twenty requests in flight each retake can wait a switch interval)."""
    if store.dialect != "sqlite":
        return [list(r) for r in store.db.query(f"{with_} SELECT {', '.join(cols)} {rest}", params)]
    rows = store.db.query(f"{with_} SELECT json_group_array(json_array({', '.join(cols)})) {rest}", params)
    out: list[list[Any]] = orjson.loads(rows[0][0]) if rows and rows[0][0] else []
    return out


def station_elements(store: Store, meta: StationMeta) -> list[str]:
    """The station's elements: its registry ``sensors``, else what it has readings of."""
    return list(meta.sensors) or store.elements(meta.station)


def latest_many(store: Store, pairs: Sequence[tuple[int, str]]) -> dict[tuple[int, str], tuple[Obs, float]]:
    """The newest reading (and when it was received) of each (station, element)."""
    out: dict[tuple[int, str], tuple[Obs, float]] = {}
    for chunk in _chunks(pairs):
        vals, params = _values(chunk)
        rows = packed(
            store, ("o.station", "o.element", "o.time", "o.value", "o.quality", "o.flags", "o.received"),
            "FROM k JOIN observations o ON o.station = k.station AND o.element = k.element"
            " AND o.time = (SELECT MAX(time) FROM observations m"
            " WHERE m.station = k.station AND m.element = k.element)", params,
            f"WITH k (station, element) AS (VALUES {vals})")
        for s, e, t, v, q, f, r in rows:
            out[(int(s), e)] = (Obs(int(t), v, q, f), float(r))
    return out


def rain_many(store: Store, stations: Sequence[int], now: int) -> dict[int, tuple[float, float]]:
    """Rain in the last hour and the last 24 h before ``now``, per station, in mm."""
    out: dict[int, tuple[float, float]] = {}
    for chunk in _chunks(stations):
        vals, params = _values([(s,) for s in chunk])
        rows = packed(store, ("station", "h1", "h24"), "FROM (SELECT k.station AS station,"
                      " (SELECT SUM(value) FROM observations o WHERE o.station = k.station"
                      "  AND o.element = 'rain' AND o.time > ? AND o.time <= ?) AS h1,"
                      " (SELECT SUM(value) FROM observations o WHERE o.station = k.station"
                      "  AND o.element = 'rain' AND o.time > ? AND o.time <= ?) AS h24 FROM k) x",
                      [*params, now - 3600, now, now - 86400, now], f"WITH k (station) AS (VALUES {vals})")
        for s, h1, h24 in rows:
            out[int(s)] = (float(h1 or 0.0), float(h24 or 0.0))
    return out


def status_many(store: Store, stations: Sequence[int]) -> dict[int, tuple[float | None, float]]:
    """The latest status frame's battery voltage and received time, per station."""
    out: dict[int, tuple[float | None, float]] = {}
    for chunk in _chunks(stations):
        vals, params = _values([(s,) for s in chunk])
        rows = packed(store, ("s.station", "s.battery_v", "s.received"),
                      "FROM k JOIN status s ON s.station = k.station"
                      " AND s.time = (SELECT MAX(time) FROM status m WHERE m.station = k.station)",
                      params, f"WITH k (station) AS (VALUES {vals})")
        for s, b, r in rows:
            old = out.get(int(s))
            if old is None or float(r) > old[1]:
                out[int(s)] = (b, float(r))
    return out


def alarm_frames_seen(store: Store, stations: Sequence[int]) -> dict[int, float]:
    """When each station's latest alarm frame was received."""
    out: dict[int, float] = {}
    for chunk in _chunks(stations):
        vals, params = _values([(s,) for s in chunk])
        rows = packed(store, ("station", "r"), "FROM (SELECT k.station AS station, (SELECT MAX(received)"
                      " FROM station_alarms a WHERE a.station = k.station AND a.time = (SELECT MAX(time)"
                      " FROM station_alarms b WHERE b.station = k.station)) AS r FROM k) x",
                      params, f"WITH k (station) AS (VALUES {vals})")
        out.update({int(s): float(r) for s, r in rows if r is not None})
    return out


def overview_facts(store: Store, now: int, periods: Periods | None = None,
                   metas: Sequence[StationMeta] | None = None) -> list[StationFacts]:
    """Everything the overview shows, for every station of the registry (``metas``: the
    registry as read recently, else read now)."""
    metas = store.stations() if metas is None else metas
    facts = {m.station: StationFacts(m) for m in metas}
    elements = {m.station: station_elements(store, m) for m in metas}
    pairs = [(m.station, e) for m in metas for e in elements[m.station]]
    ids = [m.station for m in metas]
    for (s, e), (obs, received) in latest_many(store, pairs).items():
        f = facts[s]
        f.latest[e] = obs
        f.last_seen = max(f.last_seen or received, received)
    rainy = [m.station for m in metas if "rain" in facts[m.station].latest]
    for s, (h1, h24) in rain_many(store, rainy, now).items():
        facts[s].rain_1h, facts[s].rain_24h = h1, h24
    for s, (battery, received) in status_many(store, ids).items():
        f = facts[s]
        f.last_seen = max(f.last_seen or received, received)
        if "battery_voltage" not in f.latest:
            f.battery_v = battery
    for s, received in alarm_frames_seen(store, ids).items():
        facts[s].last_seen = max(facts[s].last_seen or received, received)
    for f in facts.values():
        bv = f.latest.get("battery_voltage")
        if bv is not None and bv.value is not None:
            f.battery_v = bv.value
    for a in store.center_alarms(active_only=True):
        if a.station in facts:
            facts[a.station].alarms.append(a)
    if periods is not None:
        for m in metas:
            facts[m.station].period_s = periods.get(store, m, elements[m.station], now)
    return list(facts.values())


def completeness(store: Store, station: int, element: str, start: int, end: int,
                 interval_s: int) -> tuple[int, int]:
    """(received, expected) readings of an element in ``(start, end]``; expected from the
    record interval, received counting only slots with a value."""
    rows = store.db.query(
        "SELECT COUNT(*) FROM observations WHERE station = ? AND element = ? AND time > ?"
        " AND time <= ? AND value IS NOT NULL", (station, element, start, end))
    return int(rows[0][0]), max(0, (end - start) // max(1, interval_s))
