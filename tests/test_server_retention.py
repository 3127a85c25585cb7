"""Retention: the sweeper deletes dead sessions and old spent tokens and nothing in use, on
either store, in batches that log-ins run between; a SQLite database of the previous schema
upgrades itself, and a sweep hands its freed pages back."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mimi_reactive._server import _sweeper
from mimi_reactive._server._database import SEEN_PRECISION
from mimi_reactive._server._records import SweepRules, UserRecord
from mimi_reactive._server._sqlite import SqliteIdentityDatabase
from mimi_reactive.server import IdentityServer, ServerSettings

from .conftest import CLIENT_ID, stores
from .server_helpers import Caller, Clock, row_counts

DAY = 86400.0


async def count(database: str, table: str) -> int:
    return (await row_counts(database, table))[table]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def swept(
    database_url: str, clock: Clock, client_secret: str
) -> AsyncIterator[tuple[IdentityServer, Caller, str]]:
    """A server that sweeps only when told, and the store it keeps, to look at from outside;
    no session cap, so that one user's ended sessions pile up for the sweep alone to delete."""
    settings = ServerSettings(
        clock=clock,
        session_idle_timeout=10 * DAY,
        sweep_interval=0,
        anonymous_retention_days=30,
        max_sessions_per_user=0,
    )
    async with (
        IdentityServer(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            database=database_url,
            settings=settings,
        ) as server,
        aiohttp.ClientSession() as http,
    ):
        yield server, Caller(http, server.url, CLIENT_ID, client_secret), database_url


@stores("sqlite-file", "postgresql")
async def test_a_sweep_deletes_dead_sessions_and_keeps_live_ones(
    swept: tuple[IdentityServer, Caller, str], clock: Clock
) -> None:
    """Revoked and idle sessions go with their tokens; a session in use survives and renews."""
    server, caller, database = swept
    revoked = await caller.anonymous_user()
    await caller.post("/v1/sessions/revoke", {"token": revoked["session"]["refresh_token"]})
    idle = await caller.anonymous_user()
    clock.now += 6 * DAY
    live = await caller.anonymous_user()
    clock.now += 6 * DAY  # idle is 12 days unused; live 6
    counts = await server.sweep()
    assert (counts.sessions, counts.users) == (2, 0)
    assert await count(database, "sessions") == 1
    assert await count(database, "refresh_tokens") == 1
    status, _ = await caller.refresh(live["session"]["refresh_token"])
    assert status == 200
    for gone in (revoked, idle):
        assert (await caller.refresh(gone["session"]["refresh_token"]))[0] == 400
        assert (await caller.log_in_anonymously(gone["user"]["anonymous_id"]))[0] == 200


@stores("sqlite-file", "postgresql")
async def test_a_revoked_session_stays_for_the_spent_token_retention_and_says_revoked(
    swept: tuple[IdentityServer, Caller, str], clock: Clock
) -> None:
    """Sessions a log-out everywhere ended, one of them idle past the timeout too, stay a day
    (spent_token_retention) after the revocation: a sweep leaves them and a refresh says
    revoked, not unknown (which a client answers by logging back in by id); then they go."""
    server, caller, database = swept
    idle = await caller.anonymous_user()
    clock.now += 9.5 * DAY
    _, here = await caller.log_in_anonymously(idle["user"]["anonymous_id"])
    everywhere = {"access_token": here["session"]["access_token"]}
    assert (await caller.post("/v1/sessions/revoke-all", everywhere))[0] == 200
    clock.now += DAY - 60  # idle is 10.5 days unused, past its timeout of 10
    assert (await server.sweep()).sessions == 0
    assert await count(database, "sessions") == 2
    for ended in (idle, here):
        status, answer = await caller.refresh(ended["session"]["refresh_token"])
        assert (status, answer["error"]["reason"]) == (400, "revoked")
    clock.now += 120
    assert (await server.sweep()).sessions == 2
    status, answer = await caller.refresh(idle["session"]["refresh_token"])
    assert (status, answer["error"]["reason"]) == (400, "unknown")


