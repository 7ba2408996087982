"""The spool's command queue (SPEC §7) and its outbox of MQTT messages that are not frames.

``hydrolink command`` (any process) queues and cancels commands here; the gateway
expires them and puts the live ones into ACKs. Every change a station's operator
should hear of (a command sent, expired or cancelled, the retained ``state``) is a
row of ``outbox``, written in the same transaction as the change, that the
forwarder publishes once the broker is there and deletes after its PUBACK: a
broker that is down, or not yet connected, misses nothing.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from .names import iso, op_name

PAYLOAD_VERSION = 1
OUTBOX_SQL = "INSERT OR REPLACE INTO outbox (topic, payload, retain, key) VALUES (?, ?, ?, ?)"


@dataclass(frozen=True)
class CommandRow:
    station: int
    id: int
    op: int
    args: Any
    queued: float
    sent: float | None
    sends: int
    result: int | None
    detail: Any
    done: float | None
    expires: float | None = None
    ended: str | None = None  # "expired", "cancelled"; None while live or answered

    @property
    def live(self) -> bool:
        """Still to be sent: not answered, not expired, not cancelled."""
        return self.result is None and self.ended is None


@dataclass(frozen=True)
class OutboxRow:
    id: int
    topic: str      # after the prefix
    payload: bytes
    retain: bool


def migrate_commands(db: sqlite3.Connection) -> None:
    """Add the columns a spool made by an older gateway lacks."""
    have = {r[1] for r in db.execute("PRAGMA table_info(commands)")}
    for col in ("expires REAL", "ended TEXT"):
        if col.split()[0] not in have:
            db.execute(f"ALTER TABLE commands ADD COLUMN {col}")


def event_statement(station: int, event: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """The outbox row of an ``events`` message (``v`` and ``station`` added)."""
    payload = {"v": PAYLOAD_VERSION, "station": station} | event
    return OUTBOX_SQL, (f"{station}/events", json.dumps(payload, separators=(",", ":")), 0, None)


def state_statement(state: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """The outbox row of a retained ``state`` message (it replaces the unpublished one)."""
    topic = f"{state['station']}/state"
    return OUTBOX_SQL, (topic, json.dumps(state, separators=(",", ":")), 1, topic)


def _ended_event(row: CommandRow, how: str, now: float) -> dict[str, Any]:
    return {"event": f"command_{how}", "time": iso(now), "commands": [
        {"id": row.id, "op": op_name(row.op)} | ({} if row.args is None else {"args": row.args})
        | {"sends": row.sends, "queued": iso(row.queued)}
        | ({} if row.expires is None else {"expires": iso(row.expires)})]}


_COLUMNS = "station, id, op, args, queued, sent, sends, result, detail, done, expires, ended"


def _row(r: tuple[Any, ...]) -> CommandRow:
    s, i, op, a, q, sent, n, res, d, done, exp, ended = r
    return CommandRow(int(s), int(i), int(op), None if a is None else json.loads(a), q, sent,
                      int(n), res, None if d is None else json.loads(d), done, exp, ended)


class CommandQueue:
    """Mixed into :class:`host_tools.gateway.spool.Spool` (which gives the two below)."""

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _all(self, sql: str, params: Any = ()) -> list[Any]:
        raise NotImplementedError

    def commands(self, station: int | None = None, waiting_only: bool = False) -> list[CommandRow]:
        """Commands in (station, id) order; ``waiting_only``: the live ones."""
        where, params = [], []
        if station is not None:
            where.append("station = ?")
            params.append(station)
        if waiting_only:
            where.append("result IS NULL AND ended IS NULL")
        sql = (f"SELECT {_COLUMNS} FROM commands" + (" WHERE " + " AND ".join(where) if where
               else "") + " ORDER BY station, id")
        return [_row(r) for r in self._all(sql, params)]

    def queue_command(self, station: int, op: int, args: Any, *, now: float | None = None,
                      expires: float | None = None) -> int:
        """Queue a command; returns its id (per station, increasing from 1). ``now``: the
        queue time (default the system clock; the simulator passes its virtual clock);
        ``expires``: Unix time after which it is no longer sent (None: never)."""
        with self._transaction() as db:
            (last,) = db.execute(
                "SELECT coalesce(max(id), 0) FROM commands WHERE station = ?", (station,)
            ).fetchone()
            cid = int(last) + 1
            db.execute(
                "INSERT INTO commands (station, id, op, args, queued, expires) VALUES (?,?,?,?,?,?)",
                (station, cid, op, None if args is None else json.dumps(args),
                 time.time() if now is None else now, expires),
            )
        return cid

    def cancel_command(self, station: int, cid: int, *, now: float | None = None,
                       ) -> CommandRow | None:
        """Cancel a live command (and put a ``command_cancelled`` event in the outbox).
        Returns the row as it was before (check ``live``), or None if there is none."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            found = db.execute(f"SELECT {_COLUMNS} FROM commands WHERE station = ? AND id = ?",
                               (station, cid)).fetchone()
            if found is None:
                return None
            row = _row(found)
            if row.live:
                db.execute("UPDATE commands SET ended = 'cancelled', done = ? WHERE station = ?"
                           " AND id = ?", (now, station, cid))
                db.execute(*event_statement(station, _ended_event(row, "cancelled", now)))
        return row

    def expire_commands(self, now: float, events: bool = True) -> list[CommandRow]:
        """End the live commands whose ``expires`` has passed; with ``events``, each gets a
        ``command_expired`` event in the outbox. Returns them."""
        with self._transaction() as db:
            rows = [_row(r) for r in db.execute(
                f"SELECT {_COLUMNS} FROM commands WHERE result IS NULL AND ended IS NULL"
                " AND expires IS NOT NULL AND expires <= ?", (now,))]
            for row in rows:
                db.execute("UPDATE commands SET ended = 'expired', done = ? WHERE station = ?"
                           " AND id = ?", (now, row.station, row.id))
                if events:
                    db.execute(*event_statement(row.station, _ended_event(row, "expired", now)))
        return rows

    def next_expiry(self) -> float | None:
        """The earliest ``expires`` of a live command."""
        (t,) = self._all("SELECT min(expires) FROM commands WHERE result IS NULL AND"
                         " ended IS NULL")[0]
        return None if t is None else float(t)

    # ------------------------------------------------------------ outbox

    def outbox(self, limit: int = 200) -> list[OutboxRow]:
        return [OutboxRow(int(i), str(t), str(p).encode(), bool(r)) for i, t, p, r in self._all(
            "SELECT id, topic, payload, retain FROM outbox ORDER BY id LIMIT ?", (limit,))]

    def outbox_done(self, ids: list[int]) -> None:
        """Published (PUBACK): delete (a newer state for the topic has another id)."""
        with self._transaction() as db:
            db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
