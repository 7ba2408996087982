"""The station registry: one TOML file listing every station, its key and metadata.

The decoder, the encoder and the gateway read the same file. Each station is a
``[[station]]`` table::

    [[station]]
    id = 1001                       # 1 .. 1073741823 (2^30-1), unique
    name = "Gaoqiao upstream"
    key = "d355e252...8e3b4c"       # 64 hex digits: the station's 32-byte HMAC key
    sensors = ["rain", "water_level", "battery_voltage"]   # optional, names from elements.csv
    timezone = "Asia/Shanghai"      # optional, for display only: frames are UTC
    notes = "left bank, staff gauge 0 = 65.000 m"          # optional
    location = { lat = 29.871, lon = 119.642, elevation_m = 72.5 }  # optional
    kind = "reservoir"              # optional: river | reservoir | rain (default from stages/sensors)
    record_interval_s = 300         # optional: the record interval the center expects (default 300)
    rain_day_start_hour = 8         # optional: local hour the rain day starts (default 8, SL 21)
    stages = { warning = 68.0, guarantee = 71.5, flood_limit = 70.0 }   # optional, metres
    alarms = { rain_1h_mm = 30.0, battery_low_v = 11.8, silent_intervals = 3 }  # optional
    qc = { water_level = { min = 60.0, max = 80.0, step = 0.5, flat_hours = 6.0 } }  # optional

Every problem is a :class:`RegistryError` whose message is one line naming the
file, the station and what to fix.
"""

from __future__ import annotations

import json
import math
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

from protocol.elements import BY_NAME

KEY_BYTES = 32
MAX_STATION = 2**30 - 1  # the firmware's small-int range (SPEC §2)

_STATION_FIELDS = ("id", "name", "key", "location", "sensors", "timezone", "notes", "kind",
                   "record_interval_s", "rain_day_start_hour", "stages", "alarms", "qc")
_LOCATION_FIELDS = ("lat", "lon", "elevation_m")
KINDS = ("river", "reservoir", "rain")
# Stage levels (metres): 设防 action, 警戒 warning, 保证 guarantee, a reservoir's 汛限 flood limit.
STAGE_FIELDS = ("action", "warning", "guarantee", "flood_limit")
ALARM_FIELDS = ("rain_1h_mm", "rain_3h_mm", "battery_low_v", "silent_intervals")
QC_FIELDS = ("min", "max", "step", "flat_hours")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


class RegistryError(Exception):
    """The registry file is missing, unreadable or wrong. ``str()`` is one line."""


@dataclass(frozen=True)
class Location:
    """Where a station stands: WGS 84 degrees and metres above the height datum."""

    lat: float
    lon: float
    elevation_m: float | None = None


@dataclass(frozen=True)
class Station:
    """One station of the registry. The key is kept out of ``repr`` so it never lands in a log."""

    id: int
    name: str
    key: bytes = field(repr=False)
    location: Location | None = None
    sensors: tuple[str, ...] = ()
    timezone: str | None = None
    notes: str = ""
    kind: str | None = None
    record_interval_s: int = 300
    rain_day_start_hour: int = 8
    stages: Mapping[str, float] = field(default_factory=lambda: _EMPTY, hash=False)
    alarms: Mapping[str, float] = field(default_factory=lambda: _EMPTY, hash=False)
    qc: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: _EMPTY, hash=False)


@dataclass(frozen=True)
class Registry:
    """All stations of one registry file, by id."""

    path: Path
    stations: Mapping[int, Station]

    @cached_property
    def keys(self) -> Mapping[int, bytes]:
        """Station id to HMAC key, as :func:`protocol.codec.decode_frame` wants it."""
        return MappingProxyType({s.id: s.key for s in self.stations.values()})

    def get(self, station: int) -> Station | None:
        """The station with this id, or None if the registry does not list it."""
        return self.stations.get(station)


def load_registry(path: str | Path) -> Registry:
    """Read and check a registry file. Raises :class:`RegistryError` (one line) on any problem."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise RegistryError(f"{path}: no such file; give the station registry (TOML)") from None
    except IsADirectoryError:
        raise RegistryError(f"{path}: is a directory, not a registry file") from None
    except OSError as e:
        raise RegistryError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise RegistryError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    registry = parse_registry(text, path)
    _warn_if_readable(path)
    return registry


_WARNED: set[Path] = set()


def _warn_if_readable(path: Path) -> None:
    """The keys are secrets: say so (once per file and process) if others can read them."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o004 and path not in _WARNED:
        _WARNED.add(path)
        text = (f"{path} is readable by other users (mode {mode & 0o777:04o}) and holds the"
                f" station keys; chmod 600 {path}")
        import logging

        if logging.getLogger("hydrolink").handlers:  # the gateway: a line of its log
            logging.getLogger("hydrolink.registry").warning(text)
        else:
            import sys

            print(f"hydrolink: warning: {text}", file=sys.stderr)


