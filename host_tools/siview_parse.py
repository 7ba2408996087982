"""SI view to frame: what ``hydrolink encode`` reads, checked field by field."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from host_tools.siview import (
    ALARM_ELEMENT,
    RESEND,
    STATUS_RENAMED,
    STATUS_SCALED,
    STATUS_SI_ORDER,
    ViewError,
    iso,
    parse_time,
)
from protocol.codec import ACK, ALARM, COMMAND, REPORT_TYPES, STATUS, TYPE_IDS
from protocol.elements import (
    ALARM_KINDS,
    ALARM_STATES,
    BY_NAME,
    COMMAND_OPS,
    COUNTERS,
    ELEMENTS,
    FLAG_NAMES,
    NO_VALUE,
    QUALITY_NAMES,
    RESET_CAUSES,
    RESULT_CODES,
    Element,
)
from protocol.model import Ack, Alarm, Body, Command, Commands, Frame, Report, Result, Results, Series, Status

_HEADER_KEYS = ("station", "seq", "type", "time", "auth", "frame")
_REPORT_KEYS = ("series", "dropped", "alarms", "flags")
_COUNTER_IDS = {name: cid for cid, name in COUNTERS.items()}
_FLAG_IDS = {name: bit for bit, name in FLAG_NAMES.items()}


def _field(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise ViewError(f"{where}: {key!r} is missing")
    return obj[key]


def _object(v: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(v, dict):
        raise ViewError(f"{where}: must be a JSON object")
    return v


def _array(v: Any, where: str) -> list[Any]:
    if not isinstance(v, list):
        raise ViewError(f"{where}: must be a JSON array")
    return v


def _uint(v: Any, where: str, bits: int = 64) -> int:
    if type(v) is not int or not 0 <= v < 2**bits:
        raise ViewError(f"{where}: {v!r} must be an integer 0 .. {2**bits - 1}")
    return v


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ViewError(f"{where}: {v!r} must be a finite number")
    return float(v)


def _scaled(element: Element, v: Any, where: str) -> int:
    raw = element.from_si(_number(v, where))
    if not -(2**31) <= raw < 2**31:
        raise ViewError(f"{where}: {v!r} {element.unit} does not fit the {element.name} scale")
    return raw


def _code(names: tuple[str, ...] | Mapping[int, str], v: Any, where: str) -> int:
    """A name from a code table, or its integer (for codes the table does not name)."""
    if type(v) is int and v >= 0:
        return v
    table = dict(enumerate(names)) if isinstance(names, tuple) else dict(names)
    for code, name in table.items():
        if name and name == v:
            return code
    known = ", ".join(n for n in table.values() if n)
    raise ViewError(f"{where}: {v!r} is not one of {known}")


def _unknown_keys(obj: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    extra = [k for k in obj if k not in known]
    if extra:
        raise ViewError(f"{where}: unknown field {extra[0]!r} (known: {', '.join(known)})")


def parse_flags(v: Any, where: str) -> int:
    """A list of flag names (or bit values) to the flags integer."""
    flags = 0
    for i, f in enumerate(_array(v, where)):
        if type(f) is int and f > 0 and f & (f - 1) == 0:
            flags |= f
        elif f in _FLAG_IDS:
            flags |= _FLAG_IDS[f]
        else:
            raise ViewError(f"{where}[{i}]: {f!r} is not one of {', '.join(_FLAG_IDS)}")
    return flags


def _series(obj: Any, time: int, where: str) -> Series:
    s = _object(obj, where)
    _unknown_keys(s, ("element", "unit", "interval_s", "start", "values"), where)
    name = _field(s, "element", where)
    element: Element | None
    if type(name) is int:
        element_id, element = _uint(name, f"{where}.element", 32), None
        if name in ELEMENTS:
            raise ViewError(f"{where}.element: element {name} is {ELEMENTS[name].name!r}: "
                            "give its name (integer ids are for elements not in the table)")
    elif isinstance(name, str) and name in BY_NAME:
        element = BY_NAME[name]
        element_id = element.id
    else:
        raise ViewError(f"{where}.element: {name!r} is not one of {', '.join(BY_NAME)}")
    unit = s.get("unit")
    want = element.unit if element else None
    if "unit" in s and unit != want:
        raise ViewError(f"{where}.unit: {unit!r}, but {name} is in {want}")
    interval = _uint(_field(s, "interval_s", where), f"{where}.interval_s", 32)
    if not 1 <= interval <= 86400 * 31:
        raise ViewError(f"{where}.interval_s: {interval} is not 1 .. 2678400")
    values: list[int | None] = []
    quality: list[int] = []
    times: list[tuple[int, str]] = []
    for i, item in enumerate(_array(_field(s, "values", where), f"{where}.values")):
        vw = f"{where}.values[{i}]"
        v = _object(item, vw)
        _unknown_keys(v, ("time", "value", "quality"), vw)
        q = _code(QUALITY_NAMES, v.get("quality", "good"), f"{vw}.quality")
        if q >= len(QUALITY_NAMES):
            raise ViewError(f"{vw}.quality: code {q} is not 0 .. {len(QUALITY_NAMES) - 1}")
        raw = _field(v, "value", vw)
        if (raw is None) != (q in NO_VALUE):
            raise ViewError(f"{vw}: value must be null exactly when quality is missing or fault")
        if raw is None:
            values.append(None)
        elif element is None:
            if type(raw) is not int or not -(2**31) <= raw < 2**31:
                raise ViewError(f"{vw}.value: {raw!r} must be an int32 (element {name} is raw)")
            values.append(raw)
        else:
            values.append(_scaled(element, raw, f"{vw}.value"))
        quality.append(q)
        if "time" in v:
            times.append((i, f"{vw}.time"))
    if "start" in s:
        start = parse_time(s["start"], f"{where}.start")
    elif times:
        i, tw = times[0]
        start = parse_time(s["values"][i]["time"], tw) - i * interval
    else:
        start = time - time % interval  # the natural start of an empty series
    for i, tw in times:
        t = parse_time(s["values"][i]["time"], tw)
        if t != start + i * interval:
            raise ViewError(f"{tw}: {iso(t)} is not start + {i} x {interval} s = "
                            f"{iso(start + i * interval)}")
    if start % interval:
        raise ViewError(f"{where}.start: {iso(start)} is not a multiple of {interval} s "
                        "since the hydrolink epoch")
    return Series(element_id, interval, start, tuple(values), tuple(quality))


def _alarm(obj: Any, where: str) -> Alarm:
    a = _object(obj, where)
    _unknown_keys(a, ("kind", "state", "value", "threshold", "unit", "window_s"), where)
    kind = _code(ALARM_KINDS, _field(a, "kind", where), f"{where}.kind")
    if kind not in ALARM_ELEMENT:
        raise ViewError(f"{where}.kind: {kind} is not a defined alarm kind")
    state = _code(ALARM_STATES, _field(a, "state", where), f"{where}.state")
    if state >= len(ALARM_STATES):
        raise ViewError(f"{where}.state: {state} is not a defined alarm state")
    element = BY_NAME[ALARM_ELEMENT[kind]]
    if "unit" in a and a["unit"] != element.unit:
        raise ViewError(f"{where}.unit: {a['unit']!r}, but a {ALARM_KINDS[kind]} alarm is in "
                        f"{element.unit}")
    window = a.get("window_s")
    return Alarm(
        kind, state,
        _scaled(element, _field(a, "value", where), f"{where}.value"),
        _scaled(element, _field(a, "threshold", where), f"{where}.threshold"),
        None if window is None else _uint(window, f"{where}.window_s"),
    )


def _command(obj: Any, where: str) -> Command:
    c = _object(obj, where)
    _unknown_keys(c, ("id", "op", "args"), where)
    op = _code(COMMAND_OPS, _field(c, "op", where), f"{where}.op")
    args = c.get("args")
    if op == RESEND and isinstance(args, list) and len(args) == 2 \
            and all(isinstance(x, str) for x in args):
        args = [parse_time(x, f"{where}.args[{i}]") for i, x in enumerate(args)]
    return Command(_uint(_field(c, "id", where), f"{where}.id"), op, args)


def _result(obj: Any, where: str) -> Result:
    r = _object(obj, where)
    _unknown_keys(r, ("id", "code", "detail"), where)
    code = _code(RESULT_CODES, _field(r, "code", where), f"{where}.code")
    return Result(_uint(_field(r, "id", where), f"{where}.id"), code, r.get("detail"))


def _status(obj: Mapping[str, Any]) -> Status:
    by_si = {si: (wire, el) for wire, (si, el) in STATUS_SCALED.items()}
    renamed = {si: wire for wire, si in STATUS_RENAMED.items()}
    fields: dict[str, Any] = {}
    for key in STATUS_SI_ORDER:
        if key not in obj:
            continue
        v = obj[key]
        if key in by_si:
            wire, element = by_si[key]
            fields[wire] = _scaled(BY_NAME[element], v, key)
        elif key in renamed:
            fields[renamed[key]] = _uint(v, key) if key != "clock_offset_s" else _int(v, key)
        elif key == "firmware":
            if not isinstance(v, str):
                raise ViewError("firmware: must be text")
            fields[key] = v
        elif key == "queue_depth":
            fields[key] = _uint(v, key)
        elif key == "reset_cause":
            fields[key] = _code(RESET_CAUSES, v, key)
        elif key == "oldest_unacked":
            fields[key] = parse_time(v, key) if isinstance(v, str) else _uint(v, key)
        elif key == "counters":
            counters = {}
            for name, n in _object(v, key).items():
                cid = _COUNTER_IDS.get(name)
                if cid is None:
                    if not name.isdigit():
                        known = ", ".join(_COUNTER_IDS)
                        raise ViewError(f"counters: {name!r} is not one of {known}")
                    cid = int(name)
                counters[str(cid)] = _uint(n, f"counters.{name}")
            fields[key] = counters
        elif key == "console":
            if not isinstance(v, list):
                raise ViewError("console: must be an array of {time, text} objects")
            entries = []
            for i, e in enumerate(v):
                e = _object(e, f"console[{i}]")
                _unknown_keys(e, ("time", "text"), f"console[{i}]")
                text = _field(e, "text", f"console[{i}]")
                if not isinstance(text, str):
                    raise ViewError(f"console[{i}].text: must be text")
                entries.append([parse_time(_field(e, "time", f"console[{i}]"), f"console[{i}].time"), text])
            fields[key] = entries
        else:
            fields[key] = parse_flags(v, key)
    return Status(fields)


def _int(v: Any, where: str) -> int:
    if type(v) is not int:
        raise ViewError(f"{where}: {v!r} must be an integer")
    return v


def si_to_frame(obj: Any) -> Frame:
    """Inverse of :func:`frame_to_si` (``raw`` left empty). Raises :class:`ViewError`."""
    msg = _object(obj, "line")
    if "body" in msg:
        raise ViewError("this is message JSON (it has 'body'); use --raw to encode it")
    type_name = _field(msg, "type", "frame")
    if type_name not in TYPE_IDS:
        raise ViewError(f"type: {type_name!r} is not one of {', '.join(TYPE_IDS)}")
    frame_type = TYPE_IDS[type_name]
    station = _uint(_field(msg, "station", "frame"), "station", 32)
    if station == 0:
        raise ViewError("station: 0 is not a valid station id")
    seq = _uint(_field(msg, "seq", "frame"), "seq", 32)
    time = parse_time(_field(msg, "time", "frame"), "time")

    body: Body
    if frame_type in REPORT_TYPES:
        _unknown_keys(msg, _HEADER_KEYS + _REPORT_KEYS, type_name)
        series = tuple(_series(s, time, f"series[{i}]")
                       for i, s in enumerate(_array(msg.get("series", []), "series")))
        alarms = tuple(_alarm(a, f"alarms[{i}]")
                       for i, a in enumerate(_array(msg.get("alarms", []), "alarms")))
        if frame_type == ALARM and not alarms:
            raise ViewError("alarms: an alarm frame needs at least one alarm")
        body = Report(series, _uint(msg.get("dropped", 0), "dropped"), alarms,
                      parse_flags(msg.get("flags", []), "flags"))
    elif frame_type == STATUS:
        _unknown_keys(msg, _HEADER_KEYS + STATUS_SI_ORDER, type_name)
        body = _status(msg)
    elif frame_type == ACK:
        _unknown_keys(msg, (*_HEADER_KEYS, "acks", "commands"), type_name)
        acks = tuple(_uint(s, f"acks[{i}]", 32)
                     for i, s in enumerate(_array(_field(msg, "acks", type_name), "acks")))
        body = Ack(acks, tuple(_command(c, f"commands[{i}]")
                               for i, c in enumerate(_array(msg.get("commands", []), "commands"))))
    elif frame_type == COMMAND:
        _unknown_keys(msg, (*_HEADER_KEYS, "commands"), type_name)
        commands = _array(_field(msg, "commands", type_name), "commands")
        if not commands:
            raise ViewError("commands: a command frame needs at least one command")
        body = Commands(tuple(_command(c, f"commands[{i}]") for i, c in enumerate(commands)))
    else:
        _unknown_keys(msg, (*_HEADER_KEYS, "results"), type_name)
        results = _array(_field(msg, "results", type_name), "results")
        if not results:
            raise ViewError("results: a result frame needs at least one result")
        body = Results(tuple(_result(r, f"results[{i}]") for i, r in enumerate(results)))
    return Frame(frame_type, station, seq, time, body)
