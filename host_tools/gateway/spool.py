"""The gateway's durable spool: SQLite in WAL mode, one file.

Every accepted frame is a row of ``frames``; a row is committed before its ACK is
sent, and marked ``forwarded`` only after the broker's PUBACK. Commits are grouped
(:class:`SpoolWriter`): frames that arrive while one commit is on disk go into the
next, so an fsync is paid per group, not per frame.

Why SQLite: it is in the standard library, a WAL commit is one append and one
fsync, a ``kill -9`` at any instant leaves the last committed transaction intact,
and the command-line tools (``hydrolink command``) can queue commands into the
same file from another process while the gateway runs.

All SQLite calls of a process go through one connection on one thread
(:class:`SpoolWriter` owns it); errors are translated here into :class:`SpoolError`
and :class:`SpoolFull` (``raise ... from None``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.codec import REPLAY_WINDOW, ReplayWindow

from .lock import LockError, SpoolLock
from .spool_commands import CommandQueue, CommandRow, migrate_commands

__all__ = ["CommandRow", "PendingRow", "Record", "Spool", "SpoolError", "SpoolFull"]

log = logging.getLogger("hydrolink.gateway")

SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,  -- spool order; never reused
    station   INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    type      INTEGER NOT NULL,
    time      INTEGER NOT NULL,     -- station clock, hydrolink seconds
    received  REAL    NOT NULL,     -- gateway clock, Unix seconds
    link      TEXT    NOT NULL,
    raw       BLOB    NOT NULL,     -- the frame as received, without COBS
    forwarded REAL,                 -- Unix time of the PUBACK; NULL while pending
    UNIQUE (station, seq)
);
CREATE INDEX IF NOT EXISTS frames_pending ON frames (id) WHERE forwarded IS NULL;
CREATE INDEX IF NOT EXISTS frames_received ON frames (received);
CREATE TABLE IF NOT EXISTS stations (
    station INTEGER PRIMARY KEY,
    highest INTEGER NOT NULL        -- highest accepted seq, survives pruning
);
CREATE TABLE IF NOT EXISTS pruned (  -- the replay window's memory of deleted rows (SPEC §6)
    station INTEGER PRIMARY KEY,
    highest INTEGER NOT NULL,       -- the highest deleted seq
    seen    BLOB    NOT NULL        -- bit i (of a big-endian integer): seq highest - i deleted
);
CREATE TABLE IF NOT EXISTS commands (
    station    INTEGER NOT NULL,
    id         INTEGER NOT NULL,
    op         INTEGER NOT NULL,
    args       TEXT,                -- JSON; NULL: no arguments on the wire
    queued     REAL    NOT NULL,
    sent       REAL,                -- last time it went out in an ACK
    sends      INTEGER NOT NULL DEFAULT 0,
    result     INTEGER,             -- result code; NULL while waiting
    detail     TEXT,                -- JSON
    done       REAL,
    expires    REAL,                -- not sent after this (Unix time); NULL: never expires
    ended      TEXT,                -- 'expired' or 'cancelled' (then done is when); NULL: live
    PRIMARY KEY (station, id)
);
CREATE TABLE IF NOT EXISTS outbox (  -- MQTT messages that are not frames, kept until PUBACK
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    topic   TEXT    NOT NULL,       -- after the topic prefix: '<station>/events', '<station>/state'
    payload TEXT    NOT NULL,       -- JSON
    retain  INTEGER NOT NULL,
    key     TEXT    UNIQUE          -- retained state: one row per topic, the newest replaces
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS station_stats (station INTEGER PRIMARY KEY, value TEXT NOT NULL);
"""

SQLITE_FULL = 13


class SpoolError(Exception):
    """The spool cannot be opened or written. ``str()`` is one line."""


class SpoolFull(SpoolError):
    """The disk (or the configured size cap) is full: nothing more can be stored."""


@dataclass(frozen=True)
class Record:
    """One accepted frame, ready to be stored."""

    station: int
    seq: int
    type: int
    time: int
    received: float
    link: str
    raw: bytes


@dataclass(frozen=True)
class PendingRow:
    """A stored frame waiting for the broker."""

    id: int
    station: int
    type: int
    received: float
    link: str
    raw: bytes


def _translate(e: sqlite3.Error, path: Path) -> SpoolError:
    code = getattr(e, "sqlite_errorcode", None)
    if code == SQLITE_FULL:
        return SpoolFull(f"spool {path}: disk or size cap full ({e})")
    return SpoolError(f"spool {path}: {e}")


