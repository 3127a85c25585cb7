"""Log-ins that end a capped user's least recently used sessions, sent at once with refreshes
of those very sessions, with a log-out everywhere or the account's deletion, and with the
promotion of an anonymous user from the session they end: every request is answered (never
5xx), a refresh either renews a session that stays live or is told its
session ended, the cap holds, and PostgreSQL counts no deadlock (each path takes the user's
row before its sessions, so none waits for another in a cycle)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from mimi_reactive._server._database import IdentityDatabase, SessionGoneError
from mimi_reactive._server._records import NewSession
from mimi_reactive._server._secrets import digest, new_secret
from mimi_reactive._server._stores import open_database
from mimi_reactive.server import IdentityServer

from .conftest import CLIENT_ID, POSTGRES_URL
from .server_helpers import Caller, Clock, eventually, query_value
from .test_server_session_cap import capped, live

CAP = 6
LOG_INS = 2  # per round, each ending one of the CAP - LOG_INS least recently used sessions
ROUNDS = 12
# A promotion locking its session before its user deadlocked 6-14 times in 96 rounds: many
# rounds (each a few milliseconds) so that this lock order undone fails the test every run.
PROMOTION_ROUNDS = 96
# Answers to a refresh of a session ended meanwhile: by the cap (idle), by a log-out everywhere
# (revoked), or its rows deleted (by the cap's bound on ended sessions, or with the user).
ENDED = {"idle", "revoked", "unknown"}


@pytest.fixture(params=["sqlite-file", "postgresql"])
async def race_database(
    request: pytest.FixtureRequest, postgres_unreachable: str | None, tmp_path: Path
) -> AsyncIterator[str]:
    """SQLite in a file, or a PostgreSQL database of this test's own (so its deadlock count,
    which PostgreSQL keeps per database, is this test's alone), dropped afterwards."""
    if request.param == "sqlite-file":
        yield str(tmp_path / "ids.sqlite3")
        return
    if postgres_unreachable is not None:
        pytest.skip(postgres_unreachable)
    name = f"mimi_race_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        try:
            yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


async def deadlocks(database: str) -> int:
    """PostgreSQL's count of deadlocks in ``database`` (0 for SQLite), once every other
    connection to it is closed: a backend reports its counts by the time it exits."""
    if not database.startswith("postgresql://"):
        return 0
    others = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )

    async def alone() -> bool:
        return int(await query_value(database, others)) == 0

    async with asyncio.timeout(30):
        await eventually(alone)
    return int(
        await query_value(
            database,
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
        )
    )


async def at_the_cap(caller: Caller, clock: Clock) -> tuple[dict[str, Any], list[Any]]:
    """A new user with CAP live and CAP ended sessions (so each log-in past the cap ends one
    and deletes one), used a second apart: the user, its live sessions oldest first."""
    created = await caller.anonymous_user()
    sessions = [created["session"]]
    for _ in range(2 * CAP - 1):
        clock.now += 1
        status, answer = await caller.log_in_anonymously(created["user"]["anonymous_id"])
        assert status == 200, answer
        sessions.append(answer["session"])
    clock.now += 1
    return created, sessions[-CAP:]


# What runs beside the log-ins and refreshes: nothing, or an ending of every session.
ALSO = {
    "alone": None,
    "log_out_everywhere": "/v1/sessions/revoke-all",
    "account_deletion": "/v1/users/delete",
}


def next_session(clock: Clock) -> NewSession:
    """A new session of the capped client, created a second after the one before."""
    clock.now += 1
    return NewSession(str(uuid.uuid4()), CLIENT_ID, digest(new_secret()), clock.now, CAP)


@contextlib.asynccontextmanager
async def capped_caller(database: str, client_secret: str, clock: Clock) -> AsyncIterator[Caller]:
    """A server on ``database`` capping each user at CAP live sessions, and a caller of it."""
    async with (
        IdentityServer(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            database=database,
            settings=capped(clock, CAP),
        ) as server,
        aiohttp.ClientSession() as http,
    ):
        yield Caller(http, server.url, CLIENT_ID, client_secret)


