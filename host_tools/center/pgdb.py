"""PostgreSQL for the center store, through psycopg 3.

The connection runs in autocommit mode with explicit ``BEGIN``/``COMMIT`` (the
store's :meth:`Database.transaction`). Bulk observation rows go into the
temporary table ``obs_in`` by binary ``COPY`` (one round trip for thousands of
rows), and from there into ``observations`` with ``INSERT ... ON CONFLICT``;
other bulk writes use ``executemany``, which psycopg runs in pipeline mode.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import psycopg

from .db import OBS_IN, Database, Params, StoreError
from .model import Row

_PLACEHOLDER = re.compile(r"\?")
SCHEMA_LOCK = 0x6879_6472  # "hydr": the advisory lock key held while migrating
_COPY_TYPES = ["int8", "text", "int8", "float8", "text", "float8"]


def _pg(sql: str) -> str:
    return _PLACEHOLDER.sub("%s", sql)


def _where(url: str) -> str:
    """The URL without a password, for messages."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


class PostgresDB(Database):
    """One psycopg connection to a PostgreSQL database."""

    dialect = "postgresql"
    unique_violation = psycopg.errors.UniqueViolation

    def __init__(self, url: str) -> None:
        super().__init__()
        self.where = _where(url)
        try:
            # keepalives and a TCP user timeout: a server that vanished is noticed in seconds,
            # not when the kernel gives up on the socket
            self.conn = psycopg.connect(url, autocommit=True, connect_timeout=10, keepalives=1,
                                        keepalives_idle=10, keepalives_interval=3, keepalives_count=3,
                                        tcp_user_timeout=30_000)
        except psycopg.Error as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise StoreError(f"{self.where}: cannot connect to PostgreSQL: {first}") from None

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(_pg(sql), params)
        return cur.fetchall() if cur.description is not None else []

    def execute(self, sql: str, params: Params = ()) -> int:
        return self.conn.execute(_pg(sql), params).rowcount

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(_pg(sql), rows)

    def stage_observations(self, rows: Sequence[Row]) -> None:
        self._copy("obs_in", rows)

    def _copy(self, table: str, rows: Sequence[Row]) -> None:
        with self.conn.cursor() as cur, cur.copy(
            f"COPY {table} (station, element, time, value, quality, received) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(_COPY_TYPES)
            for r in rows:
                copy.write_row(r)

    def _insert_all(self, rows: Sequence[Row]) -> bool:
        # as fast as a bare COPY; a key stored already (or twice) fails it with UniqueViolation
        self._copy("observations", rows)
        return True

    def _lock_schema(self) -> None:
        self.query("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))

    def prepare(self) -> None:
        self.execute(OBS_IN.format(real="DOUBLE PRECISION"))

    def _begin(self) -> None:
        self.conn.execute("BEGIN")

    def _commit(self) -> None:
        self.conn.execute("COMMIT")

    def _rollback(self) -> None:
        self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()
