"""Group commit for the spool: frames submitted while one commit runs go into the next.

All SQLite calls of the gateway process run on one thread, in order (the writer's
executor); the asyncio side awaits futures.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .spool import Record, Spool, SpoolError, SpoolFull


class SpoolWriter:
    """Group commit: frames submitted while a commit runs go into the next one.

    ``submit`` returns a future that is done when the frame is on disk (or fails
    with :class:`SpoolError`). All spool calls run on one thread, in order.
    """

    def __init__(self, spool: Spool, max_batch: int = 2000) -> None:
        self.spool = spool
        self.max_batch = max_batch
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="spool")
        self._records: list[Record] = []
        self._futures: list[asyncio.Future[None]] = []
        self._statements: list[tuple[str, tuple[Any, ...]]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self.commits = 0
        self.last_error: SpoolError | None = None

    def submit(self, record: Record) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._records.append(record)
        self._futures.append(fut)
        self._wake.set()
        return fut

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """Run a statement in the next group commit (best effort, not awaited)."""
        self._statements.append((sql, params))
        self._wake.set()

    async def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the spool thread (reads, pruning)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    @property
    def backlog(self) -> int:
        return len(self._records)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not (self._records or self._statements):
                if self._closed:
                    return
                continue
            self._idle.clear()
            records, futures = self._records[: self.max_batch], self._futures[: self.max_batch]
            del self._records[: self.max_batch], self._futures[: self.max_batch]
            statements, self._statements = self._statements, []
            try:
                await loop.run_in_executor(
                    self.executor, self._commit, records, statements
                )
            except SpoolError as e:
                self.last_error = e
                for f in futures:
                    if not f.done():
                        f.set_exception(e)
            else:
                self.last_error = None
                self.commits += 1
                for f in futures:
                    if not f.done():
                        f.set_result(None)
            if self._records or self._statements:
                self._wake.set()
            else:
                self._idle.set()

    def _commit(
        self, records: list[Record], statements: list[tuple[str, tuple[Any, ...]]],
    ) -> None:
        try:
            self.spool.commit(records, (), statements)
        except SpoolFull:
            # The frames of this group are refused (not ACKed); their stations send
            # them again. Make room for them: forwarded rows are at the center already.
            self.spool.release_reserve()
            with contextlib.suppress(SpoolError):
                self.spool.prune(None, limit=max(1000, len(records) * 4))
            self.spool.checkpoint()  # a WAL that cannot grow: move it into the database
            with contextlib.suppress(SpoolError):  # command bookkeeping, if it fits
                self.spool.commit((), (), statements)
            raise

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed."""
        while self._records or self._statements or not self._idle.is_set():
            self._wake.set()
            await self._idle.wait()
            await asyncio.sleep(0)

    async def close(self) -> None:
        await self.flush()
        self._closed = True
        self._wake.set()
        await asyncio.get_running_loop().run_in_executor(self.executor, self.spool.close)
        self.executor.shutdown(wait=True)
