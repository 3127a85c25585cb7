"""A user's deletion and log-out everywhere end its sessions in batches, each a transaction of
its own within the storage timeout, so a user with very many sessions (log-ins by id are not
limited) is still deleted or logged out everywhere; once the call returns, none of its sessions
is live, those created while it ran included (on PostgreSQL, those committed after a batch
passed their number too). On either store, with many sessions stored directly and small
batches."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from mimi_reactive._server import _postgres, _sqlite
from mimi_reactive._server._database import IdentityDatabase, in_batches
from mimi_reactive._server._records import NewSession, Rotation
from mimi_reactive._server._secrets import digest, new_secret
from mimi_reactive._server._stores import is_postgres, open_database

from .conftest import CLIENT_ID, stores
from .server_helpers import eventually, query_value
from .test_server_ending_races import NOW, anonymous_user

MANY = 20_000
BATCH = 1_000


async def add_sessions(database: str, user_id: str, count: int) -> str:
    """Store ``count`` live sessions of the user, each with a refresh token, from outside the
    server; the refresh token of the last one."""
    sessions = [(f"bulk-{n}", user_id, NOW, NOW, CLIENT_ID) for n in range(count)]
    tokens = [(f"digest-{n}", f"bulk-{n}", NOW) for n in range(count)]
    if is_postgres(database):
        connection = await asyncpg.connect(database)
        try:
            await connection.copy_records_to_table(
                "sessions",
                records=sessions,
                columns=["id", "user_id", "created_at", "last_used_at", "client_id"],
            )
            await connection.copy_records_to_table(
                "refresh_tokens", records=tokens, columns=["digest", "session_id", "created_at"]
            )
        finally:
            await connection.close()
    else:
        with contextlib.closing(sqlite3.connect(database)) as db, db:
            db.executemany(
                "INSERT INTO sessions (id, user_id, created_at, last_used_at, client_id)"
                " VALUES (?, ?, ?, ?, ?)",
                sessions,
            )
            db.executemany(
                "INSERT INTO refresh_tokens (digest, session_id, created_at) VALUES (?, ?, ?)",
                tokens,
            )
    return f"digest-{count - 1}"


def log_ins_between_batches(
    monkeypatch: pytest.MonkeyPatch, store: IdentityDatabase, user_id: str
) -> list[str]:
    """The ids of sessions of the user that a log-in starts after each batch that is not the
    last one of a batched call of the store, as log-ins while it runs would."""
    started: list[str] = []

    async def logging_in(step: Callable[[int], Awaitable[int]], size: int) -> int:
        async def step_then_log_in(limit: int) -> int:
            found = await step(limit)
            if found == limit:  # another batch follows
                session = NewSession(str(uuid.uuid4()), CLIENT_ID, digest(new_secret()), NOW)
                assert await store.create_session(user_id, session) is not None
                started.append(session.id)
            return found

        return await in_batches(step_then_log_in, size)

    for module in (_sqlite, _postgres):
        monkeypatch.setattr(module, "in_batches", logging_in)
    return started


async def live_sessions(database: str, user_id: str) -> int:
    return int(
        await query_value(
            database,
            f"SELECT count(*) FROM sessions WHERE user_id = '{user_id}'"  # noqa: S608
            " AND revoked_at IS NULL",
        )
    )


async def renewal(store: IdentityDatabase, refresh_digest: str) -> Rotation:
    """What presenting the refresh token of this digest does."""
    rotation, _, _ = await store.rotate_refresh_token(
        refresh_digest,
        client_id=CLIENT_ID,
        new_refresh_digest=digest(new_secret()),
        now=NOW,
        idle_timeout=3600.0,
        reuse_interval=60.0,
    )
    return rotation


@stores("sqlite-file", "postgresql")
async def test_log_out_everywhere_ends_many_sessions_in_batches(
    store: IdentityDatabase, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every live session of a user with many is revoked, those started between its batches
    too, and counted; another user's session stays live."""
    user, session = await anonymous_user(store)
    _, other_session = await anonymous_user(store)
    last_token = await add_sessions(database_url, user.id, MANY)
    started = log_ins_between_batches(monkeypatch, store, user.id)
    revoked = await store.revoke_user_sessions(user.id, NOW, batch=BATCH)
    assert len(started) >= MANY // BATCH  # in batches, log-ins between them
    assert revoked == MANY + 1 + len(started)
    assert await live_sessions(database_url, user.id) == 0
    assert await renewal(store, last_token) is Rotation.REVOKED
    assert await store.session_by_id(session.id) is None
    assert await store.session_by_id(other_session.id) is not None


