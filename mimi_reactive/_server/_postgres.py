"""Where the reference server keeps users and sessions when several workers share them:
PostgreSQL, through an ``asyncpg`` connection pool.

Each operation is one statement where it can be (PostgreSQL runs a statement atomically, and
data-modifying CTEs find or write a user, its session and its token together): one round trip.
Refresh rotation is the exception: it locks the token and its session, then writes, in one
transaction. Operations run on the pool of ``_postgres_pool.py`` (which retries one that lost a
deadlock to another worker); the statements longer than a line are in ``_postgres_sql.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from . import _postgres_sql as sql
from ._database import (
    SEEN_PRECISION,
    USER_SESSIONS_BATCH,
    EmailTakenError,
    OtherClientError,
    SessionGoneError,
    in_batches,
)
from ._postgres_pool import DatabasePool
from ._records import Expired, NewSession, Rotation, SessionRecord, SigningKeyRecord, UserRecord
from ._schema_postgres import migrate

__all__ = ["PostgresIdentityDatabase"]

if TYPE_CHECKING:
    from ._postgres_pool import Connection


class PostgresIdentityDatabase:
    """``IdentityDatabase`` on a PostgreSQL database that any number of workers share."""

    def __init__(self, pool: DatabasePool) -> None:
        self._pool = pool
        self.schema_found = 0
        """The schema version the database had when opened (before migrating)."""

    def __repr__(self) -> str:
        return (
            f"PostgresIdentityDatabase(pool_size={self._pool.size},"
            f" pool_max_size={self.pool_max_size})"
        )

    @property
    def pool_max_size(self) -> int:
        """The most connections the pool opens."""
        return self._pool.max_size

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        max_size: int = 10,
        storage_timeout: float = 5.0,
        prepared: bool = False,
    ) -> PostgresIdentityDatabase:
        """Migrate the schema of ``dsn`` forward, then connect a pool of at most ``max_size``
        connections to it, where each connect, wait for a connection and statement has
        ``storage_timeout`` seconds (``TimeoutError`` past that): a database that stops answering (a
        partition) fails the call rather than hanging it. ``prepared``: the schema is known to
        be up to date (a worker's, after ``prepare_workers``), so nothing connects until the
        first call, and a worker (re)started while the database is out starts all the same."""
        found = None
        if not prepared:
            # On a connection of its own, its statements without the timeout: a migration may
            # rightly take long. Connecting is bounded: a server that accepts and never answers
            # would otherwise hold the start for asyncpg's own minute.
            connection = await asyncpg.connect(dsn, timeout=storage_timeout)
            try:
                found = await migrate(connection)
            finally:
                await connection.close()
        opened = cls(
            await DatabasePool.open(
                dsn, max_size=max_size, storage_timeout=storage_timeout, lazy=prepared
            )
        )
        if found is not None:
            opened.schema_found = found
        return opened

    async def close(self) -> None:
        await self._pool.close()

    async def ready(self, within: float) -> None:
        """Return once a trivial query through the pool is answered within ``within``
        seconds; raise what failed (``TimeoutError``, a dropped database's ``PostgresError``)."""
        await self._pool.ready(within)

    def connection(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """One pooled connection (for tools and tests that look at the tables)."""
        return self._pool.connection()

    async def create_user(
        self,
        *,
        user_id: str,
        anonymous_id_digest: str | None,
        email: str | None,
        password_hash: str | None,
        session: NewSession,
        anonymous_only: bool = False,
    ) -> UserRecord:
        """Store a new user, its first session and refresh token: one statement."""
        user = UserRecord(user_id, email is None, email, password_hash, anonymous_only)
        with _email_taken():
            await self._pool.execute(
                sql.CREATE_USER,
                user_id,
                anonymous_id_digest,
                email,
                password_hash,
                user.is_anonymous,
                session.now,
                session.id,
                session.client_id,
                session.refresh_digest,
                anonymous_only,
            )
        return user

    async def log_in_anonymously(
        self, anonymous_id_digest: str, session: NewSession, *, anonymous_only: bool = False
    ) -> UserRecord | None:
        """The user, with the new session and its refresh token stored (and, through an
        anonymous-only client, the user marked so, after which no promotion passes): one
        statement."""
        try:
            found = await self._pool.fetchrow(
                sql.LOG_IN,
                anonymous_id_digest,
                session.id,
                session.client_id,
                session.now,
                session.refresh_digest,
                session.now - SEEN_PRECISION,
                anonymous_only,
                session.max_sessions,
            )
        except asyncpg.ForeignKeyViolationError:  # deleted meanwhile: no user now
            return None
        return None if found is None else UserRecord(*tuple(found)[:5])

    async def user_by_email(self, email: str) -> UserRecord | None:
        return _user(await self._pool.fetchrow(sql.USER + "email = $1", email))

    async def user_by_id(self, user_id: str) -> UserRecord | None:
        return _user(await self._pool.fetchrow(sql.USER + "id = $1", user_id))

    async def promote(
        self, user_id: str, *, session_id: str, email: str, password_hash: str
    ) -> UserRecord | None:
        """The promoted user, as ``SqliteIdentityDatabase`` does: one statement."""
        # The anonymous id stops being a way in: a promoted user logs in with credentials.
        with _email_taken():
            row = await self._pool.fetchrow(sql.PROMOTE, user_id, email, password_hash, session_id)
        assert row is not None  # SELECT of two EXISTS: always one row
        if not row["live"]:
            raise SessionGoneError
        return UserRecord(user_id, False, email, password_hash) if row["promoted"] else None

    async def delete_user(self, user_id: str, *, batch: int = USER_SESSIONS_BATCH) -> bool:
        """Delete the user's sessions ``batch`` at a time in ``seq`` (creation) order, each
        batch after the last one's, then the user with any left (the foreign keys cascade),
        as ``IdentityDatabase.delete_user`` says."""
        last = 0  # seq counts from 1

        async def step(size: int) -> int:
            nonlocal last
            row = await self._pool.fetchrow(sql.DELETE_USER_SESSIONS, user_id, size, last)
            assert row is not None  # an aggregate: always one row
            last = row["last"] or last
            return int(row["found"])

        await in_batches(step, batch)
        return await self._pool.execute("DELETE FROM users WHERE id = $1", user_id) != "DELETE 0"

    async def create_session(self, user_id: str, session: NewSession) -> SessionRecord | None:
        row = await self._pool.fetchrow(sql.CREATE_SESSION, *_session_args(user_id, session))
        assert row is not None  # an aggregate: always one row
        if not row[0]:  # deleted meanwhile: no user now
            return None
        return SessionRecord(session.id, user_id, session.now, session.client_id)

    async def session_by_id(self, session_id: str) -> SessionRecord | None:
        row = await self._pool.fetchrow(
            f"SELECT {sql.SESSION_ROW} FROM sessions"  # noqa: S608
            " WHERE id = $1 AND revoked_at IS NULL",
            session_id,
        )
        return None if row is None else SessionRecord(*row)

    async def touch_session(self, session_id: str, now: float) -> None:
        await self._pool.execute(
            "UPDATE sessions SET last_used_at = $2 WHERE id = $1", session_id, now
        )

    async def rotate_refresh_token(
        self,
        refresh_digest: str,
        *,
        client_id: str,
        new_refresh_digest: str,
        now: float,
        idle_timeout: float,
        reuse_interval: float,
        anonymous_only: bool = False,
    ) -> tuple[Rotation, SessionRecord | None, UserRecord | None]:
        """Spend a refresh token for a new pair, as ``SqliteIdentityDatabase`` does.

        The token's row and its session's are locked first, so two workers presenting tokens
        of one session take turns, and the second sees what the first wrote.
        """

        async def rotate(
            db: Connection,
        ) -> tuple[Rotation, SessionRecord | None, UserRecord | None]:
            async with db.transaction():
                row = await db.fetchrow(sql.LOCK_REFRESH_ROW, refresh_digest)
                if row is None or row["client_id"] not in (None, client_id):
                    return Rotation.UNKNOWN, None, None
                session_id, user_id, last_used_at, revoked_at, used_at, seq = tuple(row)[:6]
                if revoked_at is not None:
                    return Rotation.ended(row["revoked_reason"]), None, None
                if now - last_used_at > idle_timeout:
                    await db.execute(sql.REVOKE, session_id, now, "idle")
                    return Rotation.IDLE, None, None
                rotation = Rotation.ROTATED
                if used_at is not None:
                    if (
                        row["superseded"]
                        or now - used_at >= reuse_interval
                        or await db.fetchval(sql.NEWER_SPENT, session_id, seq)
                    ):
                        await db.execute(sql.REVOKE, session_id, now, "refresh_token_reuse")
                        ended = SessionRecord(session_id, user_id, last_used_at, row["client_id"])
                        return Rotation.REUSED, ended, None
                    rotation = Rotation.REISSUED
                marked = anonymous_only or row["anonymous_only"]
                user = UserRecord(
                    user_id, row["is_anonymous"], row["email"], row["password_hash"], marked
                )
                await db.execute(
                    sql.ROTATE,
                    now,
                    refresh_digest,
                    new_refresh_digest,
                    session_id,
                    client_id,
                    user_id,
                    now - SEEN_PRECISION,
                )
                if anonymous_only and not row["anonymous_only"]:  # once, not every renewal
                    await db.execute(sql.MARK_USER_ANONYMOUS_ONLY, user_id)
            session = SessionRecord(session_id, user_id, now, client_id)
            return rotation, session, user

        return await self._pool.retried(rotate)

    async def revoke_session(self, session_id: str, now: float) -> bool:
        return await self._pool.execute(sql.REVOKE, session_id, now, "log_out") != "UPDATE 0"

    async def revoke_session_by_refresh_token(
        self, refresh_digest: str, now: float, *, client_id: str
    ) -> bool:
        row = await self._pool.fetchrow(sql.REVOKE_BY_REFRESH, refresh_digest, now, client_id)
        if row is not None and row["own"] is False:
            raise OtherClientError
        return row is not None and bool(row["revoked"])

    async def revoke_user_sessions(
        self, user_id: str, now: float, *, batch: int = USER_SESSIONS_BATCH
    ) -> int:
        """Revoke every live session of the user, walking its sessions ``batch`` at a time in
        ``seq`` (creation) order, each batch after the last one's, as
        ``IdentityDatabase.revoke_user_sessions`` says, then in one final pass those numbered
        after the log-ins in flight at the start (``sql.SETTLED_SEQ``), which a batch may have
        passed while they committed; how many it revoked."""

        async def settled(db: Connection) -> int:
            async with db.transaction():
                await db.execute(sql.SETTLED_SEQ[0], user_id)
                return int(await db.fetchval(sql.SETTLED_SEQ[1], user_id))

        floor = await self._pool.retried(settled)
        revoked = last = 0  # seq counts from 1

        async def step(size: int) -> int:
            nonlocal revoked, last
            row = await self._pool.fetchrow(sql.REVOKE_USER_SESSIONS, user_id, size, now, last)
            assert row is not None  # a SELECT of counts: always one row
            revoked += row["revoked"]  # fewer than live when others ended some meanwhile
            last = row["last"] or last
            return int(row["found"])

        await in_batches(step, batch)
        final = await self._pool.execute(sql.FINAL_REVOKE, user_id, floor, now)
        return revoked + int(final.split()[-1])

    async def signing_keys(self) -> Sequence[SigningKeyRecord]:
        """Every stored signing key, newest first."""
        rows = await self._pool.retried(lambda c: c.fetch(sql.KEYS))
        return [SigningKeyRecord(*row) for row in rows]

    async def add_signing_key(self, key: SigningKeyRecord) -> None:
        """Store a new signing key and retire the ones before it from the instant it starts
        signing (its ``created_at``): one statement, under the keys' advisory lock. Two
        rotations at once would otherwise each retire only the keys committed before it began,
        and the first one's key, retired by neither, would stay published and never be swept."""

        async def add(db: Connection) -> None:
            async with db.transaction():
                await db.execute(sql.KEY_LOCK)
                await db.execute(
                    sql.ADD_KEY,
                    key.kid,
                    key.algorithm,
                    key.private_pem,
                    key.created_at,
                    key.retired_at,
                )

        await self._pool.retried(add)

    async def ensure_signing_key(self, first: SigningKeyRecord) -> Sequence[SigningKeyRecord]:
        """Every stored key, after storing ``first`` if there is none (workers starting
        together agree on one first key: an advisory lock orders them)."""

        async def ensure(db: Connection) -> list[asyncpg.Record]:
            async with db.transaction():
                await db.execute(sql.KEY_LOCK)
                if not await db.fetchval("SELECT EXISTS (SELECT 1 FROM signing_keys)"):
                    await db.execute(
                        sql.ADD_KEY,
                        first.kid,
                        first.algorithm,
                        first.private_pem,
                        first.created_at,
                        first.retired_at,
                    )
                return await db.fetch(sql.KEYS)

        return [SigningKeyRecord(*row) for row in await self._pool.retried(ensure)]

    async def delete_batch(self, rule: Expired, before: float, limit: int) -> int:
        """Delete at most ``limit`` of the rows ``rule`` finds due by ``before``, in one
        statement (its own short transaction) that passes over rows others hold; how many."""
        # "DELETE n" counts the table's own rows, not those the foreign keys cascade to.
        return int((await self._pool.execute(sql.DELETE_DUE[rule], limit, before)).split()[-1])

    async def compact(self) -> None:
        """Nothing: autovacuum reuses the space deleted rows leave."""


@contextlib.contextmanager
def _email_taken() -> Any:
    """A unique email that is taken becomes ``EmailTakenError``."""
    try:
        yield
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name == "users_email_key":
            raise EmailTakenError from None
        raise


def _session_args(user_id: str, session: NewSession) -> tuple[object, ...]:
    """sql.CREATE_SESSION's parameters, in order."""
    return (
        user_id,
        session.id,
        session.client_id,
        session.now,
        session.refresh_digest,
        session.now - SEEN_PRECISION,
        session.max_sessions,
    )


def _user(row: asyncpg.Record | None) -> UserRecord | None:
    return None if row is None else UserRecord(*row)