class Spool(CommandQueue):
    """Synchronous access to the spool file. Not thread-safe: one thread uses it."""

    def __init__(self, path: str | Path, max_bytes: int | None = None, readonly: bool = False,
                 reserve_bytes: int = 0, durable: bool = True, exclusive: bool = False):
        """``exclusive``: the gateway's own spool, locked (:mod:`.lock`) until :meth:`close`."""
        self.path = Path(path)
        self.reserve_path = self.path.with_name(self.path.name + "-reserve")
        self.reserve_bytes = reserve_bytes
        self.lock: SpoolLock | None = None
        if exclusive:
            if not self.path.parent.is_dir():
                raise SpoolError(f"spool {self.path}: directory {self.path.parent} does not"
                                 " exist; create it, or fix --spool")
            self.lock = SpoolLock(self.path)
            try:
                self.lock.acquire()
            except LockError as e:
                raise SpoolError(str(e)) from None
            except OSError as e:
                raise SpoolError(f"spool {self.path}: {e.strerror or e}") from None
        try:
            if readonly:
                if not self.path.exists():
                    raise SpoolError(f"spool {self.path}: no such file")
                self.db = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                    check_same_thread=False, timeout=10,
                )
            else:
                if not self.path.parent.is_dir():  # a typo must not start an empty spool
                    raise SpoolError(f"spool {self.path}: directory {self.path.parent} does not"
                                     " exist; create it, or fix --spool")
                self.db = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=10
                )
                mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode != "wal":
                    raise SpoolError(f"spool {self.path}: cannot use WAL mode (got {mode})")
                # FULL: a commit is on disk (fsync of the WAL) before we ACK. The forwarder's
                # marks need not be (a lost one means a message published again, which
                # at-least-once allows): NORMAL, no fsync, so they never hold the write
                # lock for a disk flush that the gateway's next commit would wait for.
                self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self.db.executescript(SCHEMA)
                migrate_commands(self.db)
                if max_bytes:
                    page = self.db.execute("PRAGMA page_size").fetchone()[0]
                    self.db.execute(f"PRAGMA max_page_count={max(12, max_bytes // page)}")
        except (sqlite3.Error, OSError, SpoolError) as e:
            if self.lock is not None:
                self.lock.release()
            if isinstance(e, sqlite3.Error):
                raise _translate(e, self.path) from None
            if isinstance(e, OSError):
                raise SpoolError(f"spool {self.path}: {e.strerror or e}") from None
            raise

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error, AttributeError):
            self.db.close()
        if self.lock is not None:
            self.lock.release()

    # ------------------------------------------------------------ disk reserve

    # Another program can fill the spool's disk to the last byte. Then SQLite cannot
    # even write the deletions that would make room (they go through the WAL), and
    # the gateway would wait for an operator. So it holds ``reserve_bytes`` in a file
    # beside the spool, gives them back when the disk is full, and takes them again
    # once the disk has twice that free.

    def keep_reserve(self) -> bool:
        """Hold the reserve if it is missing and the disk has room; True if it is held."""
        if not self.reserve_bytes:
            return False
        if self.reserve_path.exists():
            return True
        if shutil.disk_usage(self.path.parent).free < 2 * self.reserve_bytes:
            return False
        tmp = self.reserve_path.with_name(self.reserve_path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.reserve_bytes)  # real blocks, not a sparse file
            finally:
                os.close(fd)
            tmp.rename(self.reserve_path)
        except OSError:
            tmp.unlink(missing_ok=True)
            return False
        return True

    def release_reserve(self) -> bool:
        """Give the reserve back if the disk (not the size cap) is full; True if it was."""
        if not self.reserve_path.exists() or shutil.disk_usage(self.path.parent).free >= 1 << 20:
            return False
        self.reserve_path.unlink(missing_ok=True)
        log.warning("disk full: released the spool's reserve to make room",
                    extra={"fields": {"reserve": str(self.reserve_path)}})
        return True

    # ------------------------------------------------------------ writing

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE .. COMMIT, ROLLBACK on any error)."""
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise _translate(e, self.path) from None

    def commit(
        self,
        records: Sequence[Record],
        forwarded: Sequence[int] = (),
        statements: Sequence[tuple[str, tuple[Any, ...]]] = (),
    ) -> None:
        """Store frames, mark forwarded rows and run extra statements in one transaction."""
        with self._transaction() as db:
            if records:
                db.executemany(
                    "INSERT OR IGNORE INTO frames (station, seq, type, time, received, link,"
                    " raw) VALUES (?,?,?,?,?,?,?)",
                    [(r.station, r.seq, r.type, r.time, r.received, r.link, r.raw)
                     for r in records],
                )
                highest: dict[int, int] = {}
                for r in records:
                    highest[r.station] = max(highest.get(r.station, 0), r.seq)
                db.executemany(
                    "INSERT INTO stations (station, highest) VALUES (?, ?) ON CONFLICT(station)"
                    " DO UPDATE SET highest = max(highest, excluded.highest)",
                    list(highest.items()),
                )
            if forwarded:
                now = time.time()
                db.executemany(
                    "UPDATE frames SET forwarded = ? WHERE id = ?",
                    [(now, i) for i in forwarded],
                )
            for sql, params in statements:
                db.execute(sql, params)

    def prune(self, before: float | None = None, limit: int = 10000) -> int:
        """Delete forwarded rows received before ``before`` (all forwarded: None), oldest first."""
        cond = "forwarded IS NOT NULL" + ("" if before is None else " AND received < ?")
        params: tuple[Any, ...] = () if before is None else (before,)
        with self._transaction() as db:
            return self._forget(db, db.execute(
                f"SELECT id, station, seq FROM frames WHERE {cond} ORDER BY id LIMIT {int(limit)}",
                params).fetchall())

    def _forget(self, db: sqlite3.Connection, rows: list[tuple[int, int, int]]) -> int:
        """Delete rows (id, station, seq), keeping their seqs for the replay window: a
        recording of a deleted frame must stay a duplicate after a restart."""
        window = ReplayWindow()  # of the deleted seqs only
        for station in {r[1] for r in rows}:
            row = db.execute("SELECT highest, seen FROM pruned WHERE station = ?",
                             (station,)).fetchone()
            if row:
                window.merge(station, int(row[0]), int.from_bytes(row[1], "big"))
        for _, station, seq in rows:
            window.accept(station, seq)
        db.executemany("INSERT OR REPLACE INTO pruned (station, highest, seen) VALUES (?, ?, ?)",
                       [(station, top, bits.to_bytes(REPLAY_WINDOW // 8, "big"))
                        for station, (top, bits) in window.stations.items()])
        db.executemany("DELETE FROM frames WHERE id = ?", [(r[0],) for r in rows])
        return len(rows)

    def checkpoint(self) -> bool:
        """Copy the WAL into the database and truncate it (frees disk when the WAL is big).
        False if it could not finish (no space, or a reader in the way)."""
        try:
            busy, _, _ = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error:
            return False
        return not busy

    def delete(self, ids: Sequence[int]) -> None:
        """Delete rows by id (forwarded rows, when there is no room to mark them)."""
        with self._transaction() as db:
            rows = [db.execute("SELECT id, station, seq FROM frames WHERE id = ?", (i,)).fetchone()
                    for i in ids]
            self._forget(db, [r for r in rows if r is not None])

    def set_meta(self, key: str, value: Any) -> None:
        self.commit((), (), [("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                              (key, json.dumps(value)))])

    # ------------------------------------------------------------ reading

    def _all(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        try:
            return self.db.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as e:
            raise _translate(e, self.path) from None

    def pending(self, after: int, limit: int) -> list[PendingRow]:
        """Rows not yet forwarded with id > ``after``, in spool order."""
        return [PendingRow(int(i), int(s), int(t), float(r), str(ln), bytes(raw))
                for i, s, t, r, ln, raw in self._all(
                    "SELECT id, station, type, received, link, raw FROM frames"
                    " WHERE forwarded IS NULL AND id > ? ORDER BY id LIMIT ?", (after, limit))]

    def mark_forwarded(self, ids: Sequence[int]) -> None:
        """The broker has these rows (PUBACK). If the spool is too full even for that,
        delete them instead: they are at the center."""
        try:
            self.commit((), ids)
        except SpoolFull:
            self.release_reserve()
            self.delete(ids)

    def pending_count(self) -> int:
        return int(self._all("SELECT count(*) FROM frames WHERE forwarded IS NULL")[0][0])

    def count(self) -> int:
        return int(self._all("SELECT count(*) FROM frames")[0][0])

    def window(self) -> tuple[dict[int, int], list[tuple[int, int]]]:
        """Highest seq per station and the (station, seq) pairs inside each replay window."""
        highest = {int(s): int(h) for s, h in self._all("SELECT station, highest FROM stations")}
        seen = [(int(s), int(q)) for s, q in self._all(
            "SELECT f.station, f.seq FROM frames f JOIN stations s ON f.station = s.station"
            " WHERE f.seq > s.highest - ?", (REPLAY_WINDOW,))]
        return highest, seen

    def pruned_window(self) -> dict[int, tuple[int, int]]:
        """Per station, the seqs of deleted rows still inside a replay window: (highest, bits),
        bit i being seq highest - i (see :meth:`protocol.codec.ReplayWindow.merge`)."""
        return {int(s): (int(h), int.from_bytes(b, "big"))
                for s, h, b in self._all("SELECT station, highest, seen FROM pruned")}

    def meta(self, key: str) -> Any:
        rows = self._all("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def station_stats(self) -> dict[int, Any]:
        """The saved per-station counters (``--status``, and a restart)."""
        return {int(sid): json.loads(v)
                for sid, v in self._all("SELECT station, value FROM station_stats ORDER BY station")}

    def data_version(self) -> int:
        """Changes when another connection (``hydrolink command``) commits."""
        return int(self._all("PRAGMA data_version")[0][0])
