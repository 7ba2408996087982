"""What both directions of the SI view share: its tables, its times and its error.

The view itself is described in :mod:`host_tools.jsonview`.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from protocol.codec import from_datetime, to_datetime

RESEND = 3  # command op whose args are [from, to] hydrolink times: shown as ISO times

# Alarm kind -> the element whose scale and unit its value and threshold use (SPEC §5.4).
ALARM_ELEMENT = {
    1: "rain", 2: "water_level", 3: "water_level", 4: "water_level", 5: "battery_voltage",
}

# Status fields (SPEC §8): wire name -> (SI name, element whose scale applies, or None).
STATUS_SCALED = {"battery_mv": ("battery_v", "battery_voltage"),
                 "temperature": ("temperature_degc", "logger_temperature")}
STATUS_RENAMED = {"uptime": "uptime_s", "free_heap": "free_heap_bytes",
                  "free_flash": "free_flash_bytes", "clock_offset": "clock_offset_s"}
STATUS_SI_ORDER = ("battery_v", "temperature_degc", "firmware", "uptime_s", "reset_cause",
                   "queue_depth", "oldest_unacked", "free_heap_bytes", "free_flash_bytes",
                   "clock_offset_s", "counters", "flags", "console")


class ViewError(ValueError):
    """An SI JSON object that does not describe a frame; ``str()`` names the field."""


# ---------------------------------------------------------------- times


@functools.lru_cache(maxsize=8192)
def iso(t: int) -> str:
    """Hydrolink seconds to ISO 8601 UTC, e.g. ``2026-06-15T10:00:03Z``.

    Cached: the gateway formats the same 5-minute marks for every station.
    """
    return to_datetime(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any, where: str) -> int:
    """ISO 8601 text with a zone (``Z`` or ``+08:00``) to hydrolink seconds."""
    if not isinstance(value, str):
        raise ViewError(f'{where}: time must be ISO 8601 text such as "2026-06-15T10:00:03Z"')
    try:
        d = datetime.fromisoformat(value)
    except ValueError:
        raise ViewError(f"{where}: {value!r} is not an ISO 8601 time") from None
    if d.tzinfo is None:
        raise ViewError(f"{where}: {value!r} has no time zone; add Z for UTC")
    if d.microsecond:
        raise ViewError(f"{where}: {value!r} has a fraction of a second; use whole seconds")
    t = from_datetime(d.astimezone(UTC))
    if not 0 <= t < 2**32:
        raise ViewError(f"{where}: {value!r} is outside {iso(0)} .. {iso(2**32 - 1)}")
    return t