@stores("sqlite-file", "postgresql")
async def test_spent_tokens_stay_until_the_retention_window_so_reuse_is_detected(
    swept: tuple[IdentityServer, Caller, str], clock: Clock
) -> None:
    """A spent token younger than 24 h survives a sweep and its reuse still revokes the
    session; once older, the sweep deletes it and the session's current token works."""
    server, caller, database = swept
    created = await caller.anonymous_user()
    _, renewed = await caller.refresh(created["session"]["refresh_token"])
    clock.now += DAY - 60
    await server.sweep()
    assert await count(database, "refresh_tokens") == 2
    clock.now += 120
    _, current = await caller.refresh(renewed["session"]["refresh_token"])
    assert (await server.sweep()).refresh_tokens == 1
    assert await count(database, "refresh_tokens") == 2  # the newer spent one and the current one
    clock.now += 11  # past the refresh reuse interval: a stolen copy, not a retry
    status, _ = await caller.refresh(renewed["session"]["refresh_token"])
    assert status == 400  # reuse detected: the session is revoked
    assert (await caller.refresh(current["session"]["refresh_token"]))[0] == 400


@stores("sqlite-file", "postgresql")
async def test_anonymous_users_unseen_past_the_retention_go(
    swept: tuple[IdentityServer, Caller, str], clock: Clock
) -> None:
    """With anonymous_retention_days=30 an anonymous user unseen 31 days is deleted; one that
    logged in meanwhile and a credential user stay."""
    server, caller, database = swept
    forgotten = await caller.anonymous_user()
    returning = await caller.anonymous_user()
    await caller.post("/v1/users", {"email": "c@example.test", "password": "long enough"})
    clock.now += 20 * DAY
    assert (await caller.log_in_anonymously(returning["user"]["anonymous_id"]))[0] == 200
    clock.now += 11 * DAY
    assert (await server.sweep()).users == 1
    assert (await caller.log_in_anonymously(forgotten["user"]["anonymous_id"]))[0] == 400
    assert (await caller.log_in_anonymously(returning["user"]["anonymous_id"]))[0] == 200
    assert await count(database, "users") == 2


@stores("sqlite-file", "postgresql")
async def test_one_sweep_deletes_exactly_what_can_never_work_again(
    swept: tuple[IdentityServer, Caller, str], clock: Clock
) -> None:
    """Every rule due at once: both stores delete and count the same rows, and keep all in use."""
    server, caller, database = swept
    forgotten = await caller.anonymous_user()  # its session idles; the user is unseen 31 days
    _, revoked = await caller.log_in_anonymously(forgotten["user"]["anonymous_id"])
    _, revoked = await caller.refresh(revoked["session"]["refresh_token"])  # spends a token
    await caller.post("/v1/sessions/revoke", {"token": revoked["session"]["access_token"]})
    returning = await caller.anonymous_user()  # its first session idles; it logs in again
    credentials = {"email": "k@example.test", "password": "long enough"}
    _, kept, _ = await caller.post("/v1/users", credentials)
    refresh_token = kept["session"]["refresh_token"]
    for day in (5, 10, 15, 20, 25, 30.5):  # spends 6 tokens; 5 of them over a day ago at 31
        clock.now = 1_000_000.0 + day * DAY
        status, renewed = await caller.refresh(refresh_token)
        assert status == 200, renewed
        refresh_token = renewed["session"]["refresh_token"]
        if day == 25:
            assert (await caller.log_in_anonymously(returning["user"]["anonymous_id"]))[0] == 200
    clock.now = 1_000_000.0 + 31 * DAY
    counts = await server.sweep()
    # Rows that go with a deleted user or session are not counted again.
    assert (counts.users, counts.sessions, counts.refresh_tokens) == (1, 1, 5)
    assert await row_counts(database) == {"users": 2, "sessions": 2, "refresh_tokens": 3}
    assert await server.sweep() == type(counts)(sessions=0, refresh_tokens=0, users=0)
    assert (await caller.refresh(refresh_token))[0] == 200
    assert (await caller.log_in_anonymously(returning["user"]["anonymous_id"]))[0] == 200
    assert (await caller.log_in_anonymously(forgotten["user"]["anonymous_id"]))[0] == 400


