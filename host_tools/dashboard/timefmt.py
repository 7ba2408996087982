"""Times as a dispatcher reads them: in the station's local zone, with the zone shown."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = ZoneInfo("UTC")


def station_zone(name: str | None) -> ZoneInfo:
    """The station's zone (registry ``timezone``), UTC if none or unknown."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def zone(tz: ZoneInfo, at: float) -> str:
    """The zone's abbreviation at ``at`` and its name, e.g. ``CST Asia/Shanghai``."""
    abbr = datetime.fromtimestamp(at, tz).strftime("%Z")
    return abbr if abbr == str(tz) else f"{abbr} {tz}"


def fmt_time(ts: float | None, tz: ZoneInfo, seconds: bool = False) -> str:
    """``2026-06-15 18:05 CST`` (empty for None)."""
    if ts is None:
        return ""
    d = datetime.fromtimestamp(ts, tz)
    return d.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")
