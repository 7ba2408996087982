"""Host codec for hydrolink frames v1 (SPEC.md): encode, deframe, verify, decode.

Sans-IO: nothing here reads or writes a port. The gateway, the CLI and the tests
feed bytes to a :class:`Deframer` and pass the raw frames to :func:`decode_frame`.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from itertools import accumulate, chain
from typing import TYPE_CHECKING, Any, NamedTuple

import cbor2
import crcmod.predefined
from cobs import cobs

if TYPE_CHECKING:
    from hashlib import _Hash

from protocol.elements import NO_VALUE
from protocol.errors import (
    BadCrc,
    BadTag,
    FrameError,
    Malformed,
    Oversize,
    Replay,
    Truncated,
    UnknownVersion,
)

VERSION = 1
HEADER = struct.Struct(">BIII")
HEADER_SIZE = 13
TAG_SIZE = 8
CRC_SIZE = 4
MIN_FRAME = HEADER_SIZE + 1 + TAG_SIZE + CRC_SIZE  # 26
MAX_FRAME = 1024
MAX_WIRE = MAX_FRAME + (MAX_FRAME + 253) // 254  # 1029: COBS of the largest frame
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
EPOCH_UNIX = 1_704_067_200
REPLAY_WINDOW = 4096
MAX_STATION = 2**30 - 1  # station ids are 1 .. 2^30-1 (SPEC §2: a small int on the board)
MAX_VALUES = 4096  # per series and per report: run tokens could otherwise claim millions
MAX_DEPTH = 16  # nested arrays and maps in a body (SPEC §4)

DATA, ALARM, STATUS, TEST, RESULT, ACK, COMMAND = 1, 2, 3, 4, 5, 8, 9
TYPE_NAMES = {
    DATA: "data", ALARM: "alarm", STATUS: "status", TEST: "test",
    RESULT: "result", ACK: "ack", COMMAND: "command",
}
TYPE_IDS = {name: t for t, name in TYPE_NAMES.items()}
REPORT_TYPES = frozenset((DATA, ALARM, TEST))
WINDOW_ALARMS = frozenset((1, 3))  # rain and level_rise are measured over a window
UPLINK_TYPES = frozenset((DATA, ALARM, STATUS, TEST, RESULT))

_crc32 = crcmod.predefined.mkCrcFun("crc-32")
_INT32 = (-(2**31), 2**31 - 1)

STATUS_KEYS = {
    "battery_mv": 1, "temperature": 2, "firmware": 3, "uptime": 4, "reset_cause": 5,
    "queue_depth": 6, "oldest_unacked": 7, "free_heap": 8, "free_flash": 9,
    "clock_offset": 10, "counters": 11, "flags": 12,
}
STATUS_NAMES = {k: name for name, k in STATUS_KEYS.items()}


# ---------------------------------------------------------------- data model


# Frame, Report and Series are named tuples, the other records frozen dataclasses: the
# receive path builds four of the former per data frame, and a tuple is built in half the time.


class Series(NamedTuple):
    """Values of one element at a fixed interval; ``start`` is the first value's time."""

    element: int
    interval: int
    start: int
    values: tuple[int | None, ...]
    quality: tuple[int, ...]

    def times(self) -> range:
        """Hydrolink time of each value."""
        return range(self.start, self.start + self.interval * len(self.values), self.interval)


@dataclass(frozen=True)
class Alarm:
    kind: int
    state: int
    value: int
    threshold: int
    window: int | None = None


class Report(NamedTuple):
    """Body of ``data``, ``alarm`` and ``test`` frames."""

    series: tuple[Series, ...] = ()
    dropped: int = 0
    alarms: tuple[Alarm, ...] = ()
    flags: int = 0


@dataclass(frozen=True)
class Status:
    """Body of ``status`` frames: only the fields the station sent (SPEC §8)."""

    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Command:
    id: int
    op: int
    args: Any = None  # None: no arguments on the wire


