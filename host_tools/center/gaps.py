"""Gap recovery: which readings are missing, asking the station again, and each gap's state.

A station records one reading per element every ``record_interval_s``; two stored
readings further apart than one interval leave a hole. Only holes with readings on
both sides are gaps: what is missing after the latest reading is not late data but
silence (the silence alarm's business), and a station backfills it by itself.

Each gap moves through ``detected -> requested -> recovered | lost``:

- detected: found; left alone for ``delay_s`` (late backfill often fills it);
- requested: a ``resend`` command for its time range went into the gateway's
  command queue (one command per station and merged range, shared by the
  elements missing there);
- recovered: every expected reading of the range is stored (from any state);
- lost: still missing after ``max_attempts`` requests, or the station answered that
  it no longer has the readings (``resend`` found nothing), or refused the command.

:class:`GapTracker` is pure: time comes in as an argument, the store and the
command queue stay outside (:mod:`host_tools.center.watch` wires them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

DETECTED, REQUESTED, RECOVERED, LOST = "detected", "requested", "recovered", "lost"
STATES = (DETECTED, REQUESTED, RECOVERED, LOST)
OPEN = (DETECTED, REQUESTED)
RESULT_OK = 0


@dataclass(frozen=True)
class GapPolicy:
    """When to ask, how often, and when to give up (seconds)."""

    delay_s: float = 600.0       # a gap is requested once it is this old (since detected)
    retry_s: float = 1800.0      # a request unanswered by data this long is sent again
    max_attempts: int = 3        # requests before the gap is lost


@dataclass
class Gap:
    """Missing readings of one element: expected times ``start .. end`` (inclusive, UNIX s)."""

    station: int
    element: str
    start: int
    end: int
    state: str = DETECTED
    command_id: int | None = None
    updated: float = 0.0          # wall time of the last state change or request
    attempts: int = 0
    detected: float = 0.0
    detail: str = field(default="", compare=False)

    def expected(self, interval_s: int) -> int:
        """How many readings the range should hold."""
        return (self.end - self.start) // interval_s + 1

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.station, self.element, self.start)


def holes(times: Sequence[int], interval_s: int) -> list[tuple[int, int]]:
    """Missing expected times between consecutive stored readings, as inclusive ranges.

    ``times`` sorted ascending. Two readings ``a < b`` miss ``round((b - a) / interval) - 1``
    readings, the first due at ``a + interval`` and the last at ``b - interval`` (the
    rounding absorbs a station clock that stepped by less than half an interval).
    """
    out = []
    for a, b in zip(times, times[1:], strict=False):
        missing = round((b - a) / interval_s) - 1
        if missing >= 1:
            out.append((a + interval_s, b - interval_s))
    return out


def merge_ranges(ranges: Iterable[tuple[int, int]], slack: int = 0) -> list[tuple[int, int]]:
    """Union of inclusive ranges; ranges closer than ``slack`` join."""
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + slack:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


class GapTracker:
    """The gaps the center knows, and the rules that move them on.

    ``gaps`` holds open gaps (and lost ones, which data can still recover), keyed by
    (station, element, start). The caller persists every gap that
    :meth:`detect` or :meth:`step` returns.
    """

    def __init__(self, policy: GapPolicy | None = None) -> None:
        self.policy = policy or GapPolicy()
        self.gaps: dict[tuple[int, str, int], Gap] = {}

    def load(self, gaps: Iterable[Gap]) -> None:
        """Gaps read back from the store (after a restart)."""
        for g in gaps:
            if g.state != RECOVERED:
                self.gaps[g.key] = g

    def known(self, station: int, element: str, start: int, end: int) -> bool:
        """True if a tracked gap overlaps ``start .. end``."""
        return any(g.station == station and g.element == element and g.start <= end
                   and start <= g.end for g in self.gaps.values())

    def detect(self, station: int, element: str, times: Sequence[int], interval_s: int,
               now: float) -> list[Gap]:
        """New gaps among the holes of ``times`` (sorted stored reading times)."""
        new = []
        for a, b in holes(times, interval_s):
            if not self.known(station, element, a, b):
                g = Gap(station, element, a, b, DETECTED, None, now, 0, now)
                self.gaps[g.key] = g
                new.append(g)
        return new

    def open_gaps(self) -> list[Gap]:
        return sorted((g for g in self.gaps.values() if g.state in OPEN), key=lambda g: g.key)

    def step(self, gap: Gap, now: float, present: int, interval_s: int,
             result: tuple[int, Any] | None, retry_s: float | None = None) -> Gap | None:
        """The gap's next state, or None if nothing changes.

        Args:
            gap: a tracked gap.
            now: the current wall time.
            present: how many readings of its range are now stored.
            interval_s: the station's record interval.
            result: the station's answer to the gap's latest request, ``(code, detail)``,
                or None if it has not answered (or nothing was requested).
            retry_s: the wait before a request is sent again, if longer than the policy's
                (a station hears of commands only in ACKs, so at its report period).

        A gap that returns in state ``requested`` with ``attempts`` increased and
        ``command_id`` None must be (re)requested by the caller, which then sets
        ``command_id`` (see :meth:`requested`).
        """
        p = self.policy
        wait = max(p.retry_s, retry_s or 0.0)
        if present >= gap.expected(interval_s):
            return self._move(gap, RECOVERED, now, "all readings stored")
        if gap.state == DETECTED:
            if now - gap.detected >= p.delay_s:
                return self._move(gap, REQUESTED, now, "", attempts=gap.attempts + 1, command_id=None)
            return None
        if gap.state != REQUESTED or gap.command_id is None:
            return None
        if result is not None:
            code, detail = result
            if code != RESULT_OK:
                return self._move(gap, LOST, now, f"station answered code {code}: {detail}")
            if detail == 0 and now - gap.updated >= wait:
                return self._move(gap, LOST, now, "station no longer has these readings")
        if now - gap.updated < wait:
            return None
        if gap.attempts >= p.max_attempts:
            return self._move(gap, LOST, now, f"still missing after {gap.attempts} requests")
        return self._move(gap, REQUESTED, now, "", attempts=gap.attempts + 1, command_id=None)

    def requested(self, gap: Gap, command_id: int, now: float) -> Gap:
        """Record the resend command that now covers ``gap``."""
        g = replace(gap, command_id=command_id, updated=now)
        self.gaps[g.key] = g
        return g

    def _move(self, gap: Gap, state: str, now: float, detail: str, **kw: Any) -> Gap:
        g = replace(gap, state=state, updated=now, detail=detail, **kw)
        if state == RECOVERED:
            self.gaps.pop(g.key, None)
        else:
            self.gaps[g.key] = g
        return g

    def forget(self, before: float) -> int:
        """Stop tracking lost gaps that ended before ``before`` (they stay in the store)."""
        old = [k for k, g in self.gaps.items() if g.state == LOST and g.end < before]
        for k in old:
            del self.gaps[k]
        return len(old)

    def touching(self, station: int, element: str, start: int, end: int) -> list[Gap]:
        """Tracked gaps (open or lost) overlapping a range where readings just arrived."""
        return [g for g in self.gaps.values() if g.station == station and g.element == element
                and g.start <= end and start <= g.end]


def resend_plan(gaps: Sequence[Gap], interval_s: int) -> list[tuple[int, int, list[Gap]]]:
    """One resend range per merged run of gaps of one station: ``(start, end, gaps)``."""
    ranges = merge_ranges(((g.start, g.end) for g in gaps), slack=interval_s)
    return [(a, b, [g for g in gaps if a <= g.start and g.end <= b]) for a, b in ranges]