async def test_last_seen_is_written_at_most_once_an_hour(
    swept: tuple[IdentityServer, Caller, str], clock: Clock
) -> None:
    """A log-in within the hour after the last recorded one is not recorded (so a log-in rarely
    writes the users table); one past the hour is, and keeps the user from retention."""
    server, caller, _ = swept
    within = (await caller.anonymous_user())["user"]["anonymous_id"]
    past = (await caller.anonymous_user())["user"]["anonymous_id"]
    clock.now += SEEN_PRECISION / 2
    assert (await caller.log_in_anonymously(within))[0] == 200  # within the hour
    clock.now += SEEN_PRECISION
    assert (await caller.log_in_anonymously(past))[0] == 200  # past it: recorded
    # 30 days after creation plus a little: only the unrecorded log-in's user is past 30.
    clock.now += 30 * DAY - SEEN_PRECISION
    assert (await server.sweep()).users == 1
    assert (await caller.log_in_anonymously(within))[0] == 400
    assert (await caller.log_in_anonymously(past))[0] == 200


@stores("sqlite-file", "postgresql")
async def test_the_sweeper_runs_on_its_own(database_url: str, client_secret: str) -> None:
    """With a short sweep_interval, a session revoked over a day ago disappears without anyone
    asking."""
    clock = Clock()
    settings = ServerSettings(sweep_interval=0.05, clock=clock)
    async with (
        IdentityServer(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            database=database_url,
            settings=settings,
        ) as server,
        aiohttp.ClientSession() as http,
    ):
        caller = Caller(http, server.url, CLIENT_ID, client_secret)
        created = await caller.anonymous_user()
        await caller.post("/v1/sessions/revoke", {"token": created["session"]["access_token"]})
        clock.now += DAY + 1
        async with asyncio.timeout(10):
            while await count(database_url, "sessions"):  # noqa: ASYNC110 (a row elsewhere)
                await asyncio.sleep(0.02)  # polling a condition, bounded by the timeout


VERSION_1 = """
CREATE TABLE users (id TEXT PRIMARY KEY, anonymous_id_digest TEXT UNIQUE, email TEXT UNIQUE,
    password_hash TEXT, is_anonymous INTEGER NOT NULL, created_at REAL NOT NULL);
CREATE TABLE sessions (id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    access_digest TEXT NOT NULL UNIQUE, access_expires_at REAL NOT NULL,
    created_at REAL NOT NULL, last_used_at REAL NOT NULL, revoked_at REAL, revoked_reason TEXT);
CREATE TABLE refresh_tokens (digest TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    created_at REAL NOT NULL, used_at REAL);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens(session_id);
"""