@dataclass(frozen=True)
class Result:
    id: int
    code: int
    detail: Any = None  # None: no detail on the wire


@dataclass(frozen=True)
class Ack:
    acks: tuple[int, ...]
    commands: tuple[Command, ...] = ()


@dataclass(frozen=True)
class Commands:
    commands: tuple[Command, ...]


@dataclass(frozen=True)
class Results:
    results: tuple[Result, ...]


Body = Report | Status | Ack | Commands | Results


class Frame(NamedTuple):
    """A verified, decoded frame. ``raw`` is the frame as received (no COBS)."""

    type: int
    station: int
    seq: int
    time: int
    body: Body
    raw: bytes = b""

    @property
    def type_name(self) -> str:
        return TYPE_NAMES[self.type]


def to_datetime(t: int) -> datetime:
    """Hydrolink seconds to an aware UTC datetime."""
    return EPOCH + timedelta(seconds=t)


def from_datetime(d: datetime) -> int:
    """Aware datetime to hydrolink seconds."""
    return int((d - EPOCH).total_seconds())


# ---------------------------------------------------------------- values (SPEC §5.2)


def _zz(v: int) -> int:
    return v << 1 if v >= 0 else (-v << 1) - 1


def _unzz(z: int) -> int:
    return z >> 1 if not z & 1 else -((z + 1) >> 1)


def _varint(out: bytearray, n: int) -> None:
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def fill_no_value(values: tuple[int | None, ...] | list[int | None]) -> list[int]:
    """Slots without a value carry the previous value (leading ones: the first value)."""
    first = next((v for v in values if v is not None), 0)
    out: list[int] = []
    prev = first
    for v in values:
        prev = prev if v is None else v
        out.append(prev)
    return out


def encode_values(values: list[int]) -> bytes:
    """Zigzag first value, then even tokens for deltas and odd tokens for zero runs."""
    out = bytearray()
    if not values:
        return b""
    _varint(out, _zz(values[0]))
    run = 0
    for prev, v in zip(values, values[1:], strict=False):
        d = v - prev
        if d == 0:
            run += 1
            continue
        if run:
            _varint(out, ((run - 1) << 1) | 1)
            run = 0
        _varint(out, _zz(d) << 1)
    if run:
        _varint(out, ((run - 1) << 1) | 1)
    return bytes(out)


# Deltas of each one-byte token (SPEC §5.2): even t is one delta, odd t a run of zeros.
_TOKEN_DELTAS = tuple(((0,) * ((t >> 1) + 1)) if t & 1 else (_unzz(t >> 1),) for t in range(128))


def decode_values_py(data: bytes) -> list[int]:
    """Inverse of :func:`encode_values`; ``Malformed`` on bad varints or int32 overflow.

    The reference for the compiled ``decode_values`` (protocol/_speedups.c).
    """
    if not data:
        return []
    n, pos = _read_varint(data, 0)
    first = _unzz(n)
    rest = data[pos:]
    if rest.isascii():  # the common case: one-byte tokens only, decoded in C loops
        values = list(accumulate(chain.from_iterable(map(_TOKEN_DELTAS.__getitem__, rest)), initial=first))
        if len(values) > MAX_VALUES:
            raise Malformed(f"more than {MAX_VALUES} values in a series")
        if abs(first) + 32 * len(rest) < _INT32[1]:  # one-byte deltas cannot leave int32
            return values
    else:
        values = [first]
        last, n, shift = first, 0, 0
        for b in rest:
            if b & 0x80:
                n |= (b & 0x7F) << shift
                shift += 7
                if shift >= 35:
                    raise Malformed("values varint longer than 5 bytes")
                continue
            n |= b << shift
            if n & 1:
                if len(values) + (n >> 1) >= MAX_VALUES:
                    raise Malformed(f"more than {MAX_VALUES} values in a series")
                values.extend([last] * ((n >> 1) + 1))
            else:
                last += _unzz(n >> 1)
                values.append(last)
            n = shift = 0
        if len(values) > MAX_VALUES:
            raise Malformed(f"more than {MAX_VALUES} values in a series")
        if shift:
            raise Malformed("values end inside a varint")
    if min(values) < _INT32[0] or max(values) > _INT32[1]:
        raise Malformed("value outside int32")
    return values


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise Malformed("values end inside a varint")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, pos
        shift += 7
        if shift >= 35:
            raise Malformed("values varint longer than 5 bytes")


