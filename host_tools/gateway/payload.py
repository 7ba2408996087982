"""The MQTT payload of a frame: the SI JSON view of ``hydrolink decode``, plus envelope.

The view itself is :func:`host_tools.jsonview.frame_to_si` (one SI converter for the
whole project); the gateway adds what only it knows: the payload version ``v``, the
station's registry ``name``, when and on which link the frame was ``received``, the
command each ``result`` answers, and on request the ``raw`` frame in hex. A status
frame's console changes are also events of their own (:func:`console_events`).
"""

from __future__ import annotations

import json
from typing import Any

from protocol.codec import (
    ALARM,
    CRC_SIZE,
    HEADER_SIZE,
    RESULT,
    STATUS,
    TAG_SIZE,
    Frame,
    Status,
    check_raw,
    decode_body,
)

from ..jsonview import frame_to_si
from ..siview import iso as hl_iso
from .names import iso, op_name

__all__ = ["iso"]  # the gateway's time format (from names)

PAYLOAD_VERSION = 1


def frame_payload(
    frame: Frame,
    *,
    name: str | None,
    received: float,
    link: str,
    raw_hex: bool = False,
    commands: dict[int, tuple[int, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON object published for one accepted frame."""
    out: dict[str, Any] = {"v": PAYLOAD_VERSION}
    out.update(frame_to_si(frame))
    out["name"] = name
    out["received"] = iso(received)
    out["link"] = link
    if commands and "results" in out:
        for r in out["results"]:
            known = commands.get(r["id"])
            if known is not None:
                op, args = known
                r["command"] = {"op": op_name(op)} | ({} if args is None else {"args": args})
    if raw_hex:
        out["frame"] = frame.raw.hex()
    return out


def console_events(frame: Frame) -> list[dict[str, Any]]:
    """The ``<station>/events`` messages of a status frame's console changes (SPEC §8 key 13).

    One per entry: ``{"event": "console", "seq", "index", "time", "text"}``, ``time`` the
    station's clock when the technician made the change. ``seq`` and ``index`` (the entry's
    place in the frame) name it, so the center stores it once however often it comes.
    """
    fields = frame.body.fields if isinstance(frame.body, Status) else {}
    return [{"event": "console", "seq": frame.seq, "index": i, "time": hl_iso(t), "text": text}
            for i, (t, text) in enumerate(fields.get("console") or ())]


def topic_kind(frame_type: int) -> str:
    """The last topic level for a frame type."""
    if frame_type == ALARM:
        return "alarm"
    if frame_type == STATUS:
        return "status"
    if frame_type == RESULT:
        return "events"
    return "obs"


def stored_frame(raw: bytes) -> Frame:
    """Decode a frame from the spool. Its tag was verified before it was stored, so no key
    is needed here (the registry may have changed the key since). Raises ``FrameError``."""
    ftype, station, seq, time = check_raw(raw)
    body = decode_body(ftype, raw[HEADER_SIZE : -(TAG_SIZE + CRC_SIZE)], time)
    return Frame(ftype, station, seq, time, body, raw)


def _bytes_hex(obj: object) -> str:
    # CBOR byte strings may appear in command results; JSON has none.
    if isinstance(obj, bytes):
        return obj.hex()
    raise TypeError(f"{type(obj).__name__} is not JSON")


def encode_json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=_bytes_hex).encode()
