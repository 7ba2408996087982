"""Gateway MQTT messages to store rows: a pure function, and ``store_messages``.

:func:`convert` turns one ``(topic, payload)`` into a :class:`Batch` of rows without
touching a database; what cannot be stored becomes a :class:`Reject` with a reason
code (``bad_topic``, ``bad_json``, ``unknown_version``, ``bad_payload``,
``station_mismatch``, ``unknown_element``, ``unknown_quality``, ``bad_time``,
``bad_value``) and one line of detail, so nothing disappears without a trace. The
valid series of a message are kept even when another series of it is rejected.

``test`` reports (a technician's button) are kept as events, not observations: they
are off the record-interval grid. So are the changes a technician makes at a station's
console (kind ``console``), from the gateway's ``console`` events and from the status
message that carries them, stored once (:func:`console_event`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from protocol.codec import EPOCH_UNIX
from protocol.elements import BY_NAME, QUALITY_NAMES

from .model import Batch, Event, Reject, Row, StationAlarm, StatusRow, UpsertResult

try:  # orjson parses the gateway's JSON several times faster; json gives the same objects
    from orjson import JSONDecodeError as _JSONError
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is a dependency
    from json import JSONDecodeError as _JSONError  # type: ignore[assignment]
    from json import loads as _loads  # type: ignore[assignment]

if TYPE_CHECKING:
    from .store import Store

PREFIX = "hydrolink/v1"  # the gateway's default --topic-prefix
REJECT_REASONS = ("bad_topic", "bad_json", "unknown_version", "bad_payload", "station_mismatch",
                  "unknown_element", "unknown_quality", "bad_time", "bad_value", "internal")
KINDS = ("obs", "alarm", "status", "events", "state")
FUTURE_S = 86_400  # a reading more than a day ahead of its arrival has an impossible time
_QUALITIES = frozenset(q for q in QUALITY_NAMES if q)
_ELEMENTS = frozenset(BY_NAME)
MAX_STATION = 2**32 - 1


class Bad(ValueError):
    """One reason a message (or part of one) cannot be stored."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@functools.lru_cache(maxsize=65536)
def _unix(text: str) -> float:
    if text[-1:] == "Z":
        text = text[:-1] + "+00:00"
    d = datetime.fromisoformat(text)
    if d.tzinfo is None:
        raise ValueError("no zone")
    return d.timestamp()


_SECONDS: dict[str, int] = {}  # ISO text -> whole UNIX seconds: the readings' hot path, a dict lookup


def _whole_seconds(text: str) -> int:
    """A whole second's ISO text as UNIX seconds (kept in ``_SECONDS``); ValueError otherwise."""
    t = _unix(text)
    if t != int(t):
        raise ValueError(text)
    if len(_SECONDS) >= 65536:
        _SECONDS.clear()
    _SECONDS[text] = int(t)
    return int(t)


def unix_time(value: Any, what: str) -> float:
    """ISO 8601 text with a zone to UNIX seconds; :class:`Bad` ``bad_time`` otherwise."""
    if not isinstance(value, str):
        raise Bad("bad_time", f"{what}: {value!r} is not an ISO 8601 time")
    try:
        return _unix(value)
    except ValueError:
        raise Bad("bad_time", f"{what}: {value!r} is not an ISO 8601 time with a zone") from None


def _int_time(value: Any, what: str, received: float) -> int:
    t = unix_time(value, what)
    if t != int(t) or not EPOCH_UNIX <= t <= received + FUTURE_S:
        raise Bad("bad_time", f"{what}: {value} is impossible (before 2024 or over a day after arrival)")
    return int(t)


def topics(prefix: str = PREFIX) -> list[str]:
    """The topic filters the center subscribes to."""
    return [f"{prefix.rstrip('/')}/+/{k}" for k in KINDS]


def _station(topic: str, prefix: str) -> tuple[int, str]:
    head, _, rest = topic.rpartition("/")
    head, _, sid = head.rpartition("/")
    if head != prefix.rstrip("/") or rest not in KINDS:
        raise Bad("bad_topic", f"topic {topic!r} is not {prefix}/<station>/{'|'.join(KINDS)}")
    if not sid.isdigit() or not 1 <= int(sid) <= MAX_STATION:
        raise Bad("bad_topic", f"topic {topic!r}: station {sid!r} is not an id 1 .. {MAX_STATION}")
    return int(sid), rest


