"""Hydrolink frames v1 (SPEC.md): sizes, type ids, status keys and the decoded records.

Shared by every part of the host codec (:mod:`protocol.codec` re-exports all of it).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

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
MAX_CONSOLE = 8  # status key 13: at most 8 console entries [time, text] (SPEC §8)
MAX_CONSOLE_TEXT = 70  # bytes of UTF-8 in one console entry's text

DATA, ALARM, STATUS, TEST, RESULT, ACK, COMMAND = 1, 2, 3, 4, 5, 8, 9
TYPE_NAMES = {
    DATA: "data", ALARM: "alarm", STATUS: "status", TEST: "test",
    RESULT: "result", ACK: "ack", COMMAND: "command",
}
TYPE_IDS = {name: t for t, name in TYPE_NAMES.items()}
REPORT_TYPES = frozenset((DATA, ALARM, TEST))
WINDOW_ALARMS = frozenset((1, 3))  # rain and level_rise are measured over a window
UPLINK_TYPES = frozenset((DATA, ALARM, STATUS, TEST, RESULT))

STATUS_KEYS = {
    "battery_mv": 1, "temperature": 2, "firmware": 3, "uptime": 4, "reset_cause": 5,
    "queue_depth": 6, "oldest_unacked": 7, "free_heap": 8, "free_flash": 9,
    "clock_offset": 10, "counters": 11, "flags": 12, "console": 13,
}
STATUS_NAMES = {k: name for name, k in STATUS_KEYS.items()}
STATUS_TYPES: dict[int, tuple[type[Any], bool]] = {  # key: (type, unsigned)
    1: (int, False), 2: (int, False), 3: (str, False), 4: (int, True), 5: (int, True),
    6: (int, True), 7: (int, True), 8: (int, True), 9: (int, True), 10: (int, False),
    11: (dict, False), 12: (int, True), 13: (list, False),
}


def console_problem(entries: list[Any]) -> str | None:
    """Why a status ``console`` list (key 13) breaks SPEC §8, or None if it is valid."""
    if not 1 <= len(entries) <= MAX_CONSOLE:
        return f"status console must hold 1 .. {MAX_CONSOLE} entries, not {len(entries)}"
    for i, e in enumerate(entries):
        if type(e) is not list or len(e) != 2:
            return f"status console entry {i} must be [time, text]"
        t, text = e
        if type(t) is not int or not 0 <= t < 2**32:
            return f"status console entry {i}: time must be hydrolink seconds below 2^32"
        if type(text) is not str or len(text.encode("utf-8", "surrogatepass")) > MAX_CONSOLE_TEXT:
            return f"status console entry {i}: text must be at most {MAX_CONSOLE_TEXT} bytes of UTF-8"
    return None


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

