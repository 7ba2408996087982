"""A thin connection layer so the store runs the same SQL on SQLite and PostgreSQL.

SQL is written once with ``?`` placeholders; :class:`PostgresDB` (in ``pgdb.py``)
turns them into psycopg's ``%s``. Each database also knows how to stage a bulk of
observation rows into the temporary table ``obs_in`` the fastest way it can
(``executemany`` on SQLite, binary ``COPY`` on PostgreSQL).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .model import Row

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency
    _orjson = None  # type: ignore[assignment]
from .schema import Migration, migrate

Params = Sequence[Any]
SLOW_BATCHES = 20  # after a batch with a reading stored already, how many take the staged path

OBS_IN = """CREATE TEMP TABLE IF NOT EXISTS obs_in (
    station BIGINT NOT NULL, element TEXT NOT NULL, time BIGINT NOT NULL,
    value {real}, quality TEXT NOT NULL, received {real} NOT NULL)"""


def _dumps(rows: Sequence[Row]) -> str:
    return _orjson.dumps(rows, default=tuple).decode() if _orjson is not None else json.dumps(rows)


INSERT_NEW = ("INSERT INTO observations (station, element, time, value, quality, received, source)"
              " SELECT station, element, time, value, quality, received, ? FROM {src} WHERE true"
              " ON CONFLICT DO NOTHING")
_JSON_ROWS = ("(SELECT json_extract(value, '$[0]') AS station, json_extract(value, '$[1]') AS element,"
              " json_extract(value, '$[2]') AS time, json_extract(value, '$[3]') AS value,"
              " json_extract(value, '$[4]') AS quality, json_extract(value, '$[5]') AS received"
              " FROM json_each(?))")


class StoreError(Exception):
    """The database cannot be opened or used; ``str()`` is one line."""


class Database:
    """What the store needs from a connection. Subclasses: SQLite and PostgreSQL."""

    dialect = ""
    distinct = "IS DISTINCT FROM"
    where = ""

    unique_violation: type[Exception] | tuple[type[Exception], ...] = ()

    def __init__(self) -> None:
        self._depth = 0
        self._staged = False
        self._slow_batches = 0

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run a read and return all rows."""
        raise NotImplementedError

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one write; return the number of rows it changed."""
        raise NotImplementedError

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        """Run one write for each parameter row."""
        raise NotImplementedError

    def stage_observations(self, rows: Sequence[Row]) -> None:
        """Fill the empty temp table ``obs_in`` with ``rows``."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Create the session's temp table ``obs_in`` (after the schema exists)."""
        raise NotImplementedError

    def insert_all_new(self, rows: Sequence[Row]) -> bool:
        """Station readings that are all new (the usual case) in one bulk write: True if
        every row went in; False, with nothing changed, if a key is stored already or
        comes twice (the caller then takes the staged path, and so do the next
        ``SLOW_BATCHES`` batches: a redelivered backlog does not pay twice). Inside a
        transaction."""
        if self._slow_batches > 0:
            self._slow_batches -= 1
            return False
        self.execute("SAVEPOINT hydrolink_new")
        try:
            ok = self._insert_all(rows)
        except self.unique_violation:
            ok = False
        if not ok:
            self.execute("ROLLBACK TO SAVEPOINT hydrolink_new")
            self._slow_batches = SLOW_BATCHES
        self.execute("RELEASE SAVEPOINT hydrolink_new")
        return ok

    def _insert_all(self, rows: Sequence[Row]) -> bool:
        """Insert ``rows`` into ``observations`` as station data; True if all went in."""
        raise NotImplementedError

    def insert_new(self, rows: Sequence[Row], source: str) -> int:
        """Insert the rows whose key is not stored yet; return how many. May leave ``rows``
        staged in ``obs_in`` (see :meth:`stage_for_revisions`)."""
        self.stage_observations(rows)
        self._staged = True
        return self.execute(INSERT_NEW.format(src="obs_in"), (source,))

    def stage_for_revisions(self, rows: Sequence[Row]) -> None:
        """Make sure ``obs_in`` holds ``rows`` (after :meth:`insert_new`)."""
        if not self._staged:
            self.stage_observations(rows)
            self._staged = True

    def clear_stage(self) -> None:
        """Empty ``obs_in`` again."""
        if self._staged:
            self.execute("DELETE FROM obs_in")
            self._staged = False

    def _begin(self) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection."""
        raise NotImplementedError

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction; nested uses join the outer one. Commits on exit, rolls back on error."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._begin()
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            with contextlib.suppress(Exception):
                self._rollback()
            raise
        self._depth = 0
        self._commit()

    def migrate(self) -> int:
        """Create or upgrade the schema; return the version the database was at.

        One transaction under the schema lock: workers starting together on an empty
        database do not both create it.
        """
        with self.transaction():
            self._lock_schema()
            return migrate(self.dialect, lambda sql: self.query(sql), self._step, self.where)

    def _lock_schema(self) -> None:
        """Hold the database's schema lock until the transaction ends."""
        # SQLite: BEGIN IMMEDIATE already holds the write lock

    def _step(self, statements: list[str], m: Migration) -> None:
        with self.transaction():
            for s in statements:
                self.execute(s)
            if m.fill is not None:
                m.fill(self)
            self.execute(
                "INSERT INTO schema_version (version, applied, what) VALUES (?, ?, ?)",
                (m.version, _now(), m.what),
            )


