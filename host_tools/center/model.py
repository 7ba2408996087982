"""The plain records the center store reads and writes (no database types leak out)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class ObsRow(NamedTuple):
    """One reading to store. ``received``: UNIX seconds the gateway (or center) got it."""

    station: int
    element: str
    time: int
    value: float | None
    quality: str
    received: float


Row = tuple[int, str, int, float | None, str, float]
"""An :class:`ObsRow` as a plain tuple (what the receiver builds: cheaper than a NamedTuple)."""


class Obs(NamedTuple):
    """One stored reading."""

    time: int
    value: float | None
    quality: str
    flags: str


class Revision(NamedTuple):
    """One change to a stored reading: who changed what, when and why."""

    time: int
    old_value: float | None
    new_value: float | None
    old_quality: str | None
    new_quality: str | None
    changed_at: float
    who: str | None
    why: str | None


@dataclass(frozen=True)
class UpsertResult:
    """What one :meth:`Store.upsert_observations` call did with its rows."""

    inserted: int = 0
    duplicates: int = 0
    revised: int = 0

    def __add__(self, other: UpsertResult) -> UpsertResult:
        return UpsertResult(
            self.inserted + other.inserted,
            self.duplicates + other.duplicates,
            self.revised + other.revised,
        )


@dataclass(frozen=True)
class StationMeta:
    """A station's registry metadata as synced into the ``stations`` table."""

    station: int
    name: str
    kind: str | None = None
    lat: float | None = None
    lon: float | None = None
    elevation_m: float | None = None
    timezone: str | None = None
    record_interval_s: int = 300
    rain_day_start_hour: int = 8
    sensors: tuple[str, ...] = ()
    stages: Mapping[str, float] = field(default_factory=dict)
    alarms: Mapping[str, float] = field(default_factory=dict)
    qc: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    notes: str = ""


class StatusRow(NamedTuple):
    """One status frame as stored (SI units; None where the frame did not say)."""

    station: int
    time: int
    seq: int
    received: float
    battery_v: float | None
    temperature_degc: float | None
    clock_offset_s: float | None
    queue_depth: int | None
    oldest_unacked: int | None
    uptime_s: int | None
    firmware: str | None
    reset_cause: str | None
    free_heap_bytes: int | None
    free_flash_bytes: int | None
    counters: str | None
    flags: str | None


class StationAlarm(NamedTuple):
    """One alarm a station raised or cleared, from an alarm (or data) frame."""

    station: int
    time: int
    seq: int
    kind: str
    state: str
    value: float | None
    threshold: float | None
    unit: str | None
    window_s: int | None
    received: float


class Event(NamedTuple):
    """One event (command result, command sent...). ``payload``: the JSON text."""

    station: int
    time: int
    kind: str
    key: str
    received: float
    payload: str


class Reject(NamedTuple):
    """A message the center could not store, kept with the reason."""

    received: float
    topic: str
    reason: str
    detail: str
    payload: bytes


class Gap(NamedTuple):
    """A run of missing readings and what the center did about it."""

    station: int
    element: str
    start: int
    end: int
    state: str
    command_id: int | None
    updated: float
    attempts: int = 0  # resend requests made so far


class CenterAlarm(NamedTuple):
    """An alarm the center raised itself (silence, stage, rain, battery)."""

    id: int
    station: int
    kind: str
    state: str
    raised: float
    cleared: float | None
    value: float | None
    threshold: float | None
    detail: str | None
    acked_by: str | None
    acked_at: float | None


@dataclass
class Batch:
    """Everything one batch of messages turns into (see :mod:`host_tools.center.messages`)."""

    observations: list[Row] = field(default_factory=list)
    status: list[StatusRow] = field(default_factory=list)
    alarms: list[StationAlarm] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    states: list[tuple[int, float, str]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    def extend(self, other: Batch) -> None:
        """Append another batch's rows to this one."""
        self.observations += other.observations
        self.status += other.status
        self.alarms += other.alarms
        self.events += other.events
        self.states += other.states
        self.rejects += other.rejects


def meta_json(value: Any) -> Any:
    """Registry mappings as plain dicts (for JSON columns)."""
    if isinstance(value, Mapping):
        return {k: meta_json(v) for k, v in value.items()}
    return value
