"""How the PostgreSQL database (``_postgres.py``) gets a connection for an operation: from an
``asyncpg`` pool, within the storage timeout, again if the operation lost a deadlock to another
worker, and a connection lost under it (the server's backend terminated) told as such, whatever
asyncpg raised. The database's operations are the statements; this is what runs them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

__all__ = ["Connection", "DatabasePool"]

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

_T = TypeVar("_T")
_ATTEMPTS = 3
# Whether the session may write: "on" on a standby (hot standby is read-only) and where
# default_transaction_read_only is set, and every log-in and sign-up writes.
_READY_QUERY = "SELECT current_setting('transaction_read_only')"


class DatabasePool:
    """An ``asyncpg`` pool whose every wait and statement has ``timeout`` seconds."""

    def __init__(self, pool: asyncpg.Pool, *, timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout

    @classmethod
    async def open(
        cls, dsn: str, *, max_size: int, storage_timeout: float, lazy: bool = False
    ) -> DatabasePool:
        """A pool of at most ``max_size`` connections to ``dsn``, where each connect, wait for a
        connection and statement has ``storage_timeout`` seconds (``TimeoutError`` past that): a
        database that stops answering (a partition) fails the call rather than hanging it.
        ``lazy``: nothing connects until the first call."""
        pool = await asyncpg.create_pool(
            dsn,
            min_size=0 if lazy else 1,
            max_size=max_size,
            timeout=storage_timeout,
            command_timeout=storage_timeout,
        )
        return cls(pool, timeout=storage_timeout)

    @property
    def size(self) -> int:
        """The connections the pool has open now."""
        return self._pool.get_size()

    @property
    def max_size(self) -> int:
        """The most connections the pool opens."""
        return self._pool.get_max_size()

    async def close(self) -> None:
        await self._pool.close()

    async def retried(self, operation: Callable[[Connection], Awaitable[_T]]) -> _T:
        """Run ``operation`` on a pooled connection, again if it lost a deadlock."""
        for attempt in range(_ATTEMPTS):
            try:
                async with self._pooled() as connection:
                    return await operation(connection)
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def execute(self, query: str, *args: Any) -> str:
        """``query`` run (``retried``); its status, as "UPDATE 1"."""
        return await self.retried(lambda c: c.execute(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        """``query``'s first row (``retried``), if any."""
        return await self.retried(lambda c: c.fetchrow(query, *args))

    @contextlib.asynccontextmanager
    async def _pooled(self) -> AsyncIterator[Connection]:
        """A pooled connection for one operation. Its connection lost (the server's backend
        terminated: a restart, a failover) is ``ConnectionDoesNotExistError``, an outage,
        whatever asyncpg raised; failing to give it back does not undo what it did."""
        # The acquire's timeout bounds the wait for a free connection and the reset when it
        # goes back (a cut-off connection is closed, not pooled again).
        connection = await self._pool.acquire(timeout=self._timeout)
        try:
            yield connection
        except (asyncpg.InterfaceError, asyncpg.InternalClientError) as error:
            # A connection terminated mid-operation can fail as "cannot call
            # Transaction.__aexit__(): the underlying connection is closed" or "another
            # operation is in progress"; a DataError (an InterfaceError too) is a bug.
            if _closed(connection) and not isinstance(error, asyncpg.DataError):
                raise asyncpg.ConnectionDoesNotExistError("the connection was lost") from error
            raise
        finally:
            # The reset on release fails on a connection terminated after the operation ended
            # (its statements committed): asyncpg closes that connection and the pool opens
            # another; the operation's result or error is the answer.
            with contextlib.suppress(Exception):
                await self._pool.release(connection)

    async def ready(self, within: float) -> None:
        """Return once a trivial query through the pool is answered within ``within``
        seconds by a session that may write; raise what failed (``TimeoutError``, a dropped
        database's ``PostgresError``, ``ReadOnlySQLTransactionError`` for a read-only one)."""
        # asyncpg's own timeouts, not a cancellation: one cancelled while it returns a
        # cut-off connection to the pool waits for that connection without end.
        async with self._pool.acquire(timeout=within) as connection:
            read_only = await connection.fetchval(_READY_QUERY, timeout=within)
        if read_only == "on":
            raise asyncpg.ReadOnlySQLTransactionError("the database takes no writes")

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """One pooled connection, without the operations' timeout on the wait."""
        async with self._pool.acquire() as connection:
            yield connection


def _closed(connection: Connection) -> bool:
    """Whether a pooled connection is closed: one the pool let go of before its user did was
    closed under it (asyncpg hands a closed connection back itself)."""
    try:
        return connection.is_closed()
    except asyncpg.InterfaceError:  # "connection has been released back to the pool"
        return True
