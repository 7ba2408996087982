"""Frames as the message JSON of the vectors (SPEC §10.1), and back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from protocol import model as m
from protocol.frames import encode_frame
from protocol.model import Ack, Alarm, Body, Command, Commands, Frame, Report, Result, Results, Series, Status


def frame_to_message(frame: Frame) -> dict[str, Any]:
    """A frame as the JSON-able message of the vectors (scaled integers, hydrolink times)."""
    b = frame.body
    body: dict[str, Any]
    if isinstance(b, Report):
        body = {
            "series": [
                {"element": s.element, "interval": s.interval, "start": s.start,
                 "values": list(s.values), "quality": list(s.quality)}
                for s in b.series
            ],
            "dropped": b.dropped,
            "alarms": [
                {"kind": a.kind, "state": a.state, "value": a.value, "threshold": a.threshold}
                | ({} if a.window is None else {"window": a.window})
                for a in b.alarms
            ],
            "flags": b.flags,
        }
    elif isinstance(b, Status):
        body = dict(b.fields)
    elif isinstance(b, Ack):
        body = {"acks": list(b.acks), "commands": [_command_msg(c) for c in b.commands]}
    elif isinstance(b, Commands):
        body = {"commands": [_command_msg(c) for c in b.commands]}
    else:
        body = {"results": [
            {"id": r.id, "code": r.code} | ({} if r.detail is None else {"detail": r.detail})
            for r in b.results
        ]}
    return {"type": frame.type_name, "station": frame.station, "seq": frame.seq,
            "time": frame.time, "body": body}


def _command_msg(c: Command) -> dict[str, Any]:
    return {"id": c.id, "op": c.op} | ({} if c.args is None else {"args": c.args})


def _j(v: Any, what: str) -> int:
    if type(v) is not int:
        raise ValueError(f"{what} must be an integer, not {v!r}")
    return v


def _series_of(s: Mapping[str, Any]) -> Series:
    values = tuple(None if v is None else _j(v, "series value") for v in s["values"])
    quality = s.get("quality")
    return Series(_j(s["element"], "element"), _j(s["interval"], "interval"),
                  _j(s["start"], "start"), values,
                  tuple(_j(q, "quality") for q in quality) if quality is not None
                  else tuple(3 if v is None else 0 for v in values))


def _alarm_of(a: Mapping[str, Any]) -> Alarm:
    window = a.get("window")
    return Alarm(_j(a["kind"], "alarm kind"), _j(a["state"], "alarm state"),
                 _j(a["value"], "alarm value"), _j(a["threshold"], "alarm threshold"),
                 None if window is None else _j(window, "alarm window"))


def message_to_frame(msg: Mapping[str, Any]) -> Frame:
    """Inverse of :func:`frame_to_message` (``raw`` left empty). ``ValueError`` on bad input."""
    try:
        frame_type = m.TYPE_IDS[msg["type"]]
        b = msg["body"]
        body: Body
        if frame_type in m.REPORT_TYPES:
            body = Report(tuple(_series_of(s) for s in b.get("series", [])),
                          _j(b.get("dropped", 0), "dropped"),
                          tuple(_alarm_of(a) for a in b.get("alarms", [])),
                          _j(b.get("flags", 0), "flags"))
        elif frame_type == m.STATUS:
            for name, v in b.items():
                if name not in m.STATUS_KEYS:
                    raise ValueError(f"unknown status field {name!r}")
                typ, unsigned = m.STATUS_TYPES[m.STATUS_KEYS[name]]
                if type(v) is not typ or (unsigned and v < 0):
                    raise ValueError(f"status field {name!r} must be a{'n unsigned' if unsigned else ''}"
                                     f" {typ.__name__}")
            body = Status(dict(b))
        elif frame_type == m.ACK:
            body = Ack(tuple(_j(s, "acked seq") for s in b["acks"]),
                       tuple(_command_of(c) for c in b.get("commands", [])))
        elif frame_type == m.COMMAND:
            body = Commands(tuple(_command_of(c) for c in b["commands"]))
        else:
            body = Results(tuple(Result(_j(r["id"], "result id"), _j(r["code"], "result code"),
                                        r.get("detail")) for r in b["results"]))
        return Frame(frame_type, _j(msg["station"], "station"), _j(msg["seq"], "seq"),
                     _j(msg["time"], "time"), body)
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"message is missing or has a bad field: {e!r}") from None


def _command_of(c: Mapping[str, Any]) -> Command:
    return Command(_j(c["id"], "command id"), _j(c["op"], "command op"), c.get("args"))


def encode_message(msg: Mapping[str, Any], key: bytes) -> bytes:
    """Encode a message JSON object to a raw frame."""
    f = message_to_frame(msg)
    return encode_frame(f.type, f.station, f.seq, f.time, f.body, key)