def parse_registry(text: str, path: str | Path = "<registry>") -> Registry:
    """Check registry TOML text; ``path`` only names the file in error messages."""
    path = Path(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # tomllib's message already ends in "(at line N, column M)"
        raise RegistryError(f"{path}: TOML syntax: {e}") from None
    unknown = sorted(set(doc) - {"station"})
    if unknown:
        raise RegistryError(
            f"{path}: unknown top-level key {unknown[0]!r}; stations go in [[station]] tables"
        )
    tables = doc.get("station")
    if tables is None:
        raise RegistryError(f"{path}: no stations; add a [[station]] table for each station")
    if not isinstance(tables, list):
        raise RegistryError(f"{path}: 'station' must be [[station]] tables, not a single value")
    stations: dict[int, Station] = {}
    for index, table in enumerate(tables, 1):
        station = _station(table, index, path)
        if station.id in stations:
            raise RegistryError(
                f"{path}: station {station.id}: duplicate id (station tables "
                f"#{_position(tables, station.id)} and #{index}); each id must appear once"
            )
        stations[station.id] = station
    return Registry(path, MappingProxyType(stations))


def _position(tables: list[Any], station_id: int) -> int:
    return next(
        i for i, t in enumerate(tables, 1) if isinstance(t, dict) and t.get("id") == station_id
    )


def _station(table: Any, index: int, path: Path) -> Station:
    where = f"{path}: station table #{index}"
    if not isinstance(table, dict):
        raise RegistryError(f"{where}: must be a [[station]] table")
    sid = table.get("id")
    if sid is None:
        raise RegistryError(f"{where}: no id; add id = <1 .. {MAX_STATION}>")
    if type(sid) is not int or not 1 <= sid <= MAX_STATION:
        raise RegistryError(f"{where}: id {sid!r} must be an integer 1 .. {MAX_STATION}")
    where = f"{path}: station {sid}"

    unknown = sorted(set(table) - set(_STATION_FIELDS))
    if unknown:
        raise RegistryError(
            f"{where}: unknown field {unknown[0]!r}; known: {', '.join(_STATION_FIELDS)}"
        )

    name = table.get("name")
    if name is None or isinstance(name, str) and not name.strip():
        raise RegistryError(f'{where}: needs a name, e.g. name = "Gaoqiao upstream"')
    if not isinstance(name, str):
        raise RegistryError(f'{where}: name = {name!r} must be text in quotes, e.g. name = '
                            '"Gaoqiao upstream"')

    sensors = _sensors(table.get("sensors", []), where)
    stages = _levels(table.get("stages"), "stages", STAGE_FIELDS, where, -500, 9000)
    return Station(
        id=sid,
        name=name,
        key=_key(table.get("key"), where),
        location=_location(table.get("location"), where),
        sensors=sensors,
        timezone=_timezone(table.get("timezone"), where),
        notes=_text(table.get("notes", ""), "notes", where),
        kind=_kind(table.get("kind"), stages, sensors, where),
        record_interval_s=_int(table.get("record_interval_s", 300), "record_interval_s", where, 1, 86400),
        rain_day_start_hour=_int(table.get("rain_day_start_hour", 8), "rain_day_start_hour", where, 0, 23),
        stages=stages,
        alarms=_levels(table.get("alarms"), "alarms", ALARM_FIELDS, where, 0, 1e6),
        qc=_qc(table.get("qc"), where),
    )


def _kind(value: Any, stages: Mapping[str, float], sensors: tuple[str, ...], where: str) -> str | None:
    if value is None:
        if "flood_limit" in stages:
            return "reservoir"
        if "water_level" in sensors or stages:
            return "river"
        return "rain" if "rain" in sensors else None
    if value not in KINDS:
        raise RegistryError(f"{where}: kind {value!r} must be one of {', '.join(KINDS)}")
    return str(value)


def _int(value: Any, what: str, where: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise RegistryError(f"{where}: {what} = {value!r} must be an integer {low} .. {high}")
    return value


def _levels(
    value: Any, what: str, known: tuple[str, ...], where: str, low: float, high: float
) -> Mapping[str, float]:
    if value is None:
        return _EMPTY
    if not isinstance(value, dict):
        raise RegistryError(f"{where}: {what} must be a table {{ {known[0]} = .., ... }}")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise RegistryError(f"{where}: unknown {what} field {unknown[0]!r}; known: {', '.join(known)}")
    return MappingProxyType({k: _number(value[k], f"{what}.{k}", where, low, high) for k in known if k in value})


def _qc(value: Any, where: str) -> Mapping[str, Mapping[str, float]]:
    if value is None:
        return _EMPTY
    if not isinstance(value, dict):
        raise RegistryError(f"{where}: qc must be a table of elements, e.g. qc = {{ rain = {{ max = 50.0 }} }}")
    out: dict[str, Mapping[str, float]] = {}
    for element, checks in value.items():
        if element not in BY_NAME:
            raise RegistryError(f"{where}: qc element {element!r} unknown; element names are {', '.join(BY_NAME)}")
        limits = _levels(checks, f"qc.{element}", QC_FIELDS, where, -1e6, 1e6)
        if "min" in limits and "max" in limits and limits["min"] >= limits["max"]:
            raise RegistryError(f"{where}: qc.{element}.min ({limits['min']}) must be below max ({limits['max']})")
        for k in ("step", "flat_hours"):
            if limits.get(k, 1.0) <= 0:
                raise RegistryError(f"{where}: qc.{element}.{k} must be above 0")
        out[element] = limits
    return MappingProxyType(out)


def _key(value: Any, where: str) -> bytes:
    hint = f"{2 * KEY_BYTES} hex digits ({KEY_BYTES} bytes)"
    if value is None:
        raise RegistryError(f'{where}: no key; add key = "<{hint}>"')
    if not isinstance(value, str):
        raise RegistryError(f"{where}: key must be a string of {hint}")
    text = value.strip()
    bad = next((c for c in text if c not in "0123456789abcdefABCDEF"), None)
    if bad is not None:
        raise RegistryError(f"{where}: key is not hex (character {bad!r}); it must be {hint}")
    if len(text) != 2 * KEY_BYTES:
        raise RegistryError(f"{where}: key has {len(text)} hex digits, {2 * KEY_BYTES} needed"
                            f" ({KEY_BYTES} bytes)")
    return bytes.fromhex(text)


def _location(value: Any, where: str) -> Location | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RegistryError(
            f"{where}: location must be a table {{ lat = .., lon = .., elevation_m = .. }}"
        )
    unknown = sorted(set(value) - set(_LOCATION_FIELDS))
    if unknown:
        raise RegistryError(
            f"{where}: unknown location field {unknown[0]!r}; known: {', '.join(_LOCATION_FIELDS)}"
        )
    lat = _number(value.get("lat"), "location.lat", where, -90, 90)
    lon = _number(value.get("lon"), "location.lon", where, -180, 180)
    elevation = value.get("elevation_m")
    if elevation is not None:
        elevation = _number(elevation, "location.elevation_m", where, -500, 9000)
    return Location(lat, lon, elevation)


def _number(value: Any, what: str, where: str, low: float, high: float) -> float:
    if value is None:
        raise RegistryError(f"{where}: {what} is missing; give a number in {low} .. {high}")
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise RegistryError(f"{where}: {what} must be a number, got {value!r}")
    if not low <= value <= high:
        raise RegistryError(f"{where}: {what} = {value} is outside {low} .. {high}")
    return float(value)


def _sensors(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise RegistryError(f'{where}: sensors must be a list of element names, e.g. ["rain"]')
    for s in value:
        if s not in BY_NAME:
            raise RegistryError(
                f"{where}: unknown sensor {s!r}; element names are {', '.join(BY_NAME)}"
            )
    if len(set(value)) != len(value):
        dup = next(s for s in value if value.count(s) > 1)
        raise RegistryError(f"{where}: sensor {dup!r} is listed twice")
    return tuple(value)


def _timezone(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RegistryError(f'{where}: timezone must be an IANA name, e.g. "Asia/Shanghai"')
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        # A machine without a time zone database cannot judge the name: accept it there.
        if zoneinfo.available_timezones():
            raise RegistryError(
                f'{where}: unknown timezone {value!r}; use an IANA name such as "Asia/Shanghai"'
            ) from None
    return value


def _text(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str):
        raise RegistryError(f"{where}: {what} must be a string")
    return value


def registry_toml(stations: Mapping[int, bytes], names: Mapping[int, str] | None = None) -> str:
    """A minimal registry text for the given keys (tests, captures, the demo)."""
    out = []
    for sid, key in sorted(stations.items()):
        name = (names or {}).get(sid, f"station {sid}")
        out.append(f'[[station]]\nid = {sid}\nname = {json.dumps(name)}\nkey = "{key.hex()}"\n')
    return "\n".join(out)
