"""Frame bodies to and from CBOR, validated against each frame type's schema (SPEC §5-§8).

``check_cbor`` and ``decode_values`` are looked up in this module: tests and benches
that run the pure-Python references patch them here.
"""

from __future__ import annotations

from typing import Any

import cbor2

from protocol.cbor_subset import check_cbor as check_cbor  # "as": exported, for the runs that patch it
from protocol.elements import NO_VALUE
from protocol.errors import Malformed
from protocol.model import (
    ACK,
    ALARM,
    COMMAND,
    MAX_VALUES,
    REPORT_TYPES,
    STATUS,
    STATUS_KEYS,
    STATUS_NAMES,
    STATUS_TYPES,
    WINDOW_ALARMS,
    Ack,
    Alarm,
    Body,
    Command,
    Commands,
    Report,
    Result,
    Results,
    Series,
    Status,
    console_problem,
)
from protocol.values import decode_values as decode_values
from protocol.values import encode_values, expand_quality, fill_no_value, quality_runs

# ---------------------------------------------------------------- bodies to CBOR


def _det(obj: Any) -> Any:
    """Order text-keyed maps by their encoded keys, recursively (RFC 8949 §4.2.1)."""
    if isinstance(obj, dict):
        items = [(cbor2.dumps(k), k, _det(v)) for k, v in obj.items()]
        return {k: v for _, k, v in sorted(items, key=lambda i: i[0])}
    if isinstance(obj, list | tuple):
        return [_det(v) for v in obj]
    return obj


def _series_item(s: Series, time: int) -> list[Any]:
    if len(s.quality) != len(s.values):
        raise ValueError("one quality code per value")
    if s.interval < 1 or s.start % s.interval:
        raise ValueError(f"series start {s.start} is not a multiple of its interval {s.interval}")
    for v, q in zip(s.values, s.quality, strict=True):
        if (v is None) != (q in NO_VALUE):
            raise ValueError("values must be None exactly where quality is missing or fault")
    mark = time - time % s.interval
    item: list[Any] = [
        s.element, s.interval, (mark - s.start) // s.interval, encode_values(fill_no_value(s.values))
    ]
    runs = quality_runs(s.quality)
    if runs:
        item.append(runs)
    return item


def body_item(frame_type: int, body: Body, time: int) -> Any:
    """The CBOR item of a body, keys in deterministic order."""
    if isinstance(body, Report):
        if frame_type not in REPORT_TYPES:
            raise ValueError("report body needs a data, alarm or test frame")
        if frame_type == ALARM and not body.alarms:
            raise ValueError("an alarm frame needs at least one alarm")
        out: dict[int, Any] = {1: [_series_item(s, time) for s in body.series]}
        if body.dropped:
            out[2] = body.dropped
        if body.alarms:
            out[3] = [
                [a.kind, a.state, a.value, a.threshold] + ([] if a.window is None else [a.window])
                for a in body.alarms
            ]
        if body.flags:
            out[4] = body.flags
        return out
    if isinstance(body, Status):
        fields = {STATUS_KEYS[name]: value for name, value in body.fields.items()}
        if 11 in fields:
            fields[11] = {int(k): v for k, v in sorted(fields[11].items(), key=lambda i: int(i[0]))}
        if 13 in fields:
            why = console_problem(fields[13])
            if why is not None:
                raise ValueError(why)
            fields[13] = [list(e) for e in fields[13]]
        return {k: fields[k] for k in sorted(fields)}
    if isinstance(body, Ack):
        ack: dict[int, Any] = {1: list(body.acks)}
        if body.commands:
            ack[2] = [_command_item(c) for c in body.commands]
        return ack
    if isinstance(body, Commands):
        return {2: [_command_item(c) for c in body.commands]}
    return {1: [[r.id, r.code] + ([] if r.detail is None else [_det(r.detail)]) for r in body.results]}


def _command_item(c: Command) -> list[Any]:
    return [c.id, c.op] + ([] if c.args is None else [_det(c.args)])


def encode_body(frame_type: int, body: Body, time: int) -> bytes:
    """The deterministic CBOR of a body; ``ValueError`` if it is outside the subset of SPEC §4."""
    item = cbor2.dumps(body_item(frame_type, body, time))
    try:  # args and details could hold what the subset has not (mixed keys, NaN as cbor2 writes it)
        check_cbor(item)
    except Malformed as e:
        raise ValueError(f"body outside the subset of SPEC §4: {e}") from None
    return item


# ---------------------------------------------------------------- CBOR to bodies


def _load_body(data: bytes) -> Any:
    # Deterministic encoding is what the board emits and checks, so the host checks it
    # too, on the bytes, before cbor2 builds the objects.
    check_cbor(data)
    try:
        return cbor2.loads(data)
    except Exception as e:  # cbor2 raises several kinds; all mean the same here
        raise Malformed(f"body is not CBOR: {e}") from None


_INT64 = (-(2**63), 2**64 - 1)


def _uint(v: Any, what: str) -> int:
    if type(v) is not int or not 0 <= v <= _INT64[1]:
        raise Malformed(f"{what} must be an unsigned integer")
    return v


def _int(v: Any, what: str) -> int:
    if type(v) is not int or not _INT64[0] <= v <= _INT64[1]:
        raise Malformed(f"{what} must be an integer")
    return v


def _list(v: Any, what: str, nonempty: bool = False) -> list[Any]:
    if not isinstance(v, list) or (nonempty and not v):
        raise Malformed(f"{what} must be a{' non-empty' if nonempty else 'n'} array")
    return v