def _num(v: Any, what: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise Bad("bad_value", f"{what}: {v!r} is not a number")
    return float(v)


def _opt_int(v: Any) -> int | None:
    return v if type(v) is int else None


def convert(topic: str, payload: bytes, received: float, prefix: str = PREFIX) -> Batch:
    """The rows one MQTT message becomes (``received``: the center's clock, UNIX s)."""
    out = Batch()
    try:
        station, kind = _station(topic, prefix)
        try:
            doc = _loads(payload)
        except (UnicodeDecodeError, _JSONError, ValueError) as e:
            raise Bad("bad_json", f"not JSON: {e}") from None
        if not isinstance(doc, dict):
            raise Bad("bad_json", "the payload is not a JSON object")
        if kind == "state":
            out.states.append((station, received, payload.decode()))
            return out
        if doc.get("v", 1) != 1:
            raise Bad("unknown_version", f"payload version {doc.get('v')!r}; this center reads 1")
        if doc.get("station", station) != station:
            raise Bad("station_mismatch", f"payload station {doc.get('station')!r} on topic {topic}")
        got = doc.get("received")
        stamp = received if got is None else unix_time(got, "received")
        if kind == "events":
            _event(doc, station, stamp, payload, out)
        elif kind == "status":
            _status(doc, station, stamp, out)
        else:
            _report(doc, station, stamp, topic, payload, out)
    except Bad as e:
        out.rejects.append(Reject(received, topic, e.reason, str(e), payload))
    except Exception as e:  # a bug must not stop the receiver either: keep the message
        out = Batch(rejects=[Reject(received, topic, "internal", f"{type(e).__name__}: {e}", payload)])
    return out


def _header(doc: dict[str, Any], stamp: float) -> tuple[int, int]:
    seq = doc.get("seq")
    if type(seq) is not int or seq < 0:
        raise Bad("bad_payload", f"seq {seq!r} must be an integer")
    return seq, _int_time(doc.get("time"), "time", stamp)


def _report(doc: dict[str, Any], station: int, stamp: float, topic: str, payload: bytes, out: Batch) -> None:
    seq, time = _header(doc, stamp)
    if doc.get("type") == "test":
        out.events.append(Event(station, time, "test_report", f"{seq}:{time}", stamp, payload.decode()))
        return
    series, alarms = doc.get("series", []), doc.get("alarms", [])
    if not isinstance(series, list) or not isinstance(alarms, list):
        raise Bad("bad_payload", "series and alarms must be arrays")
    first: Bad | None = None
    for i, s in enumerate(series):
        try:
            out.observations += _series(s, i, station, stamp)
        except Bad as e:
            first = first or e
    for i, a in enumerate(alarms):
        try:
            out.alarms.append(_alarm(a, i, station, time, seq, stamp))
        except Bad as e:
            first = first or e
    if first is not None:
        out.rejects.append(Reject(stamp, topic, first.reason, str(first), payload))


def _series(s: Any, i: int, station: int, stamp: float) -> list[Row]:
    where = f"series[{i}]"
    if not isinstance(s, dict) or not isinstance(s.get("values"), list):
        raise Bad("bad_payload", f"{where} must be an object with a values array")
    element = s.get("element")
    if element not in _ELEMENTS:
        raise Bad("unknown_element", f"{where}: element {element!r} is not in elements.csv")
    rows: list[Row] = []
    append, seconds, qualities, latest = rows.append, _SECONDS.get, _QUALITIES, stamp + FUTURE_S
    try:  # the fast path: every value well formed (a reading costs a few dict lookups)
        for v in s["values"]:
            text = v["time"]
            t = seconds(text) or _whole_seconds(text)
            q, value = v["quality"], v["value"]
            if q not in qualities or not EPOCH_UNIX <= t <= latest or not (value is None or type(value) is float):
                raise ValueError
            append((station, element, t, value, q, stamp))
    except (ValueError, TypeError, KeyError, IndexError):
        return _series_checked(s["values"], where, station, element, stamp)
    return rows


def _series_checked(values: list[Any], where: str, station: int, element: str, stamp: float) -> list[Row]:
    """The slow path: find the first bad value and say what is wrong with it."""
    rows: list[Row] = []
    for j, v in enumerate(values):
        w = f"{where}.values[{j}]"
        if not isinstance(v, dict):
            raise Bad("bad_payload", f"{w} must be an object")
        q = v.get("quality")
        if q not in _QUALITIES:
            raise Bad("unknown_quality", f"{w}: quality {q!r} is not one of {', '.join(sorted(_QUALITIES))}")
        rows.append((station, element, _int_time(v.get("time"), w + ".time", stamp),
                     _num(v.get("value"), w + ".value"), q, stamp))
    return rows


def _alarm(a: Any, i: int, station: int, time: int, seq: int, stamp: float) -> StationAlarm:
    if not isinstance(a, dict) or not isinstance(a.get("kind"), str) or not isinstance(a.get("state"), str):
        raise Bad("bad_payload", f"alarms[{i}] needs a kind and a state")
    return StationAlarm(station, time, seq, a["kind"], a["state"], _num(a.get("value"), f"alarms[{i}].value"),
                        _num(a.get("threshold"), f"alarms[{i}].threshold"), a.get("unit"),
                        _opt_int(a.get("window_s")), stamp)


def _status(doc: dict[str, Any], station: int, stamp: float, out: Batch) -> None:
    seq, time = _header(doc, stamp)
    oldest = doc.get("oldest_unacked")
    oldest_t = None if oldest is None else int(unix_time(oldest, "oldest_unacked")) \
        if isinstance(oldest, str) else _opt_int(oldest)
    counters, flags = doc.get("counters"), doc.get("flags")
    fw = doc.get("firmware")
    out.status.append(StatusRow(
        station, time, seq, stamp, _num(doc.get("battery_v"), "battery_v"),
        _num(doc.get("temperature_degc"), "temperature_degc"), _num(doc.get("clock_offset_s"), "clock_offset_s"),
        _opt_int(doc.get("queue_depth")), oldest_t, _opt_int(doc.get("uptime_s")),
        None if fw is None else str(fw), None if doc.get("reset_cause") is None else str(doc["reset_cause"]),
        _opt_int(doc.get("free_heap_bytes")), _opt_int(doc.get("free_flash_bytes")),
        None if counters is None else json.dumps(counters), None if flags is None else json.dumps(flags),
    ))
    changes = doc.get("console")
    if changes is not None:  # the technician's changes: events (the gateway sends each one too)
        if not isinstance(changes, list):
            raise Bad("bad_payload", "status console must be an array of changes")
        out.events += [console_event(station, seq, i, e, stamp) for i, e in enumerate(changes)]


def console_event(station: int, seq: Any, index: Any, entry: Any, stamp: float) -> Event:
    """One console change (SPEC §8 key 13) as an event row, keyed by the status frame's
    ``seq`` and the entry's ``index`` in it: the gateway's ``console`` event and the status
    message that carries the same entry store one row, however often either comes."""
    if type(seq) is not int or seq < 0 or type(index) is not int or index < 0:
        raise Bad("bad_payload", f"console change: seq {seq!r} and index {index!r} must be integers")
    if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
        raise Bad("bad_payload", f"console change {seq}:{index} needs a time and a text")
    t = _int_time(entry.get("time"), f"console change {seq}:{index} time", stamp)
    text = json.dumps({"event": "console", "text": entry["text"], "time": entry["time"], "seq": seq,
                       "index": index, "station": station}, ensure_ascii=False, separators=(",", ":"))
    return Event(station, t, "console", f"{seq}:{index}", stamp, text)


def _event(doc: dict[str, Any], station: int, stamp: float, payload: bytes, out: Batch) -> None:
    text = payload.decode()
    if "event" in doc:
        kind = doc["event"]
        if not isinstance(kind, str):
            raise Bad("bad_payload", f"event {kind!r} must be a name")
        if kind == "console":
            out.events.append(console_event(station, doc.get("seq"), doc.get("index"), doc, stamp))
            return
        when = doc.get("sent") or doc.get("time")
        t = int(unix_time(when, "sent")) if when is not None else int(stamp)
        key = f"{doc['ack_seq']}:{t}" if "ack_seq" in doc else hashlib.sha1(payload).hexdigest()[:20]
        out.events.append(Event(station, t, kind, key, stamp, text))
        return
    seq, time = _header(doc, stamp)
    if not isinstance(doc.get("results"), list):
        raise Bad("bad_payload", "an events payload needs results or event")
    out.events.append(Event(station, time, str(doc.get("type", "result")), f"{seq}:{time}", stamp, text))


def convert_all(messages: Iterable[tuple[str, bytes]], received: float, prefix: str = PREFIX) -> Batch:
    """Many messages into one batch."""
    out = Batch()
    for topic, payload in messages:
        out.extend(convert(topic, payload, received, prefix))
    return out


def store_messages(store: Store, messages: Iterable[tuple[str, bytes]], received: float | None = None,
                   prefix: str = PREFIX) -> tuple[UpsertResult, int]:
    """Store ``(topic, payload)`` messages in one transaction (``hydrolink center import``).

    Returns what happened to the readings and how many messages (or parts) were rejected.
    """
    batch = convert_all(messages, store.clock() if received is None else received, prefix)
    return store.store_batch(batch), len(batch.rejects)
