"""Store writes and reads for QC, center alarms and gaps (used by qc, alarms, gaps).

A mixin of :class:`host_tools.center.store.Store`: kept apart so each module stays one
concern. Every change a person makes to a reading goes through
``upsert_observations(..., who=, why=)`` and so leaves a revision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .model import CenterAlarm, Gap, ObsRow, Row, UpsertResult

if TYPE_CHECKING:
    from .db import Database

GAP_STATES = ("detected", "requested", "recovered", "lost")
_ALARM_COLS = "id, station, kind, state, raised, cleared, value, threshold, detail, acked_by, acked_at"


class WatchStoreMixin:
    """QC, alarm and gap methods of the store."""

    db: Database
    clock: Callable[[], float]

    def upsert_observations(
        self, rows: Iterable[Row], who: str | None = None, why: str | None = None
    ) -> UpsertResult:
        raise NotImplementedError

    # ------------------------------------------------------------ quality

    def _current(self, station: int, element: str, time: int) -> tuple[float | None, str]:
        rows = self.db.query(
            "SELECT value, quality FROM observations WHERE station = ? AND element = ? AND time = ?",
            (station, element, time),
        )
        if not rows:
            raise KeyError(f"station {station}: no {element} reading at {time}")
        return rows[0][0], rows[0][1]

    def set_quality(self, station: int, element: str, time: int, quality: str, who: str, why: str) -> bool:
        """Change a stored reading's quality code (a revision). False if it already had it."""
        value, _ = self._current(station, element, time)
        row = ObsRow(station, element, time, value, quality, self.clock())
        return self.upsert_observations([row], who=who, why=why).revised == 1

    def correct(self, station: int, element: str, time: int, value: float | None, who: str, why: str,
                quality: str = "manual") -> bool:
        """Replace a stored reading's value (a revision); later station data will not undo it."""
        self._current(station, element, time)
        row = ObsRow(station, element, time, value, quality, self.clock())
        return self.upsert_observations([row], who=who, why=why).revised == 1

    def set_flags(self, station: int, element: str, flags: Iterable[tuple[int, str]]) -> int:
        """Set the center's QC flags (comma-separated names, "" for none) on stored readings.

        Flags never change the value, so they are not revisions. Returns rows changed.
        """
        with self.db.transaction():
            n = 0
            for time, f in flags:
                n += self.db.execute(
                    "UPDATE observations SET flags = ? WHERE station = ? AND element = ? AND time = ?"
                    " AND flags <> ?",
                    (f, station, element, time, f),
                )
        return n

    def mark(self, station: int, element: str, start: int, end: int, state: str, who: str,
             note: str | None = None) -> int:
        """Mark the stored readings in ``start..end`` ``provisional`` or ``approved``."""
        if state not in ("provisional", "approved"):
            raise ValueError(f"qc state {state!r} must be provisional or approved")
        now = self.clock()
        with self.db.transaction():
            return self.db.execute(
                "INSERT INTO qc_marks (station, element, time, state, who, at, note)"
                " SELECT station, element, time, ?, ?, ?, ? FROM observations WHERE station = ?"
                " AND element = ? AND time >= ? AND time <= ? ON CONFLICT (station, element, time)"
                " DO UPDATE SET state = excluded.state, who = excluded.who, at = excluded.at,"
                " note = excluded.note",
                (state, who, now, note, station, element, start, end),
            )

    def marks(self, station: int, element: str, start: int, end: int) -> list[tuple[int, str, str | None,
                                                                                float, str | None]]:
        """Approval marks (time, state, who, at, note) in range; unmarked readings are provisional."""
        return [(int(r[0]), r[1], r[2], r[3], r[4]) for r in self.db.query(
            "SELECT time, state, who, at, note FROM qc_marks WHERE station = ? AND element = ?"
            " AND time >= ? AND time <= ? ORDER BY time",
            (station, element, start, end),
        )]

    # ------------------------------------------------------------ center alarms

    def add_center_alarm(self, station: int, kind: str, raised: float, value: float | None = None,
                         threshold: float | None = None, detail: str | None = None) -> int:
        """Record a center alarm as active; returns its id."""
        with self.db.transaction():
            rows = self.db.query(
                "INSERT INTO center_alarms (station, kind, state, raised, value, threshold, detail)"
                " VALUES (?, ?, 'active', ?, ?, ?, ?) RETURNING id",
                (station, kind, raised, value, threshold, detail),
            )
        return int(rows[0][0])

    def clear_center_alarm(self, alarm_id: int, cleared: float, value: float | None = None) -> bool:
        """Mark an active center alarm cleared; False if it was not active."""
        with self.db.transaction():
            return self.db.execute(
                "UPDATE center_alarms SET state = 'cleared', cleared = ?, value = COALESCE(?, value)"
                " WHERE id = ? AND state = 'active'",
                (cleared, value, alarm_id),
            ) == 1

    def ack_center_alarm(self, alarm_id: int, who: str, at: float | None = None) -> bool:
        """Record that a person acknowledged the alarm; False if there is no such alarm."""
        with self.db.transaction():
            return self.db.execute(
                "UPDATE center_alarms SET acked_by = ?, acked_at = ? WHERE id = ?",
                (who, self.clock() if at is None else at, alarm_id),
            ) == 1

    def center_alarms(self, station: int | None = None, start: float | None = None,
                      end: float | None = None, active_only: bool = False) -> list[CenterAlarm]:
        """Center alarms raised in ``start..end`` (or still active), oldest first."""
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if station is not None:
            where.append("station = ?")
            params.append(station)
        if active_only:
            where.append("state = 'active'")
        if start is not None:
            where.append("(raised >= ? OR state = 'active' OR cleared >= ?)")
            params += [start, start]
        if end is not None:
            where.append("raised <= ?")
            params.append(end)
        return [CenterAlarm(*r) for r in self.db.query(
            f"SELECT {_ALARM_COLS} FROM center_alarms WHERE {' AND '.join(where)} ORDER BY raised, id", params
        )]

    # ------------------------------------------------------------ gaps

    def set_gap(self, gap: Gap) -> None:
        """Insert or update a gap (keyed on station, element, start)."""
        if gap.state not in GAP_STATES:
            raise ValueError(f"gap state {gap.state!r} must be one of {', '.join(GAP_STATES)}")
        with self.db.transaction():
            self.db.execute(
                'INSERT INTO gaps (station, element, start, "end", state, command_id, updated, attempts)'
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (station, element, start) DO UPDATE SET"
                ' "end" = excluded."end", state = excluded.state, command_id = excluded.command_id,'
                " updated = excluded.updated, attempts = excluded.attempts",
                tuple(gap),
            )

    def gaps(self, station: int | None = None, element: str | None = None, start: int | None = None,
             end: int | None = None, states: Iterable[str] | None = None) -> list[Gap]:
        """Gaps overlapping ``start..end``, by station, element, start."""
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        for col, v in (("station", station), ("element", element)):
            if v is not None:
                where.append(f"{col} = ?")
                params.append(v)
        if start is not None:
            where.append('"end" >= ?')
            params.append(start)
        if end is not None:
            where.append("start <= ?")
            params.append(end)
        if states is not None:
            wanted = list(states)
            where.append(f"state IN ({', '.join('?' * len(wanted))})")
            params += wanted
        return [Gap(int(r[0]), r[1], int(r[2]), int(r[3]), r[4], r[5], r[6], int(r[7])) for r in self.db.query(
            'SELECT station, element, start, "end", state, command_id, updated, attempts FROM gaps'
            f" WHERE {' AND '.join(where)} ORDER BY station, element, start",
            params,
        )]

    # ------------------------------------------------------------ review (center-watch: hydrolink qc)

    def review(self, station: int, element: str, start: int, end: int, state: str, who: str,
               note: str | None = None) -> int:
        """Mark readings in ``start..end`` provisional/approved, each mark kept as a revision.

        The revision has the same old and new value and quality (a review changes no value)
        and ``why`` = ``"<state>: <note>"``, so the history of approvals survives a re-mark.
        Returns how many readings were marked.
        """
        why = f"{state}: {note}" if note else state
        with self.db.transaction():
            n = self.mark(station, element, start, end, state, who, note)
            self.db.execute(
                "INSERT INTO revisions (station, element, time, old_value, new_value, old_quality,"
                " new_quality, changed_at, who, why) SELECT station, element, time, value, value,"
                " quality, quality, ?, ?, ? FROM observations WHERE station = ? AND element = ?"
                " AND time >= ? AND time <= ?",
                (self.clock(), who, why, station, element, start, end),
            )
        return n

    def received_since(self, station: int, elements: Iterable[str], since: int) -> list[float]:
        """Distinct ``received`` stamps of a station's readings with time >= ``since`` (one
        index range per element; the watch learns the station's report period from them)."""
        out: set[float] = set()
        for element in elements:
            out.update(float(r[0]) for r in self.db.query(
                "SELECT DISTINCT received FROM observations WHERE station = ? AND element = ? AND time >= ?",
                (station, element, since),
            ))
        return sorted(out)
