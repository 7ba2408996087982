"""What ``export``, ``plot`` and ``report`` share: times, element names, the store, units.

Times on the command line are ISO 8601; a time without a zone is the station's local
time (what a dispatcher means by "from 08:00"), a bare date its local midnight, and
``--to DATE`` the last second of that day. Element names are those of protocol/elements.csv,
with the short aliases ``level`` and ``battery``.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import TYPE_CHECKING, Any

from protocol.elements import BY_NAME

if TYPE_CHECKING:
    from host_tools.center.model import StationMeta
    from host_tools.center.store import Store

ALIASES = {"level": "water_level", "battery": "battery_voltage", "stage": "water_level"}


class ViewError(Exception):
    """A problem the user can fix (bad station, time, element). ``str()`` is one line."""


def element_name(name: str) -> str:
    """The elements.csv name for ``name`` or an alias; :class:`ViewError` if unknown."""
    full = ALIASES.get(name.strip(), name.strip())
    if full not in BY_NAME:
        known = ", ".join(sorted(BY_NAME))
        raise ViewError(f"unknown element {name!r}; use one of {known} (or level, battery)")
    return full


def unit_of(element: str) -> str:
    """The SI unit of an element (elements.csv)."""
    e = BY_NAME.get(element)
    return str(e.unit) if e is not None else ""


def kind_of(element: str) -> str:
    """``total`` (rain: an interval sum) or ``instant`` (a level), from elements.csv."""
    e = BY_NAME.get(element)
    return str(e.kind) if e is not None else "instant"


def zone(name: str | None) -> zoneinfo.ZoneInfo:
    """A time zone by IANA name (None: UTC); :class:`ViewError` if unknown."""
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ViewError(f"unknown time zone {name!r}; use an IANA name such as Asia/Shanghai") from None


def parse_time(text: str, tz: zoneinfo.ZoneInfo, *, end: bool = False) -> int:
    """UNIX seconds of an ISO 8601 date or date-time; naive times are in ``tz``.

    Args:
        text: ``2026-07-14``, ``2026-07-14T08:00``, ``2026-07-14T00:00Z``, ``...+08:00``.
        tz: the zone of naive times (the station's).
        end: a bare date means the last second of that day (for ``--to``).
    """
    s = text.strip()
    try:
        if len(s) == 10:
            d = dt.date.fromisoformat(s)
            if end:  # the day's last second: --from D --to D is the day's readings, 00:00 to 23:55
                return int(dt.datetime.combine(d + dt.timedelta(days=1), dt.time(0), tz).timestamp()) - 1
            return int(dt.datetime.combine(d, dt.time(0), tz).timestamp())
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise ViewError(f"cannot read time {text!r}; use ISO 8601 such as 2026-07-14 or "
                        "2026-07-14T08:00 (local) or 2026-07-14T00:00Z") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=tz)
    return int(t.timestamp())


def iso_utc(t: float) -> str:
    """``2026-07-14T00:05:00Z``."""
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_local(t: float, tz: zoneinfo.ZoneInfo) -> str:
    """``2026-07-14 08:05`` in ``tz`` (what a spreadsheet shows as a date-time)."""
    return dt.datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M:%S")


def open_db(url: str) -> Store:
    """Open the center store, with its errors as :class:`ViewError`."""
    from host_tools.center.store import SchemaError, StoreError, open_store

    try:
        return open_store(url)
    except (StoreError, SchemaError) as e:
        raise ViewError(str(e)) from None


def station_meta(store: Store, station: int) -> StationMeta:
    """A station's metadata from the store; :class:`ViewError` naming the known ones."""
    meta = store.station(station)
    if meta is None:
        known = ", ".join(str(s.station) for s in store.stations()) or "none"
        raise ViewError(f"station {station} is not in the store (known: {known}); "
                        "sync the registry with 'hydrolink center --registry FILE'")
    return meta


def station_ids(text: str) -> list[int]:
    """``1001,1002`` -> ``[1001, 1002]``; :class:`ViewError` on anything else."""
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ViewError(f"station ids must be numbers separated by commas, not {text!r}") from None
    if not ids:
        raise ViewError("give at least one station id")
    return ids


def run_view(fn: Any, *args: Any) -> int:
    """Call ``fn(*args)`` and turn a :class:`ViewError` into the CLI's one-line error."""
    from host_tools.cli import CliError

    try:
        return int(fn(*args))
    except ViewError as e:
        raise CliError(str(e)) from None
