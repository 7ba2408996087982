"""Small formatting helpers shared by the gateway's modules (no gateway imports)."""

from __future__ import annotations

import time as _time

from protocol.elements import COMMAND_OPS


def iso(t: float) -> str:
    """Unix seconds to ISO 8601 UTC with milliseconds, e.g. ``2026-06-15T10:00:03.250Z``."""
    whole = int(t)
    ms = min(999, round((t - whole) * 1000))
    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(whole)) + f".{ms:03d}Z"


def op_name(op: int) -> str:
    """A command op's name (SPEC §7), or ``op<N>`` for one the spec does not name."""
    return COMMAND_OPS[op] if 0 < op < len(COMMAND_OPS) else f"op{op}"