@stores("sqlite-file", "postgresql")
async def test_deleting_a_user_with_many_sessions_ends_them_all(
    store: IdentityDatabase, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user with many sessions is deleted with all of them and their tokens, those started
    between its batches too; another user stays."""
    user, session = await anonymous_user(store)
    _, other_session = await anonymous_user(store)
    last_token = await add_sessions(database_url, user.id, MANY)
    started = log_ins_between_batches(monkeypatch, store, user.id)
    assert await store.delete_user(user.id, batch=BATCH)
    assert len(started) >= MANY // BATCH  # in batches, log-ins between them
    assert await store.user_by_id(user.id) is None
    assert await store.session_by_id(session.id) is None
    assert await query_value(database_url, "SELECT count(*) FROM sessions") == 1
    assert await query_value(database_url, "SELECT count(*) FROM refresh_tokens") == 1
    assert await renewal(store, last_token) is Rotation.UNKNOWN
    assert await store.session_by_id(other_session.id) is not None
    assert not await store.delete_user(user.id, batch=BATCH)


async def blocked_by(watcher: asyncpg.Connection[asyncpg.Record], *pids: int) -> bool:
    """Whether a backend waits for a lock one of ``pids`` holds."""
    return bool(
        await watcher.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity"
            " WHERE pg_blocking_pids(pid) && $1::int[])",
            list(pids),
        )
    )


@contextlib.asynccontextmanager
async def transactions(database: str, count: int) -> AsyncIterator[list[Any]]:
    """``count`` connections of the test's own, each in a transaction it ends itself."""
    async with contextlib.AsyncExitStack() as stack:
        connections = []
        for _ in range(count):
            connection = await asyncpg.connect(database)
            stack.push_async_callback(connection.close)
            await connection.execute("BEGIN")
            connections.append(connection)
        yield connections


@stores("postgresql")
async def test_log_out_everywhere_ends_sessions_that_commit_after_a_batch_passed_them(
    store: IdentityDatabase, database_url: str
) -> None:
    """On PostgreSQL, a session numbered before others but committed only once the batches
    have passed its number ends too: one whose log-in was in flight as the call began, and one
    that started while it ran. Every session committed before the call's last statement ends,
    so no log-in that answered before a later one survives it."""
    user, _ = await anonymous_user(store)

    async def new_session() -> str:
        session = NewSession(str(uuid.uuid4()), CLIENT_ID, digest(new_secret()), NOW)
        assert await store.create_session(user.id, session) is not None
        return session.id

    async def insert_slowly(connection: Any, session_id: str) -> None:
        """A session numbered now and committed when the test says (a slow log-in)."""
        await connection.execute(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, client_id)"
            " VALUES ($1, $2, $3, $3, $4)",
            session_id,
            user.id,
            NOW,
            CLIENT_ID,
        )

    async def hold(connection: Any, session_id: str) -> None:
        """Hold the session's row, so the batch that reaches it waits there."""
        await connection.execute("SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE", session_id)

    # The call waits on the test's row locks: a loaded machine must not run it into the
    # storage timeout (5 s) while the test takes its next steps.
    patient = await open_database(database_url, storage_timeout=60)
    watcher = await asyncpg.connect(database_url)
    try:
        async with transactions(database_url, 4) as (slow, slower, first_hold, second_hold):
            async with asyncio.timeout(60):
                await insert_slowly(slow, "in-flight-as-the-call-begins")
                await hold(first_hold, await new_session())
                revoked = asyncio.create_task(patient.revoke_user_sessions(user.id, NOW, batch=1))

                async def waiting_on(*pids: int) -> bool:
                    """Whether the call waits on ``pids``; its error if it ended instead."""
                    if revoked.done():
                        revoked.result()
                        raise AssertionError("the log-out everywhere ended unblocked")
                    return await blocked_by(watcher, *pids)

                pids = (slow.get_server_pid(), first_hold.get_server_pid())
                await eventually(lambda: waiting_on(*pids))
                await slow.execute("COMMIT")
                await insert_slowly(slower, "started-while-it-runs")
                # Committed at once but not through the store: each batch now holds the
                # user's row (the lock order: user before sessions), which the store's log-in
                # waits for, and this batch waits on first_hold until the test rolls it back.
                await insert_slowly(watcher, "numbered-after-it")
                await hold(second_hold, "numbered-after-it")
                await first_hold.execute("ROLLBACK")
                await eventually(lambda: waiting_on(second_hold.get_server_pid()))
                await slower.execute("COMMIT")
                await second_hold.execute("ROLLBACK")
                assert await revoked == 5
    finally:
        await watcher.close()
        await patient.close()
    assert await live_sessions(database_url, user.id) == 0


@stores("postgresql")
@pytest.mark.parametrize("log_in", ["create_session", "log_in_anonymously"])
async def test_a_log_in_numbers_its_session_only_once_it_holds_the_user(
    store: IdentityDatabase, database_url: str, log_in: str
) -> None:
    """On PostgreSQL, a log-in waiting for its user's row (which a log-out everywhere locks to
    let in-flight log-ins commit first) has not yet numbered its session: one numbered before
    that lock would commit after it, below where the log-out's final pass starts."""
    anonymous_id = new_secret()
    session = NewSession(str(uuid.uuid4()), CLIENT_ID, digest(new_secret()), NOW)
    user = await store.create_user(
        user_id=str(uuid.uuid4()),
        anonymous_id_digest=digest(anonymous_id),
        email=None,
        password_hash=None,
        session=session,
    )
    numbered = (
        "SELECT last_value FROM pg_sequences"
        " WHERE schemaname = current_schema() AND sequencename = 'sessions_seq_seq'"
    )
    watcher = await asyncpg.connect(database_url)
    async with transactions(database_url, 1) as (locker,), asyncio.timeout(60):
        await locker.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user.id)
        before = await watcher.fetchval(numbered)
        another = NewSession(str(uuid.uuid4()), CLIENT_ID, digest(new_secret()), NOW)
        logging_in = asyncio.create_task(
            store.create_session(user.id, another)
            if log_in == "create_session"
            else store.log_in_anonymously(digest(anonymous_id), another)
        )
        await eventually(lambda: blocked_by(watcher, locker.get_server_pid()))
        assert await watcher.fetchval(numbered) == before
        await locker.execute("ROLLBACK")
        assert await logging_in is not None
    await watcher.close()
