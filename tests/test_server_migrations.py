"""Versioned schemas on both stores: `mimi-reactive migrate`, migration at start, workers
starting together, a newer or negative schema version refused, and a PostgreSQL URL's
password never shown."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import secrets
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from mimi_reactive._server._postgres import PostgresIdentityDatabase
from mimi_reactive._server._schema_postgres import SCHEMA_VERSION as POSTGRES_VERSION
from mimi_reactive._server._schema_postgres import migrate as migrate_postgres
from mimi_reactive._server._schema_sqlite import SCHEMA_VERSION as SQLITE_VERSION
from mimi_reactive._server._secrets import digest
from mimi_reactive._server._sqlite_file import connect, prepare
from mimi_reactive._server._stores import is_postgres
from mimi_reactive._server._tokens import AccessTokens
from mimi_reactive.server import ClientConfig, IdentityServer, ServerStartError

from .conftest import CLIENT_ID, stores
from .server_helpers import Caller, execute, query_value, row_counts
from .test_server_retention import VERSION_1


def migrate(database: str) -> subprocess.CompletedProcess[str]:
    """Run `mimi-reactive migrate --database DATABASE` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "mimi_reactive", "migrate", "--database", database],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_migrate_upgrades_a_first_schema_sqlite_file(tmp_path: Path) -> None:
    """`migrate` brings a SQLite file of the first schema to the current version, once; its
    user is not anonymous-only (no client was known to be so) and its token not superseded."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(VERSION_1)
        db.execute("INSERT INTO users VALUES ('u', 'a', NULL, NULL, 1, 1.0)")
        db.execute("INSERT INTO sessions VALUES ('s', 'u', 'x', 1.0, 1.0, 1.0, NULL, NULL)")
        db.execute("INSERT INTO refresh_tokens VALUES ('r', 's', 1.0, NULL)")
    first = migrate(str(path))
    assert (first.returncode, first.stdout) == (0, f"schema version {SQLITE_VERSION} (was 0)\n")
    again = migrate(str(path))
    assert again.stdout == f"schema version {SQLITE_VERSION} (was {SQLITE_VERSION})\n"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SQLITE_VERSION
        assert db.execute("SELECT anonymous_only FROM users").fetchall() == [(0,)]
        assert db.execute("SELECT superseded FROM refresh_tokens").fetchall() == [(0,)]


def test_two_processes_opening_one_old_sqlite_file_at_once_migrate_it_once(
    tmp_path: Path,
) -> None:
    """Two connections opening a first-schema SQLite file at the same moment (serve starting
    while migrate runs) both succeed, each step applied once: the second finds under the
    write lock the steps the first applied, rather than adding a column twice."""
    path = tmp_path / "old.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("PRAGMA journal_mode = WAL")  # as every server made its file
        db.executescript(VERSION_1)
        db.execute("INSERT INTO users VALUES ('u', 'a', NULL, NULL, 1, 1.0)")
    together = threading.Barrier(2)

    def open_and_migrate() -> int:
        with contextlib.closing(connect(path)) as db:
            together.wait(timeout=10)
            return prepare(db)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        found = sorted(pool.map(lambda _: open_and_migrate(), range(2)))
    assert found[0] == 0
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SQLITE_VERSION
        assert db.execute("SELECT id, anonymous_only FROM users").fetchall() == [("u", 0)]


async def test_migrate_creates_the_postgresql_schema_once(postgres_url: str) -> None:
    """`migrate` creates the tables in an empty PostgreSQL schema; run again, it changes
    nothing."""
    first = await asyncio.to_thread(migrate, postgres_url)
    assert first.stdout == f"schema version {POSTGRES_VERSION} (was 0)\n", first.stderr
    again = await asyncio.to_thread(migrate, postgres_url)
    assert again.stdout == f"schema version {POSTGRES_VERSION} (was {POSTGRES_VERSION})\n"
    connection = await asyncpg.connect(postgres_url)
    try:
        tables = await connection.fetch(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() ORDER BY 1"
        )
    finally:
        await connection.close()
    assert [row[0] for row in tables] == [
        "mimi_schema",
        "refresh_tokens",
        "sessions",
        "signing_keys",
        "users",
    ]


async def test_a_first_schema_postgresql_database_upgrades_and_keeps_its_users(
    postgres_url: str, client_secret: str
) -> None:
    """A first-schema PostgreSQL database migrates at start keeping its rows and foreign keys:
    its user logs in, its refresh token rotates, and deleting the user takes its sessions; the
    user becomes anonymous-only when an anonymous-only client renews its old session, and then
    no other client promotes it. Its old session is numbered before those created since, and a
    log-out everywhere in batches of one session ends them all."""
    # The SQLite equivalent is in test_server_retention.py; rows are written by hand, as the
    # first version's server would have.
    anonymous_id, refresh_token = "old-anonymous-id-" + "a" * 30, "old-refresh-" + "b" * 30
    user_id, session_id = str(uuid.uuid4()), str(uuid.uuid4())
    connection = await asyncpg.connect(postgres_url)
    try:
        assert await migrate_postgres(connection, up_to=1) == 0
        await connection.execute(
            "INSERT INTO users (id, anonymous_id_digest, is_anonymous, created_at, last_seen_at)"
            " VALUES ($1, $2, true, 1.0, 1.0)",
            user_id,
            digest(anonymous_id),
        )
        await connection.execute(
            "INSERT INTO sessions (id, user_id, access_digest, access_expires_at, created_at,"
            " last_used_at) VALUES ($1, $2, 'x', 1.0, 1.0, 9e9)",
            session_id,
            user_id,
        )
        await connection.execute(
            "INSERT INTO refresh_tokens (digest, session_id, created_at) VALUES ($1, $2, 1.0)",
            digest(refresh_token),
            session_id,
        )
    finally:
        await connection.close()
    other_secret = secrets.token_urlsafe(32)
    clients = [
        ClientConfig(CLIENT_ID, client_secret, anonymous_only=True),
        ClientConfig("web-app", other_secret),
    ]
    async with (
        IdentityServer(clients=clients, database=postgres_url) as server,
        aiohttp.ClientSession() as http,
    ):
        other = Caller(http, server.url, "web-app", other_secret)
        assert await row_counts(postgres_url) == {"users": 1, "sessions": 1, "refresh_tokens": 1}
        status, before = await other.log_in_anonymously(anonymous_id)
        assert (status, before["user"]["id"]) == (200, user_id)
        assert await query_value(postgres_url, "SELECT anonymous_only FROM users") is False
        caller = Caller(http, server.url, CLIENT_ID, client_secret)
        status, rotated = await caller.refresh(refresh_token)
        assert (status, rotated["user"]["id"]) == (200, user_id)
        assert (await caller.refresh(rotated["session"]["refresh_token"]))[0] == 200
        promotion = {"email": "old@example.test", "password": "long enough"}
        status, refused, _ = await other.post(
            "/v1/users/promote", {**promotion, "access_token": before["session"]["access_token"]}
        )
        assert (status, refused["error"]["code"]) == (403, "route_not_allowed")
        status, logged_in = await caller.log_in_anonymously(anonymous_id)
        assert (status, logged_in["user"]["is_anonymous"]) == (200, True)
    assert await query_value(postgres_url, "SELECT version FROM mimi_schema") == POSTGRES_VERSION
    assert await query_value(postgres_url, "SELECT anonymous_only FROM users") is True
    assert await query_value(postgres_url, "SELECT count(*) FROM signing_keys") == 1
    columns = await query_value(
        postgres_url,
        "SELECT string_agg(column_name, ',' ORDER BY ordinal_position)"
        " FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = 'sessions'",
    )
    assert columns == "id,user_id,created_at,last_used_at,revoked_at,revoked_reason,client_id,seq"
    index = await query_value(
        postgres_url,
        "SELECT indexdef FROM pg_indexes"
        " WHERE schemaname = current_schema() AND indexname = 'sessions_by_user'",
    )
    assert str(index).endswith("(user_id, seq)")
    first = await query_value(postgres_url, "SELECT id FROM sessions ORDER BY seq LIMIT 1")
    assert first == session_id
    store = await PostgresIdentityDatabase.open(postgres_url)
    try:
        assert await store.revoke_user_sessions(user_id, 2.0, batch=1) == 3  # old + 2 log-ins
    finally:
        await store.close()
    await query_value(postgres_url, "DELETE FROM users")
    assert await row_counts(postgres_url) == {"users": 0, "sessions": 0, "refresh_tokens": 0}


async def test_workers_starting_together_migrate_once_and_agree_on_one_key(
    postgres_url: str,
) -> None:
    """Four stores opened at once on an empty schema migrate it once and all sign with the
    same first key."""
    stores = await asyncio.gather(*(PostgresIdentityDatabase.open(postgres_url) for _ in range(4)))
    try:
        found = sorted(store.schema_found for store in stores)
        assert found == [0, POSTGRES_VERSION, POSTGRES_VERSION, POSTGRES_VERSION]
        loaded = await asyncio.gather(
            *(AccessTokens.load(store, ttl=60, clock=time.time) for store in stores)
        )
        assert len({repr(tokens) for tokens in loaded}) == 1
    finally:
        for store in stores:
            await store.close()


async def test_a_newer_postgresql_schema_is_refused(postgres_url: str) -> None:
    """A PostgreSQL schema written by a newer server stops the start, never downgraded."""
    connection = await asyncpg.connect(postgres_url)
    try:
        await connection.execute("CREATE TABLE mimi_schema (version integer)")
        await connection.execute("INSERT INTO mimi_schema VALUES (99)")
    finally:
        await connection.close()
    with pytest.raises(ServerStartError, match="schema version 99"):
        await IdentityServer.migrate_database(postgres_url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://mimi:hunter2@127.0.0.1:1/identity",
        "postgresql://mimi:hunter2@127.0.0.1:5432/no_such_database_here",
        "postgresql://mimi:hunter2@127.0.0.1:99999/identity",
    ],
)
async def test_a_postgresql_url_password_is_never_shown(url: str) -> None:
    """A database that cannot be opened is named without the URL's password."""
    with pytest.raises(ServerStartError) as raised:
        async with IdentityServer(
            client_id="app", client_secret=secrets.token_urlsafe(32), database=url
        ):
            pass
    message = str(raised.value)
    assert "hunter2" not in message
    assert "postgresql://mimi@127.0.0.1:" in message


