"""The SI view of a frame: what ``hydrolink decode`` prints and ``hydrolink encode`` reads.

One JSON object per frame. Times are ISO 8601 UTC strings ending in ``Z``; values are
floats in the element's SI unit, rounded to its scale; codes are names. Integers that
have no name in the spec (an element id not in ``elements.csv``, an op number a later
version may define, an unknown flag bit) stay integers. The conversion is exact both
ways: ``si_to_frame(frame_to_si(f))`` encodes to the same bytes as ``f``.

Field names that carry a unit end in it (``battery_v``, ``uptime_s``); series and alarms
carry a ``unit`` field instead because all their numbers share it.

This module is the view's public face: :mod:`host_tools.siview_show` turns a frame into
the view, :mod:`host_tools.siview_parse` reads it back, :mod:`host_tools.siview` holds
what both share (tables, ISO times, :class:`ViewError`).
"""

from __future__ import annotations

from host_tools.siview import (
    ALARM_ELEMENT,
    RESEND,
    STATUS_SI_ORDER,
    ViewError,
    iso,
    parse_time,
)
from host_tools.siview_parse import parse_flags, si_to_frame
from host_tools.siview_show import flag_names, frame_to_si

__all__ = [
    "ALARM_ELEMENT", "RESEND", "STATUS_SI_ORDER", "ViewError",
    "flag_names", "frame_to_si", "iso", "parse_flags", "parse_time", "si_to_frame",
]
