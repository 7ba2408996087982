"""Frame to SI view: what ``hydrolink decode`` prints and the gateway publishes."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from host_tools.siview import ALARM_ELEMENT, RESEND, STATUS_RENAMED, STATUS_SCALED, STATUS_SI_ORDER, iso
from protocol.codec import Ack, Alarm, Command, Commands, Frame, Report, Series, Status
from protocol.elements import (
    ALARM_KINDS,
    ALARM_STATES,
    BY_NAME,
    COMMAND_OPS,
    COUNTERS,
    ELEMENTS,
    FLAG_NAMES,
    QUALITY_NAMES,
    RESET_CAUSES,
    RESULT_CODES,
)


def _name(names: tuple[str, ...] | Mapping[int, str], code: int) -> str | int:
    if isinstance(names, tuple):
        return names[code] if 0 <= code < len(names) and names[code] else code
    return names.get(code, code)


def flag_names(flags: int) -> list[str | int]:
    """Flag bits to names (unknown bits stay their integer value)."""
    return [FLAG_NAMES.get(1 << b, 1 << b) for b in range(flags.bit_length()) if flags >> b & 1]


@functools.lru_cache(maxsize=65536)
def _to_si(element: int, raw: int) -> float:
    """``Element.to_si``, cached: readings repeat (dry days, slow rivers), and the gateway
    converts every reading of every station."""
    return ELEMENTS[element].to_si(raw)


def _series_si(s: Series) -> dict[str, Any]:
    element = ELEMENTS.get(s.element)
    values = []
    for t, v, q in zip(s.times(), s.values, s.quality, strict=True):
        value = None if v is None else _to_si(s.element, v) if element else v
        values.append({"time": iso(t), "value": value, "quality": _name(QUALITY_NAMES, q)})
    return {
        "element": element.name if element else s.element,
        "unit": element.unit if element else None,
        "interval_s": s.interval,
        "start": iso(s.start),
        "values": values,
    }


def _alarm_si(a: Alarm) -> dict[str, Any]:
    element = BY_NAME[ALARM_ELEMENT[a.kind]]
    out: dict[str, Any] = {
        "kind": _name(ALARM_KINDS, a.kind),
        "state": _name(ALARM_STATES, a.state),
        "value": element.to_si(a.value),
        "threshold": element.to_si(a.threshold),
        "unit": element.unit,
    }
    if a.window is not None:
        out["window_s"] = a.window
    return out


def _command_si(c: Command) -> dict[str, Any]:
    out: dict[str, Any] = {"id": c.id, "op": _name(COMMAND_OPS, c.op)}
    if c.args is not None:
        args = c.args
        if c.op == RESEND and _is_int_pair(args):
            args = [iso(args[0]), iso(args[1])]
        out["args"] = args
    return out


def _is_int_pair(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(
        type(x) is int and 0 <= x < 2**32 for x in v
    )


def _status_si(fields: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, v in fields.items():
        if name in STATUS_SCALED:
            si_name, element = STATUS_SCALED[name]
            out[si_name] = BY_NAME[element].to_si(v)
        elif name in STATUS_RENAMED:
            out[STATUS_RENAMED[name]] = v
        elif name == "reset_cause":
            out[name] = _name(RESET_CAUSES, v)
        elif name == "oldest_unacked":
            out[name] = iso(v) if 0 <= v < 2**32 else v
        elif name == "counters":
            out[name] = {str(_name(COUNTERS, int(c))): n for c, n in v.items()}
        elif name == "flags":
            out[name] = flag_names(v)
        elif name == "console":  # the technician's changes at the station (SPEC §8 key 13)
            out[name] = [{"time": iso(t), "text": text} for t, text in v]
        else:
            out[name] = v
    return {k: out[k] for k in STATUS_SI_ORDER if k in out}


def frame_to_si(frame: Frame, *, auth: bool = True) -> dict[str, Any]:
    """A decoded frame as one SI JSON object. ``auth``: whether its tag was verified."""
    out: dict[str, Any] = {
        "station": frame.station,
        "seq": frame.seq,
        "type": frame.type_name,
        "time": iso(frame.time),
        "auth": auth,
    }
    b = frame.body
    if isinstance(b, Report):
        out["series"] = [_series_si(s) for s in b.series]
        out["dropped"] = b.dropped
        out["alarms"] = [_alarm_si(a) for a in b.alarms]
        out["flags"] = flag_names(b.flags)
    elif isinstance(b, Status):
        out.update(_status_si(b.fields))
    elif isinstance(b, Ack):
        out["acks"] = list(b.acks)
        out["commands"] = [_command_si(c) for c in b.commands]
    elif isinstance(b, Commands):
        out["commands"] = [_command_si(c) for c in b.commands]
    else:
        out["results"] = [
            {"id": r.id, "code": _name(RESULT_CODES, r.code)}
            | ({} if r.detail is None else {"detail": r.detail})
            for r in b.results
        ]
    return out
