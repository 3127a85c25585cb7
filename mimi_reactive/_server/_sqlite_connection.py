"""One SQLite connection on a thread of its own, running queued operations in batches.

An operation is a plain function of the connection. Operations queued while a batch runs
go together in the next one: one crossing to the thread for the whole batch, and, on the
writing connection, one transaction and so one commit (one ``fsync``) for all of them: group
commit, as databases do. A write operation that fails is undone alone: the others in its
batch still commit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["BatchingConnection", "Operation"]

_T = TypeVar("_T")
Operation = Callable[[sqlite3.Connection], _T]


class _Failed:
    """What a failed operation raised, carried back from the thread with its batch."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class BatchingConnection:
    """A SQLite connection that runs operations in batches on its own thread.

    ``writes=True`` wraps each batch in ``BEGIN IMMEDIATE`` ... ``COMMIT``; otherwise a batch is
    one read transaction (one consistent snapshot). ``before_writes`` runs on the thread before
    each write batch; what it raises fails the whole batch (a file that is gone, say).
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        writes: bool,
        before_writes: Callable[[], None] | None = None,
    ) -> None:
        self._connect = connect
        self._writes = writes
        self._before_writes = before_writes
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "mimi-sqlite")
        self._connection: sqlite3.Connection | None = None
        self._queue: list[tuple[Operation[Any], asyncio.Future[Any], bool]] = []
        self._running = False
        self._closed = False

    async def open(self) -> None:
        """Connect, on the connection's own thread (SQLite objects stay on one thread)."""
        loop = asyncio.get_running_loop()
        self._connection = await loop.run_in_executor(self._thread, self._connect)

    async def run(self, operation: Operation[_T]) -> _T:
        """Run ``operation`` in the next batch; its result, or what it raised."""
        return await self._enqueue(operation, alone=False)

    async def run_alone(self, operation: Operation[_T]) -> _T:
        """Run ``operation`` in a batch of its own, outside any transaction (PRAGMAs, DDL)."""
        return await self._enqueue(operation, alone=True)

    async def close(self) -> None:
        """Let queued operations finish, then close the connection and stop the thread."""
        if self._closed or self._connection is None:
            return
        self._closed = True  # nothing more is queued: closing is the last operation
        await self._enqueue(lambda connection: connection.close(), alone=True, closing=True)
        self._thread.shutdown(wait=False)

    def _enqueue(
        self, operation: Operation[_T], *, alone: bool, closing: bool = False
    ) -> asyncio.Future[_T]:
        if self._connection is None or (self._closed and not closing):
            raise sqlite3.ProgrammingError("the database is closed")
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._queue.append((operation, future, alone))
        if not self._running:
            self._start_batch()
        return future

    def _start_batch(self) -> None:
        # A batch is every queued operation up to the first that must run alone, or that one.
        queue = self._queue
        if queue[0][2]:
            batch, self._queue = queue[:1], queue[1:]
        else:
            end = next((at for at, (_, _, alone) in enumerate(queue) if alone), len(queue))
            batch, self._queue = queue[:end], queue[end:]
        self._running = True
        loop = asyncio.get_running_loop()
        operations = [operation for operation, _, _ in batch]
        work = self._run_alone if batch[0][2] else self._run_batch
        done = loop.run_in_executor(self._thread, work, operations)
        done.add_done_callback(lambda finished: self._finish(batch, finished))

    def _finish(
        self,
        batch: list[tuple[Operation[Any], asyncio.Future[Any], bool]],
        finished: asyncio.Future[list[Any]],
    ) -> None:
        self._running = False
        error = asyncio.CancelledError() if finished.cancelled() else finished.exception()
        results = [_Failed(error)] * len(batch) if error is not None else finished.result()
        for (_, future, _), result in zip(batch, results, strict=True):
            if future.done():  # its caller stopped waiting
                continue
            if isinstance(result, _Failed):
                future.set_exception(result.error)
            else:
                future.set_result(result)
        if self._queue:
            self._start_batch()

    def _run_alone(self, operations: list[Operation[Any]]) -> list[Any]:
        assert self._connection is not None
        try:
            return [operations[0](self._connection)]
        except Exception as error:
            return [_Failed(error)]

    def _run_batch(self, operations: list[Operation[Any]]) -> list[Any]:
        """On the thread: every operation in one transaction, a failed one undone alone.

        No savepoint per operation (it cost a third of a log-in's time in SQLite): when one
        fails, the whole transaction is rolled back and run again without it. A failure of
        the database itself (locked, I/O, full disk) fails the whole batch instead.
        """
        connection = self._connection
        assert connection is not None
        if self._before_writes is not None:
            self._before_writes()
        results: list[Any] = [None] * len(operations)
        pending = list(range(len(operations)))
        while pending:
            failed = None
            connection.execute("BEGIN IMMEDIATE" if self._writes else "BEGIN")
            try:
                for index in pending:
                    try:
                        results[index] = operations[index](connection)
                    except sqlite3.Error as error:
                        if not isinstance(error, sqlite3.IntegrityError):
                            raise
                        results[index], failed = _Failed(error), index
                    except Exception as error:
                        results[index], failed = _Failed(error), index
                    if failed is not None and self._writes:
                        break
                if failed is None or not self._writes:
                    connection.execute("COMMIT")
                    return results
                connection.execute("ROLLBACK")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            pending.remove(failed)
        return results