async def test_a_database_of_the_previous_schema_upgrades_and_keeps_its_users(
    tmp_path: Path, client_secret: str
) -> None:
    """A version-1 database (no user_version) migrates to the current schema keeping its rows,
    indexes and foreign keys (version 3 rebuilds the sessions table): its anonymous user logs
    in, its refresh token rotates, and deleting the user still takes its sessions and tokens."""
    from mimi_reactive._server._schema_sqlite import SCHEMA_VERSION
    from mimi_reactive._server._secrets import digest

    path = tmp_path / "old.sqlite3"
    anonymous_id, refresh_token = "old-anonymous-id-" + "a" * 30, "old-refresh-" + "b" * 30
    user_id, session_id = str(uuid.uuid4()), str(uuid.uuid4())
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.executescript(VERSION_1)
        db.execute(
            "INSERT INTO users VALUES (?, ?, NULL, NULL, 1, 1.0)", (user_id, digest(anonymous_id))
        )
        db.execute(
            "INSERT INTO sessions VALUES (?, ?, 'x', 1.0, 1.0, ?, NULL, NULL)",
            (session_id, user_id, 9e9),
        )
        db.executemany(
            "INSERT INTO refresh_tokens VALUES (?, ?, 1.0, ?)",
            [
                (digest("spent-" + refresh_token), session_id, 1.0),
                (digest(refresh_token), session_id, None),
            ],
        )
    assert await IdentityServer.migrate_database(path) == (0, SCHEMA_VERSION)
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT * FROM sessions").fetchall() == [
            (session_id, user_id, 1.0, 9e9, None, None, None)
        ]
        assert [row[1] for row in db.execute("PRAGMA table_info(sessions)")] == [
            "id",
            "user_id",
            "created_at",
            "last_used_at",
            "revoked_at",
            "revoked_reason",
            "client_id",
        ]
        indexes = {row[1] for row in db.execute("PRAGMA index_list(sessions)")}
        assert indexes == {
            "sqlite_autoindex_sessions_1",
            "sessions_by_user",
            "sessions_by_last_use",
            "sessions_revoked",
        }
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert await row_counts(str(path)) == {"users": 1, "sessions": 1, "refresh_tokens": 2}
    async with (
        IdentityServer(client_id=CLIENT_ID, client_secret=client_secret, database=path) as server,
        aiohttp.ClientSession() as http,
    ):
        caller = Caller(http, server.url, CLIENT_ID, client_secret)
        status, logged_in = await caller.log_in_anonymously(anonymous_id)
        assert (status, logged_in["user"]["id"]) == (200, user_id)
        status, rotated = await caller.refresh(refresh_token)
        assert (status, rotated["user"]["id"]) == (200, user_id)
        assert (await caller.refresh(rotated["session"]["refresh_token"]))[0] == 200
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("SELECT count(*) FROM signing_keys").fetchone()[0] == 1
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("DELETE FROM users")
    assert await row_counts(str(path)) == {"users": 0, "sessions": 0, "refresh_tokens": 0}


async def test_a_database_from_a_newer_server_is_refused(
    tmp_path: Path, client_secret: str
) -> None:
    """A schema newer than the code stops the start with a clear message, never a downgrade."""
    from mimi_reactive.server import ServerStartError

    path = tmp_path / "new.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(ServerStartError, match="schema version 99"):
        async with IdentityServer(client_id=CLIENT_ID, client_secret=client_secret, database=path):
            pass


@stores("sqlite-file")
async def test_a_sweep_that_frees_pages_returns_them_and_truncates_the_wal(
    swept: tuple[IdentityServer, Caller, str], clock: Clock
) -> None:
    """A sweep that deletes enough to free whole pages completes: the pages go back to the
    file system and the WAL is truncated (the vacuum used to leave a statement open)."""
    server, caller, database = swept
    user = await caller.anonymous_user()
    for _ in range(300):
        status, answer = await caller.log_in_anonymously(user["user"]["anonymous_id"])
        assert status == 200
        await caller.post("/v1/sessions/revoke", {"token": answer["session"]["refresh_token"]})
    clock.now += DAY + 1
    counts = await server.sweep()
    assert counts.sessions >= 300
    path = Path(database)
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0