def _now() -> float:
    import time

    return time.time()


class SqliteDB(Database):
    """SQLite in WAL mode; one connection, explicit transactions (``BEGIN IMMEDIATE``)."""

    dialect = "sqlite"
    distinct = "IS NOT"

    def __init__(self, path: str) -> None:
        super().__init__()
        self.where = path
        if path != ":memory:" and not Path(path).parent.is_dir():
            raise StoreError(f"{path}: its directory does not exist; create it or give another --db path")
        try:
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            _wal(self.conn)
            # FULL: a commit is on disk before it returns, so the broker's copy may be acked
            # (NORMAL in WAL mode can lose the last commits to a power cut)
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{path}: not a usable SQLite database ({e})") from None

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def execute(self, sql: str, params: Params = ()) -> int:
        return self.conn.execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        self.conn.executemany(sql, rows)

    def stage_observations(self, rows: Sequence[Row]) -> None:
        # One statement for the whole batch: the rows go in as one JSON text that SQLite
        # unpacks in C. executemany would release and retake the GIL for every row, and
        # with the MQTT thread busy each retake waits for a switch interval.
        self.conn.execute(f"INSERT INTO obs_in SELECT * FROM {_JSON_ROWS}", (_dumps(rows),))

    def insert_new(self, rows: Sequence[Row], source: str) -> int:
        # straight from the JSON into the table: the temp table only when something conflicted
        return self.conn.execute(INSERT_NEW.format(src=_JSON_ROWS), (source, _dumps(rows))).rowcount

    def _insert_all(self, rows: Sequence[Row]) -> bool:
        return self.insert_new(rows, "station") == len(rows)

    def prepare(self) -> None:
        self.execute(OBS_IN.format(real="REAL"))

    def _begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self.conn.execute("COMMIT")

    def _rollback(self) -> None:
        self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()


def _wal(conn: sqlite3.Connection, patience_s: float = 30.0) -> None:
    """Switch to WAL. On a new database another worker may be creating the schema: the
    switch then fails with "database is locked" at once, whatever the busy timeout (seen
    with four workers starting together), so it is tried again for a while."""
    import time

    deadline = time.monotonic() + patience_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def connect(url: str) -> Database:
    """A database for ``sqlite:///path`` (``sqlite:///:memory:``) or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        db: Database = SqliteDB(url[len("sqlite:///"):])
    elif url.startswith(("postgresql://", "postgres://")):
        from .pgdb import PostgresDB

        db = PostgresDB(url)
    else:
        raise StoreError(f"{url!r}: unknown database URL; use sqlite:///PATH or postgresql://HOST/DB")
    return db
