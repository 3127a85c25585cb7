"""A PostgreSQL schema upgrade beside other sessions of the database server: it waits a bounded
time for locks an open transaction holds (and says whose they are), and a database already
up to date is served by a role that may only read and write rows."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import attrs
import pytest

from mimi_reactive._server._database import SchemaError
from mimi_reactive._server._schema_postgres import SCHEMA_VERSION, migrate
from mimi_reactive._server._stores import DatabaseOpenError, migrate_database, open_database

from .conftest import CLIENT_ID, POSTGRES_URL
from .server_helpers import calling, eventually, query_value


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    connection = await asyncpg.connect(url)
    try:
        yield connection
    finally:
        await connection.close()


async def waits_on_a_lock(watcher: asyncpg.Connection[asyncpg.Record], pid: int) -> bool:
    """Whether the backend ``pid`` waits for a heavyweight lock now."""
    state = await watcher.fetchval(
        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid
    )
    return bool(state == "Lock")


@attrs.frozen
class BlockedUpgrade:
    """An upgrade from schema version 3 waiting for a table lock an open transaction holds."""

    upgrade: asyncio.Task[int]
    upgrader_pid: int
    holder: asyncpg.Connection[asyncpg.Record]
    """The session whose open transaction holds the lock."""
    watcher: asyncpg.Connection[asyncpg.Record]
    """A third session, to watch and read beside the two."""


@contextlib.asynccontextmanager
async def blocked_upgrade(
    url: str, *, lock_timeout: float, attempts: int
) -> AsyncIterator[BlockedUpgrade]:
    """An upgrade (``lock_timeout`` per try, ``attempts`` tries) waiting for the lock of a
    transaction left open after a query marked secret-query-text; all within 60 s."""
    async with (
        connected(url) as upgrader,
        connected(url) as holder,
        connected(url) as watcher,
        asyncio.timeout(60),
    ):
        await migrate(upgrader, up_to=3)
        await holder.execute("BEGIN; SELECT count(*) FROM sessions /* secret-query-text */")
        upgrade = asyncio.create_task(
            migrate(upgrader, lock_timeout=lock_timeout, attempts=attempts)
        )
        pid = upgrader.get_server_pid()
        try:
            await eventually(lambda: waits_on_a_lock(watcher, pid))
            yield BlockedUpgrade(upgrade, pid, holder, watcher)
        finally:
            upgrade.cancel()  # a test that failed must not leave it running
            await asyncio.gather(upgrade, return_exceptions=True)


async def test_an_upgrade_behind_an_open_transaction_gives_up_naming_it(
    postgres_url: str,
) -> None:
    """An upgrade whose table lock an idle open transaction holds waits `lock_timeout` per
    try, lets a reader queued behind it through, and gives up naming the holder's pid and
    state (not its query); nothing of the upgrade is left."""
    async with blocked_upgrade(postgres_url, lock_timeout=0.5, attempts=2) as blocked:
        reader = blocked.watcher
        # Queued behind the upgrade's pending exclusive lock until that lock wait times out.
        assert await reader.fetchval("SELECT count(*) FROM sessions", timeout=10) == 0
        with pytest.raises(SchemaError) as refused:
            await blocked.upgrade
        await blocked.holder.execute("ROLLBACK")
        assert await reader.fetchval("SELECT version FROM mimi_schema") == 3
    message = str(refused.value)
    assert f"pid {blocked.holder.get_server_pid()} " in message
    assert "idle in transaction" in message
    assert "secret-query-text" not in message


async def test_an_upgrade_goes_on_once_the_transaction_in_its_way_ends(
    postgres_url: str,
) -> None:
    """An upgrade that timed out on a lock tries again after a pause, and completes once the
    transaction that held the lock has ended."""
    async with blocked_upgrade(postgres_url, lock_timeout=0.2, attempts=3) as blocked:
        watcher, pid = blocked.watcher, blocked.upgrader_pid
        await eventually(lambda: waiting_no_more(watcher, pid))  # timed out: pausing
        await blocked.holder.execute("ROLLBACK")
        assert await blocked.upgrade == 3
        assert await watcher.fetchval("SELECT version FROM mimi_schema") == SCHEMA_VERSION


async def waiting_no_more(watcher: asyncpg.Connection[asyncpg.Record], pid: int) -> bool:
    return not await waits_on_a_lock(watcher, pid)


@pytest.fixture
async def row_role(postgres_unreachable: str | None) -> AsyncIterator[str]:
    """A login role of this test's own with no privileges, dropped afterwards."""
    if postgres_unreachable is not None:
        pytest.skip(postgres_unreachable)
    role = f"mimi_test_rows_{secrets.token_hex(6)}"
    async with connected(POSTGRES_URL) as admin:
        await admin.execute(f"CREATE ROLE {role} LOGIN")
        try:
            yield role
        finally:
            await admin.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")


def as_role(url: str, role: str) -> str:
    """``url`` logging in as ``role`` (the test server trusts loopback: no password)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))


async def grant_rows(url: str, role: str) -> None:
    """What serving needs: the schema's use, and reading and writing the rows of its tables."""
    schema = await query_value(url, "SELECT current_schema()")
    async with connected(url) as admin:
        await admin.execute(
            f"GRANT USAGE ON SCHEMA {schema} TO {role};"
            f" GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}"
        )


async def test_a_role_that_only_reads_and_writes_rows_serves_a_migrated_database(
    postgres_url: str, row_role: str, client_secret: str
) -> None:
    """On a database a privileged role migrated, a role with only SELECT, INSERT, UPDATE and
    DELETE on its tables (no DDL, no sequence privileges) runs `migrate` (nothing to do) and
    serves: the first signing key is stored, a sign-up, a log-in by id and a refresh work."""
    assert await migrate_database(postgres_url) == (0, SCHEMA_VERSION)
    await grant_rows(postgres_url, row_role)
    limited = as_role(postgres_url, row_role)
    assert await migrate_database(limited) == (SCHEMA_VERSION, SCHEMA_VERSION)
    async with calling(CLIENT_ID, client_secret, database=limited) as (_, caller):
        created = await caller.anonymous_user()
        status, logged_in = await caller.log_in_anonymously(created["user"]["anonymous_id"])
        assert status == 200, logged_in
        status, refreshed = await caller.refresh(logged_in["session"]["refresh_token"])
        assert status == 200, refreshed
    assert await query_value(postgres_url, "SELECT count(*) FROM signing_keys") == 1


@pytest.mark.parametrize("migrated_to", [None, 3], ids=["no-schema", "old-schema"])
async def test_a_role_that_may_not_upgrade_is_told_to_run_migrate_with_one_that_may(
    postgres_url: str, row_role: str, migrated_to: int | None
) -> None:
    """A role without DDL privileges opening a database with no schema or an old one is
    refused with one line telling the operator to run migrate with a role that owns it."""
    if migrated_to is not None:
        async with connected(postgres_url) as admin:
            await migrate(admin, up_to=migrated_to)
    await grant_rows(postgres_url, row_role)
    with pytest.raises(DatabaseOpenError) as refused:
        await open_database(as_role(postgres_url, row_role))
    message = str(refused.value)
    assert f"schema is at version {migrated_to or 0}, this server needs {SCHEMA_VERSION}" in message
    assert "run `mimi-reactive migrate` with a role that owns the schema" in message
