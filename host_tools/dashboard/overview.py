"""The overview's rows, worst first, computed every ``ttl_s`` once for all viewers.

Every screen in the dispatch room shows the same table, so one background thread
computes it every ``ttl_s`` (2 s) while anyone looks, and requests are served the newest
finished table without waiting; each version has a digest, and a page polls (every
1.5 s) with the digest it shows and gets the new table only when it changed. A reading
stored now appears within ``ttl_s`` + one computation + one poll period: 2 s + 0.1 to
0.7 s for 1,000 stations (bench/dashboard.py) + 1.5 s.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from protocol.elements import BY_NAME

from .database import Periods, Rollups, StationFacts, StationsCache, Stores, overview_facts
from .status import Facts, conditions, sort_key, stage_position
from .timefmt import fmt_time, station_zone, zone

SHOWN_ELEMENTS = ("water_level", "rain", "battery_voltage")


@dataclass(frozen=True)
class Value:
    element: str
    text: str
    unit: str
    quality: str


@dataclass(frozen=True)
class Row:
    """One station's line of the overview."""

    station: int
    name: str
    conditions: tuple[str, ...]
    values: tuple[Value, ...]
    rain_1h: float | None
    rain_24h: float | None
    level: float | None
    stage_reached: str | None
    stage_ref: str | None
    stage_diff: float | None
    stages: tuple[tuple[str, float], ...]
    last_seen: str
    zone: str
    alarms: tuple[str, ...]


def fmt_value(element: str, value: float | None) -> str:
    if value is None:
        return "-"
    e = BY_NAME.get(element)
    decimals = max(0, len(f"{e.scale:g}".split(".")[1]) if e and "." in f"{e.scale:g}" else 0)
    return f"{value:.{decimals}f}"


def _state_facts(f: StationFacts, now: float) -> Facts:
    m = f.meta
    level = f.latest.get("water_level")
    return Facts(now=now, interval_s=m.record_interval_s, last_seen=f.last_seen,
                 active_alarms={a.kind for a in f.alarms},
                 qualities={e: o.quality for e, o in f.latest.items()},
                 level_m=level.value if level else None, battery_v=f.battery_v, stages=m.stages,
                 alarms=m.alarms, period_s=f.period_s)


def build_row(f: StationFacts, now: float) -> Row:
    m = f.meta
    tz = station_zone(m.timezone)
    level = f.latest.get("water_level")
    level_v = level.value if level else None
    conds = conditions(_state_facts(f, now))
    order = [e for e in SHOWN_ELEMENTS if e in f.latest] + sorted(
        e for e in f.latest if e not in SHOWN_ELEMENTS)
    values = tuple(Value(e, fmt_value(e, f.latest[e].value),
                         BY_NAME[e].unit if e in BY_NAME else "", f.latest[e].quality) for e in order)
    reached, ref, diff = stage_position(level_v, m.stages)
    return Row(
        station=m.station, name=m.name, conditions=tuple(conds), values=values,
        rain_1h=f.rain_1h, rain_24h=f.rain_24h, level=level_v, stage_reached=reached,
        stage_ref=ref, stage_diff=diff, stages=tuple(sorted(m.stages.items(), key=lambda kv: kv[1])),
        last_seen=fmt_time(f.last_seen, tz) if f.last_seen is not None else "",
        zone=zone(tz, now), alarms=tuple(sorted({a.kind for a in f.alarms})))


def build_rows(facts: list[StationFacts], now: float) -> list[Row]:
    rows = [build_row(f, now) for f in facts]
    rows.sort(key=lambda r: sort_key(list(r.conditions), r.name, r.station))
    return rows


@dataclass(frozen=True)
class Snapshot:
    rows: tuple[Row, ...]
    digest: str
    computed: float
    took_s: float