def quality_runs(quality: tuple[int, ...] | list[int]) -> list[int]:
    """Per-value codes to the flat ``[start, count, code, ...]`` runs of SPEC §5.3."""
    runs: list[int] = []
    i = 0
    while i < len(quality):
        code = quality[i]
        j = i
        while j < len(quality) and quality[j] == code:
            j += 1
        if code:
            runs += [i, j - i, code]
        i = j
    return runs


def _expand_quality(runs: Any, n: int) -> list[int]:
    if not isinstance(runs, list) or not runs or len(runs) % 3:
        raise Malformed("quality must be a non-empty list of start, count, code triples")
    quality = [0] * n
    pos = 0
    prev_end, prev_code = -1, -1
    for k in range(0, len(runs), 3):
        start, count, code = runs[k : k + 3]
        if not all(type(x) is int for x in (start, count, code)):
            raise Malformed("quality run fields must be integers")
        if not 1 <= code <= 6:
            raise Malformed(f"quality code {code} is not 1..6")
        if start < pos or count < 1 or start + count > n:
            raise Malformed("quality runs overlap, are out of order or leave the series")
        if start == prev_end and code == prev_code:
            raise Malformed("adjacent quality runs with the same code are not merged")
        quality[start : start + count] = [code] * count
        pos = prev_end = start + count
        prev_code = code
    return quality


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


# ---------------------------------------------------------------- frames


def tag(key: bytes, signed: bytes) -> bytes:
    """Truncated HMAC-SHA256 over header and body (RFC 2104, as ``hmac.digest``)."""
    pads = _PADS.get(key) or _pads(key)
    inner, outer = pads[0].copy(), pads[1].copy()
    inner.update(signed)
    outer.update(inner.digest())
    return outer.digest()[:TAG_SIZE]


# SHA-256 states after each key's inner and outer pad: a tag then costs two hashes of the
# message instead of four setups too (0.6 instead of 1.6 us). ~1.5 KB a key; the cache is
# emptied when full, so a gateway with more stations than this only loses the saving.
_PADS: dict[bytes, tuple[_Hash, _Hash]] = {}
_PADS_MAX = 8192
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