@stores("sqlite-file", "postgresql")
async def test_a_sweep_of_more_rows_than_a_batch_deletes_them_all_and_counts_them(
    swept: tuple[IdentityServer, Caller, str], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With batches of 3 rows, every rule due more than once over (one an exact multiple of
    the batch) deletes all of its rows and the counts are the totals."""
    monkeypatch.setattr(_sweeper, "SWEEP_BATCH", 3)
    server, caller, database = swept
    for _ in range(4):  # unseen for 31 days at the sweep
        await caller.anonymous_user()
    kept = (await caller.anonymous_user())["user"]["anonymous_id"]
    for _ in range(4):  # with its first session, 5 sessions that idle
        assert (await caller.log_in_anonymously(kept))[0] == 200
    clock.now += 25 * DAY
    for _ in range(6):  # 6 revoked sessions: two full batches, then an empty one
        _, answer = await caller.log_in_anonymously(kept)
        await caller.post("/v1/sessions/revoke", {"token": answer["session"]["refresh_token"]})
    _, live = await caller.log_in_anonymously(kept)
    refresh_token = live["session"]["refresh_token"]
    for _ in range(5):  # 5 spent tokens of a live session, 6 days old at the sweep
        status, renewed = await caller.refresh(refresh_token)
        assert status == 200, renewed
        refresh_token = renewed["session"]["refresh_token"]
    clock.now += 6 * DAY
    counts = await server.sweep()
    assert (counts.users, counts.sessions, counts.refresh_tokens) == (4, 11, 5)
    assert await row_counts(database) == {"users": 1, "sessions": 1, "refresh_tokens": 1}
    assert await server.sweep() == type(counts)(sessions=0, refresh_tokens=0, users=0)
    assert (await caller.refresh(refresh_token))[0] == 200
    assert (await caller.log_in_anonymously(kept))[0] == 200


@pytest.mark.parametrize("batch", [0, -1])
def test_a_batch_of_no_rows_is_refused(batch: int) -> None:
    """A batch of 0 or fewer rows would never end a rule, so the rules refuse it."""
    with pytest.raises(ValueError, match="batch"):
        SweepRules(idle_before=0.0, spent_before=0.0, keys_retired_before=0.0, batch=batch)


async def test_a_log_in_during_a_sweep_runs_between_its_batches(
    tmp_path: Path, client_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's one writer: a log-in queued while a sweep's first batch runs is stored before
    the sweep's next batch, with revoked sessions of the sweep still left to delete."""
    monkeypatch.setattr(_sweeper, "SWEEP_BATCH", 2)
    path = tmp_path / "ids.sqlite3"
    queued, left_at_log_in = asyncio.Event(), []
    log_in = SqliteIdentityDatabase.log_in_anonymously

    async def observed(
        self: SqliteIdentityDatabase, anonymous_id_digest: str, start: Any, **options: Any
    ) -> UserRecord | None:
        queued.set()  # seen by the test only once the log-in's operation is queued
        user = await log_in(self, anonymous_id_digest, start, **options)
        left_at_log_in.append(await count(str(path), "sessions"))
        return user

    monkeypatch.setattr(SqliteIdentityDatabase, "log_in_anonymously", observed)
    clock = Clock()
    settings = ServerSettings(sweep_interval=0, clock=clock)
    async with (
        IdentityServer(
            client_id=CLIENT_ID, client_secret=client_secret, database=path, settings=settings
        ) as server,
        aiohttp.ClientSession() as http,
    ):
        caller = Caller(http, server.url, CLIENT_ID, client_secret)
        anonymous_id = (await caller.anonymous_user())["user"]["anonymous_id"]
        for _ in range(10):
            _, answer = await caller.log_in_anonymously(anonymous_id)
            await caller.post("/v1/sessions/revoke", {"token": answer["session"]["refresh_token"]})
        left_at_log_in.clear()
        clock.now += DAY + 1  # the revoked sessions are past their retention
        # Another writer holds the file: the sweep's first batch waits for it on the writer's
        # thread, and the log-in queues behind that batch.
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as holder:
            holder.execute("BEGIN IMMEDIATE")
            sweep = asyncio.create_task(server.sweep())
            logging_in = asyncio.create_task(caller.log_in_anonymously(anonymous_id))
            async with asyncio.timeout(10):
                await queued.wait()
            holder.execute("ROLLBACK")
        assert (await logging_in)[0] == 200
        assert (await sweep).sessions == 10
    # 12 sessions with the log-in's, 10 of them revoked: the first batch's 2 were gone when
    # the log-in was stored, perhaps the second's too (committed meanwhile), never the rest.
    assert left_at_log_in in ([10], [8])