class OverviewCache:
    """The latest overview, shared by every request.

    With ``ttl_s`` > 0 one background thread recomputes it every ``ttl_s`` while someone
    has looked in the last minute, and a request never waits for a recomputation (it gets
    the newest finished one; only the very first request computes it itself). With
    ``ttl_s`` = 0 (tests) each request computes it."""

    IDLE_S = 60.0

    def __init__(self, stores: Stores, ttl_s: float = 2.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.stores = stores
        self.ttl_s = ttl_s
        self.clock = clock
        self.rollups: Rollups | None = None
        self._snap: Snapshot | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._wanted = 0.0
        self.renders: dict[tuple[str, str], bytes] = {}  # (digest, lang) -> table html
        self.periods = Periods()
        self.stations = StationsCache(stores, 10.0)  # the registry: read every 10 s, not 2
        self._built: dict[int, tuple[StationFacts, Row]] = {}  # station -> (facts, its row)
        self._keys: dict[Row, str] = {}
        self._row_html: dict[tuple[Row, str], str] = {}

    def _compute(self) -> Snapshot:
        t0 = time.monotonic()
        now = self.clock()
        metas = list(self.stations.all().values())
        rows = tuple(self._rows(overview_facts(self.stores.get(), int(now), self.periods, metas), now))
        digest = hashlib.sha256("\n".join(self._key(r) for r in rows).encode()).hexdigest()[:16]
        if self._snap is None or digest != self._snap.digest:
            self.renders.clear()
        self._snap = Snapshot(rows, digest, time.monotonic(), time.monotonic() - t0)
        return self._snap

    def _rows(self, facts: list[StationFacts], now: float) -> list[Row]:
        """:func:`build_rows`, building again only the rows whose facts or conditions
        changed since the last time (most stations' did not, 2 s later)."""
        out = []
        built: dict[int, tuple[StationFacts, Row]] = {}
        for f in facts:
            old = self._built.get(f.meta.station)
            row = old[1] if old is not None and old[0] == f else None
            if row is not None and (tuple(conditions(_state_facts(f, now))) != row.conditions
                                    or zone(station_zone(f.meta.timezone), now) != row.zone):
                row = None
            if row is None:
                row = build_row(f, now)
            built[f.meta.station] = (f, row)
            out.append(row)
        self._built = built
        out.sort(key=lambda r: sort_key(list(r.conditions), r.name, r.station))
        return out

    def _key(self, row: Row) -> str:
        key = self._keys.get(row)
        if key is None:
            key = repr(row)
            if len(self._keys) > 4 * max(1, len(self._built)):
                self._keys.clear()
            self._keys[row] = key
        return key

    def row_html(self, row: Row, lang: str, render: Callable[[Row], str]) -> str:
        """One row's HTML in ``lang``, rendered once while the row stays the same."""
        html = self._row_html.get((row, lang))
        if html is None:
            html = render(row)
            if len(self._row_html) > 8 * max(1, len(self._built)):
                self._row_html.clear()
            self._row_html[(row, lang)] = html
        return html

    def get(self) -> Snapshot:
        self._wanted = time.monotonic()
        if self.ttl_s <= 0:
            with self._lock:
                return self._compute()
        snap = self._snap
        if snap is None:
            with self._lock:  # single flight: the others wait and take its result
                snap = self._snap or self._compute()
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name="overview", daemon=True)
                    self._thread.start()
        return snap

    def _loop(self) -> None:
        import logging

        while not self._stop:
            self._wake.wait(self.ttl_s)
            self._wake.clear()
            if self._stop or time.monotonic() - self._wanted > self.IDLE_S:
                continue
            try:
                with self._lock:
                    self._compute()
                if self.rollups is not None:  # the station pages' hourly rollup, between overviews
                    self.rollups.catch_up(self.stores.get())
            except Exception as e:  # a database that went away: keep the last table, try again
                logging.getLogger("hydrolink.dashboard").warning(
                    "overview refresh failed", extra={"fields": {"error": f"{type(e).__name__}: {e}"}})
                self.stores.discard()

    def invalidate(self) -> None:
        """Recompute now (after an acknowledge, for instance)."""
        if self.ttl_s > 0:
            self._wake.set()

    def close(self) -> None:
        """Stop the background thread and wait for it: the app closes the stores next, and a
        connection closed under a statement another thread is running can crash sqlite3."""
        self._stop = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(60)