@pytest.mark.parametrize("also", ALSO.values(), ids=ALSO)
async def test_log_ins_past_the_cap_race_refreshes_of_the_sessions_they_end(
    race_database: str, client_secret: str, also: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    """Log-ins ending the oldest sessions, refreshes of those and an optional end-all at once:
    no 5xx, refreshes renew (staying live) or are invalid_grant, cap kept, no deadlock."""
    clock = Clock()
    caplog.set_level(logging.WARNING, logger="mimi_reactive")
    async with capped_caller(race_database, client_secret, clock) as caller:
        for _ in range(ROUNDS):
            created, sessions = await at_the_cap(caller, clock)
            anonymous_id = created["user"]["anonymous_id"]
            oldest = sessions[:LOG_INS]
            requests = [
                *(caller.refresh(session["refresh_token"]) for session in oldest),
                *(caller.log_in_anonymously(anonymous_id) for _ in range(LOG_INS)),
            ]
            if also is not None:
                ending = caller.post(also, {"access_token": sessions[-1]["access_token"]})
                requests.append(_status_and_body(ending))
            answers = await asyncio.gather(*requests)
            assert [s for s, _ in answers if s >= 500] == [], answers
            refreshes, log_ins = answers[:LOG_INS], answers[LOG_INS : 2 * LOG_INS]
            for status, answer in refreshes:
                if status != 200:
                    error = answer["error"]
                    assert (status, error["code"]) == (400, "invalid_grant"), answer
                    assert error["reason"] in ENDED, answer
                elif also is None:
                    # Renewed, it is among the most recently used: no log-in ends it after.
                    token = answer["session"]["refresh_token"]
                    assert (await caller.refresh(token))[0] == 200
            if also is None:
                assert [status for status, _ in log_ins] == [200] * LOG_INS
            assert await live(race_database, created["user"]["id"]) <= CAP
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert await deadlocks(race_database) == 0


async def test_a_promotion_races_log_ins_past_the_cap_that_end_its_session(
    race_database: str, client_secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A promotion sent with log-ins past the cap, from a session they end or one they leave:
    no 5xx; promoted, or invalid_token once its session ended; no deadlock."""
    clock = Clock()
    caplog.set_level(logging.WARNING, logger="mimi_reactive")
    async with capped_caller(race_database, client_secret, clock) as caller:
        for round_ in range(ROUNDS):
            created, sessions = await at_the_cap(caller, clock)
            anonymous_id = created["user"]["anonymous_id"]
            # The log-ins end sessions[:LOG_INS]; over HTTP they end the promoting one before
            # the promotion (which hashes the password first) reaches the database, which the
            # store's test above races closely.
            promoting = round_ % (LOG_INS + 1)
            promotion = {
                "access_token": sessions[promoting]["access_token"],
                "email": f"user{round_}@example.com",
                "password": "long enough",
            }
            (promoted, answer), *log_ins = await asyncio.gather(
                _status_and_body(caller.post("/v1/users/promote", promotion)),
                *(caller.log_in_anonymously(anonymous_id) for _ in range(LOG_INS)),
            )
            assert [s for s, _ in [(promoted, answer), *log_ins] if s >= 500] == [], log_ins
            if promoted == 200 or promoting >= LOG_INS:
                assert promoted == 200, answer
                assert answer["user"]["email"] == promotion["email"], answer
            else:
                assert (promoted, answer["error"]["code"]) == (401, "invalid_token"), answer
            for status, body in log_ins:
                if status != 200:  # after the promotion, the anonymous id is no way in
                    assert promoted == 200, body
                    assert (status, body["error"]["code"]) == (400, "invalid_grant"), body
            if promoted != 200:  # the session it promoted from was ended by a log-in
                assert 200 in [status for status, _ in log_ins], log_ins
            assert await live(race_database, created["user"]["id"]) <= CAP
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert await deadlocks(race_database) == 0


async def _status_and_body(call: Any) -> tuple[int, Any]:
    status, body, _ = await call
    return status, body


# Each way of ending every session of a user, as the store's call.
END_ALL = {
    "log_out_everywhere": lambda db, user_id: db.revoke_user_sessions(user_id, 2e6),
    "user_deleted": lambda db, user_id: db.delete_user(user_id),
}


@pytest.mark.parametrize("end_all", END_ALL.values(), ids=END_ALL)
async def test_the_store_ends_all_sessions_of_a_user_while_log_ins_pass_the_cap(
    race_database: str, end_all: Any
) -> None:
    """New sessions past the cap (each ending a live session and deleting an ended one) stored
    at once with a log-out everywhere or deletion of their user: all answer, no deadlock."""
    store: IdentityDatabase = await open_database(race_database)
    clock = Clock()
    new_session = partial(next_session, clock)

    try:
        for _ in range(2 * ROUNDS):
            user = await store.create_user(
                user_id=str(uuid.uuid4()),
                anonymous_id_digest=None,
                email=None,
                password_hash=None,
                session=new_session(),
            )
            for _ in range(2 * CAP - 1):  # CAP live, CAP ended
                assert await store.create_session(user.id, new_session()) is not None
            await asyncio.gather(
                *(store.create_session(user.id, new_session()) for _ in range(2 * LOG_INS)),
                end_all(store, user.id),
            )
            assert await live(race_database, user.id) <= CAP
    finally:
        await store.close()
    assert await deadlocks(race_database) == 0


async def test_the_store_promotes_a_user_while_log_ins_past_the_cap_end_the_promoting_session(
    race_database: str,
) -> None:
    """A promotion from the least recently used session, stored at once with anonymous log-ins
    past the cap that end it: one of them wins, the other sees it did, no deadlock."""
    store: IdentityDatabase = await open_database(race_database)
    clock = Clock()
    new_session = partial(next_session, clock)

    try:
        for round_ in range(PROMOTION_ROUNDS):
            anonymous_id = digest(new_secret())
            sessions = [new_session()]
            user = await store.create_user(
                user_id=str(uuid.uuid4()),
                anonymous_id_digest=anonymous_id,
                email=None,
                password_hash=None,
                session=sessions[0],
            )
            for _ in range(2 * CAP - 1):  # CAP live, CAP ended
                sessions.append(new_session())
                assert await store.log_in_anonymously(anonymous_id, sessions[-1]) is not None
            # The least recently used live session: the first log-in ends it.
            promotion = store.promote(
                user.id,
                session_id=sessions[-CAP].id,
                email=f"user{round_}@example.com",
                password_hash="not checked here",
            )
            log_ins = (
                store.log_in_anonymously(anonymous_id, new_session()) for _ in range(LOG_INS)
            )
            promoted, *logged_in = await asyncio.gather(promotion, *log_ins, return_exceptions=True)
            # Promoted first, the anonymous id no longer logs in; logged in first, the session
            # it promotes from has ended.
            assert [r for r in logged_in if isinstance(r, BaseException)] == [], logged_in
            if isinstance(promoted, SessionGoneError):  # nothing written
                assert any(found is not None for found in logged_in), logged_in
                stored = await store.user_by_id(user.id)
                assert stored is not None
                assert stored.is_anonymous
            else:
                assert not isinstance(promoted, BaseException), promoted
                assert promoted is not None
                assert promoted.email == f"user{round_}@example.com"
                assert logged_in == [None] * LOG_INS, logged_in
            assert await live(race_database, user.id) <= CAP
    finally:
        await store.close()
    assert await deadlocks(race_database) == 0