def _pads(key: bytes) -> tuple[_Hash, _Hash]:
    block = (sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    if len(_PADS) >= _PADS_MAX:
        _PADS.clear()
    pads = _PADS[key] = (sha256(block.translate(_IPAD)), sha256(block.translate(_OPAD)))
    return pads


def encode_frame(frame_type: int, station: int, seq: int, time: int, body: Body, key: bytes) -> bytes:
    """Build one raw frame (no COBS). ``ValueError`` if the frame would break the spec."""
    if frame_type not in TYPE_NAMES:
        raise ValueError(f"unknown frame type {frame_type}")
    for name, v in (("station", station), ("seq", seq), ("time", time)):
        if not 0 <= v < 2**32:
            raise ValueError(f"{name} {v} does not fit 32 bits")
    if not 1 <= station <= MAX_STATION:
        raise ValueError(f"station id {station} outside 1 .. {MAX_STATION} (SPEC §2)")
    item = cbor2.dumps(body_item(frame_type, body, time))
    try:  # args and details could hold what the subset has not (mixed keys, NaN as cbor2 writes it)
        check_cbor(item)
    except Malformed as e:
        raise ValueError(f"body outside the subset of SPEC §4: {e}") from None
    signed = HEADER.pack((VERSION << 4) | frame_type, station, seq, time) + item
    raw = signed + tag(key, signed)
    raw += struct.pack(">I", _crc32(raw))
    if len(raw) > MAX_FRAME:
        raise ValueError(f"frame of {len(raw)} bytes exceeds MAX_FRAME {MAX_FRAME}")
    return raw


def wrap(raw: bytes) -> bytes:
    """COBS-encode a raw frame and append the 0x00 delimiter: the bytes on the wire."""
    return bytes(cobs.encode(raw)) + b"\x00"


def check_raw(raw: bytes) -> tuple[int, int, int, int]:
    """Steps 2-6 of SPEC §9 (no key needed): returns type, station, seq, time."""
    if len(raw) < MIN_FRAME:
        raise Truncated(f"frame of {len(raw)} bytes is shorter than {MIN_FRAME}")
    if len(raw) > MAX_FRAME:
        raise Oversize(f"frame of {len(raw)} bytes is longer than {MAX_FRAME}")
    got = int.from_bytes(raw[-CRC_SIZE:], "big")
    want = _crc32(raw[:-CRC_SIZE])
    if got != want:
        raise BadCrc(f"CRC {got:08x} != computed {want:08x}")
    vt, station, seq, time = HEADER.unpack_from(raw)
    if vt >> 4 != VERSION:
        raise UnknownVersion(f"protocol version {vt >> 4}, this codec speaks {VERSION}")
    if vt & 0x0F not in TYPE_NAMES:
        raise Malformed(f"unknown frame type {vt & 0x0F}")
    if not 1 <= station <= MAX_STATION:
        raise Malformed(f"station id {station} outside 1 .. {MAX_STATION}")
    return vt & 0x0F, station, seq, time


def decode_frame(raw: bytes, keys: Mapping[int, bytes]) -> Frame:
    """Verify and decode one raw frame (SPEC §9 steps 2-8). Raises a ``FrameError``."""
    frame_type, station, seq, time = check_raw(raw)
    key = keys.get(station)
    if key is None:
        raise BadTag(f"unknown station {station}: no key")
    signed = raw[: -(TAG_SIZE + CRC_SIZE)]
    if not hmac.compare_digest(tag(key, signed), raw[-(TAG_SIZE + CRC_SIZE) : -CRC_SIZE]):
        raise BadTag(f"station {station} seq {seq}: tag does not match (forged or altered)")
    body = decode_body(frame_type, raw[HEADER_SIZE : -(TAG_SIZE + CRC_SIZE)], time, seq)
    return Frame(frame_type, station, seq, time, body, bytes(raw))


def decode_unverified(raw: bytes) -> Frame:
    """Decode without checking the tag (for a capture without keys): CRC and body still checked."""
    frame_type, station, seq, time = check_raw(raw)
    body = decode_body(frame_type, raw[HEADER_SIZE : -(TAG_SIZE + CRC_SIZE)], time, seq)
    return Frame(frame_type, station, seq, time, body, bytes(raw))


def _head(data: bytes, p: int, end: int) -> tuple[int, int, int]:
    """Major type, argument (shortest form only) and the position after one CBOR head.
    Major type 7 comes back with its additional information as the argument."""
    if p >= end:
        raise Malformed("body ends inside an item")
    mt, ai = data[p] >> 5, data[p] & 0x1F
    p += 1
    if mt == 7 or ai < 24:
        return mt, ai, p
    if ai == 31:
        raise Malformed("indefinite length (outside the subset of SPEC §4)")
    if ai > 27:
        raise Malformed("reserved additional information in a CBOR head")
    n = 1 << (ai - 24)
    if end - p < n:
        raise Malformed("body ends inside an item")
    v = int.from_bytes(data[p : p + n], "big")
    if v < (24 if n == 1 else 1 << (4 * n)):
        raise Malformed("integer or length not in its shortest form (SPEC §4)")
    return mt, v, p + n


def check_cbor_py(data: bytes) -> None:
    """``Malformed`` unless ``data`` is one CBOR item in the subset and deterministic
    encoding of SPEC §4: shortest heads, definite lengths, no tags, simple values false,
    true, null, floats as float64, integers within 64 bits, at most 16 nested arrays and
    maps, map keys all unsigned or all text in strictly ascending order of their encodings,
    nothing after the item. Walks the bytes only (UTF-8 is left to ``cbor2.loads``).

    The reference for the compiled ``check_cbor`` (protocol/_speedups.c).
    """
    end, p = len(data), 0
    stack: list[list[int]] = []  # open containers: [left, is_map, key type, key start, key end]
    while True:
        if stack:
            top = stack[-1]
            top[0] -= 1
            if top[1]:  # a key first
                start = p
                mt, n, p = _head(data, p, end)
                if mt != 0 and mt != 3:
                    raise Malformed("map keys must be unsigned integers or text")
                if mt == 3:
                    if end - p < n:
                        raise Malformed("body ends inside an item")
                    p += n
                if top[2] < 0:
                    top[2] = mt
                elif mt != top[2]:
                    raise Malformed("map keys must be all unsigned integers or all text")
                elif data[top[3] : top[4]] >= data[start:p]:
                    raise Malformed("map keys are not in ascending order of their encodings")
                top[3], top[4] = start, p
        mt, n, p = _head(data, p, end)
        if mt == 1:
            if n > 2**63 - 1:
                raise Malformed("integer outside 64 bits")
        elif mt == 2 or mt == 3:
            if end - p < n:
                raise Malformed("body ends inside an item")
            p += n
        elif mt == 4 or mt == 5:
            if len(stack) >= MAX_DEPTH:
                raise Malformed(f"arrays and maps nested deeper than {MAX_DEPTH}")
            if n > end - p:  # every item is at least one byte
                raise Malformed("body ends inside an item")
            if n:
                stack.append([n, mt == 5, -1, 0, 0])
                continue
        elif mt == 6:
            raise Malformed("CBOR tag (outside the subset of SPEC §4)")
        elif mt == 7:
            if n == 27:
                if end - p < 8:
                    raise Malformed("body ends inside an item")
                p += 8
            elif not 20 <= n <= 22:
                raise Malformed("simple value or float other than false, true, null or float64")
        while stack and not stack[-1][0]:
            stack.pop()
        if not stack:
            break
    if p != end:
        raise Malformed(f"{end - p} bytes after the body")


try:  # the compiled twins: setup.py builds them, tests/test_speedups.py checks they agree
    from protocol._speedups import check_cbor, decode_values
except ImportError:  # pragma: no cover - built without a C compiler: same results, slower
    check_cbor, decode_values = check_cbor_py, decode_values_py


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
        quality = tuple(_expand_quality(item[4], len(values)))
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


_STATUS_TYPES: dict[int, tuple[type[Any], bool]] = {  # key: (type, unsigned)
    1: (int, False), 2: (int, False), 3: (str, False), 4: (int, True), 5: (int, True),
    6: (int, True), 7: (int, True), 8: (int, True), 9: (int, True), 10: (int, False),
    11: (dict, False), 12: (int, True),
}


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
        for k, (typ, unsigned) in _STATUS_TYPES.items():
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


# ---------------------------------------------------------------- byte streams


class Deframer:
    """Splits a byte stream at 0x00 delimiters into raw frames (SPEC §2).

    ``feed`` returns the raw frames (bytes) completed by its data and, in their place,
    ``FrameError`` instances for COBS errors and over-long garbage. The bytes after the
    last delimiter wait for the next feed; the buffer never exceeds ``MAX_WIRE``.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skipping = False  # dropping an over-long chunk up to the next delimiter

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        *chunks, tail = data.split(b"\x00")
        if chunks:  # the first delimiter ends what was buffered
            if self._skipping:
                chunks[0] = b""
            elif self._buf:
                chunks[0] = bytes(self._buf) + chunks[0]
            self._buf.clear()
            self._skipping = False
        out: list[bytes | FrameError] = []
        for chunk in chunks:
            if not chunk:
                continue  # delimiters back to back: nothing between them
            if len(chunk) > MAX_WIRE:
                out.append(Oversize(f"no delimiter within {MAX_WIRE} bytes"))
                continue
            try:
                out.append(cobs.decode(chunk))
            except cobs.DecodeError as e:
                out.append(Malformed(f"COBS: {e}"))
        if not self._skipping:
            if len(self._buf) + len(tail) > MAX_WIRE:
                self._buf.clear()
                self._skipping = True
                out.append(Oversize(f"no delimiter within {MAX_WIRE} bytes"))
            else:
                self._buf += tail
        return out

    @property
    def buffered(self) -> int:
        """Bytes waiting for a delimiter."""
        return len(self._buf)


class ReplayWindow:
    """Per-station uplink replay rule of SPEC §6: duplicate, replay or new.

    Per station: the highest accepted seq H and a bitmap of the accepted seqs in
    H-size+1 .. H (bit i is seq H-i): about 0.6 KB a station at the default size.
    """

    def __init__(self, size: int = REPLAY_WINDOW) -> None:
        self.size = size
        self._full = (1 << size) - 1
        self.stations: dict[int, tuple[int, int]] = {}  # station -> (highest, bitmap)

    def check(self, station: int, seq: int) -> bool:
        """True if new, False if a duplicate; raises ``Replay`` if older than the window."""
        if station not in self.stations:
            return True
        h, bits = self.stations[station]
        if seq > h:
            return True
        if seq <= h - self.size:
            raise Replay(f"station {station} seq {seq} is older than the window (highest {h})")
        return not bits >> (h - seq) & 1

    def accept(self, station: int, seq: int) -> None:
        """Record a seq as accepted (after it was durably stored)."""
        h, bits = self.stations.get(station, (seq, 0))
        if seq > h:
            bits, h = (bits << (seq - h)) & self._full, seq
        if seq > h - self.size:
            bits |= 1 << (h - seq)
        self.stations[station] = (h, bits)

    def merge(self, station: int, highest: int, bits: int) -> None:
        """Record as accepted the seqs of a bitmap (bit i: seq ``highest`` - i), as a
        restarted receiver does with the history it saved."""
        h, mine = self.stations.get(station, (highest, 0))
        if highest > h:
            mine, h = (mine << (highest - h)) & self._full, highest
        if h - highest < self.size:
            mine |= (bits << (h - highest)) & self._full
        self.stations[station] = (h, mine)

    def highest(self, station: int) -> int | None:
        """The highest accepted seq of a station, if any."""
        return self.stations[station][0] if station in self.stations else None


# ---------------------------------------------------------------- message JSON (SPEC §10.1)


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
        frame_type = TYPE_IDS[msg["type"]]
        b = msg["body"]
        body: Body
        if frame_type in REPORT_TYPES:
            body = Report(tuple(_series_of(s) for s in b.get("series", [])),
                          _j(b.get("dropped", 0), "dropped"),
                          tuple(_alarm_of(a) for a in b.get("alarms", [])),
                          _j(b.get("flags", 0), "flags"))
        elif frame_type == STATUS:
            for name, v in b.items():
                if name not in STATUS_KEYS:
                    raise ValueError(f"unknown status field {name!r}")
                typ, unsigned = _STATUS_TYPES[STATUS_KEYS[name]]
                if type(v) is not typ or (unsigned and v < 0):
                    raise ValueError(f"status field {name!r} must be a{'n unsigned' if unsigned else ''}"
                                     f" {typ.__name__}")
            body = Status(dict(b))
        elif frame_type == ACK:
            body = Ack(tuple(_j(s, "acked seq") for s in b["acks"]),
                       tuple(_command_of(c) for c in b.get("commands", [])))
        elif frame_type == COMMAND:
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