def _series(item: Any, time: int) -> Series:
    if type(item) is not list or not 4 <= len(item) <= 5:
        raise Malformed("series must be [element, interval, offset, values, ?quality]")
    element, interval, offset, data = item[0], item[1], item[2], item[3]
    if type(element) is not int or not 0 <= element < 2**32:
        raise Malformed("series element must be an unsigned integer")
    if type(interval) is not int or not 1 <= interval <= 86400 * 31:
        raise Malformed(f"series interval {interval!r} is not 1 .. 2678400 s")
    if type(offset) is not int or not -(2**32) < offset < 2**32:
        raise Malformed("series offset must be an integer")
    if type(data) is not bytes:
        raise Malformed("series values must be a byte string")
    values = decode_values(data)
    if len(item) == 5:
        quality = tuple(expand_quality(item[4], len(values)))
        kept = tuple([None if q in NO_VALUE else v for v, q in zip(values, quality, strict=True)])
    else:
        quality, kept = (0,) * len(values), tuple(values)
    return Series(element, interval, time - time % interval - offset * interval, kept, quality)


def _alarm(item: Any) -> Alarm:
    if type(item) is not list or not 4 <= len(item) <= 5:
        raise Malformed("alarm must be [kind, state, value, threshold, ?window]")
    kind, state = _uint(item[0], "alarm kind"), _uint(item[1], "alarm state")
    if not 1 <= kind <= 5 or state > 2:
        raise Malformed(f"alarm kind {kind} / state {state} undefined")
    if (len(item) == 5) != (kind in WINDOW_ALARMS):
        raise Malformed(f"alarm kind {kind} {'needs' if kind in WINDOW_ALARMS else 'has no'} window")
    window = _uint(item[4], "alarm window") if len(item) == 5 else None
    return Alarm(kind, state, _int(item[2], "alarm value"), _int(item[3], "alarm threshold"), window)


def _command(item: Any) -> Command:
    if not isinstance(item, list) or len(item) not in (2, 3):
        raise Malformed("command must be [id, op, ?args]")
    if len(item) == 3 and item[2] is None:
        raise Malformed("command args must be absent rather than null")
    if item[0] == 0:
        raise Malformed("command id 0 (ids start at 1)")
    return Command(_uint(item[0], "command id"), _uint(item[1], "command op"),
                   item[2] if len(item) == 3 else None)


def _result(item: Any) -> Result:
    if not isinstance(item, list) or len(item) not in (2, 3):
        raise Malformed("result must be [id, code, ?detail]")
    code = _uint(item[1], "result code")
    if code > 4:
        raise Malformed(f"result code {code} undefined")
    if len(item) == 3 and item[2] is None:
        raise Malformed("result detail must be absent rather than null")
    return Result(_uint(item[0], "result id"), code, item[2] if len(item) == 3 else None)


def decode_body(frame_type: int, data: bytes, time: int, seq: int | None = None) -> Body:
    """Parse and validate a body against its frame type's schema."""
    item = _load_body(data)  # types, key order and unknown keys' contents checked there
    if type(item) is not dict or (item and type(next(iter(item))) is not int):
        raise Malformed("body must be a map with unsigned integer keys")
    if frame_type in REPORT_TYPES:
        if 1 not in item:
            raise Malformed("report without series (key 1)")
        series: list[Series] = []
        count = 0
        for s in _list(item[1], "series"):
            series.append(_series(s, time))
            count += len(series[-1].values)
            if count > MAX_VALUES:  # checked as they come: memory stays bounded
                raise Malformed(f"more than {MAX_VALUES} values in one report")
        if len(item) == 1:  # the usual data frame: series only
            if frame_type == ALARM:
                raise Malformed("alarm frame without alarms (key 3)")
            return Report(tuple(series))
        if item.get(2) == 0 or item.get(4) == 0:
            raise Malformed("a report key with its default value (0) must be left out")
        alarms = tuple(_alarm(a) for a in _list(item[3], "alarms", True)) if 3 in item else ()
        if frame_type == ALARM and not alarms:
            raise Malformed("alarm frame without alarms (key 3)")
        return Report(tuple(series), _uint(item.get(2, 0), "dropped"), alarms,
                      _uint(item.get(4, 0), "flags"))
    if frame_type == STATUS:
        fields: dict[str, Any] = {}
        for k, (typ, unsigned) in STATUS_TYPES.items():
            if k not in item:
                continue
            v: Any = item[k]
            if type(v) is not typ or (unsigned and v < 0):
                raise Malformed(f"status field {STATUS_NAMES[k]} has the wrong type")
            if k == 5 and v > 5:
                raise Malformed(f"reset cause {v} undefined")
            if k == 7 and v >= 2**32:
                raise Malformed("oldest unacknowledged time beyond 32 bits")
            if k == 11:
                if not all(type(c) is int and type(n) is int and n >= 0 for c, n in v.items()):
                    raise Malformed("status counters must map uint to uint")
                v = {str(c): n for c, n in v.items()}
            if k == 13:
                why = console_problem(v)
                if why is not None:
                    raise Malformed(why)
            fields[STATUS_NAMES[k]] = v
        return Status(fields)
    if frame_type == ACK:
        if 1 not in item:
            raise Malformed("ack without acks (key 1)")
        acks = tuple(_uint(s, "acked seq") for s in _list(item[1], "acks", True))
        if seq is not None and seq not in acks:
            raise Malformed(f"ack does not list the seq {seq} it answers")
        commands = tuple(_command(c) for c in _list(item.get(2, [None]), "commands", True)) \
            if 2 in item else ()
        return Ack(acks, commands)
    if frame_type == COMMAND:
        return Commands(tuple(_command(c) for c in _list(item.get(2), "commands", True)))
    return Results(tuple(_result(r) for r in _list(item.get(1), "results", True)))