# How each store keeps its schema's version, and how the test writes one there.
_SET_VERSION = {
    "sqlite": "PRAGMA user_version = {version}",
    "postgresql": "UPDATE mimi_schema SET version = {version}",
}
# What is in the store, to see it untouched: its tables' columns, and the version kept.
_LAYOUT = {
    "sqlite": "SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_master ORDER BY name)",
    "postgresql": "SELECT string_agg(table_name || '.' || column_name, ','"
    " ORDER BY table_name, column_name) FROM information_schema.columns"
    " WHERE table_schema = current_schema()",
}
_VERSION_KEPT = {"sqlite": "PRAGMA user_version", "postgresql": "SELECT version FROM mimi_schema"}


@stores("sqlite-file", "postgresql")
@pytest.mark.parametrize("version", [-1, -5, 99], ids=["minus-1", "minus-5", "newer"])
async def test_a_schema_version_no_server_writes_is_refused_untouched(
    database_url: str, version: int
) -> None:
    """`migrate` on a store whose schema version is one no server of this code writes (below
    0, or newer) exits 1 with one line naming the version, and leaves the store as it was: a
    negative version, read as an index into the migrations, would run the last ones first."""
    store = "postgresql" if is_postgres(database_url) else "sqlite"
    assert migrate(database_url).returncode == 0
    await execute(database_url, _SET_VERSION[store].format(version=version))
    layout = await query_value(database_url, _LAYOUT[store])
    done = migrate(database_url)
    assert done.returncode == 1, done.stdout
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"the database has schema version {version}" in done.stderr
    assert "Traceback" not in done.stderr
    assert await query_value(database_url, _LAYOUT[store]) == layout
    assert await query_value(database_url, _VERSION_KEPT[store]) == version
