"""``max_sessions_per_user``: log-ins past it end the user's least recently used sessions (as
idle, so a client logs back in by id) and keep the user's rows bounded, on each store, over
HTTP; and concurrent log-ins of one user through two servers sharing PostgreSQL never leave
more live sessions than the cap."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mimi_reactive import AuthRoute, FileSessionStorage, Transition
from mimi_reactive._server._database import IdentityDatabase
from mimi_reactive._server._records import NewSession
from mimi_reactive._server._secrets import digest, new_secret
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer, ServerSettings
from mimi_reactive.testing import StateRecorder

from .conftest import CLIENT_ID, make_service, stores
from .helpers import CountingBackend
from .server_helpers import Caller, Clock, query_value

CAP = 3


def capped(clock: Clock | None = None, cap: int = CAP) -> ServerSettings:
    """Settings with a small cap, limits off (these tests log in many times from one IP)."""
    return ServerSettings(
        max_sessions_per_user=cap,
        max_failed_log_ins_per_minute=0,
        max_anonymous_sign_ups_per_hour=0,
        sweep_interval=0,
        clock=clock or Clock(),
    )


async def counted(database: str, user_id: str, condition: str = "true") -> int:
    """How many of the user's sessions meet ``condition``, looked at from outside the server."""
    return int(
        await query_value(
            database,
            f"SELECT count(*) FROM sessions WHERE user_id = '{user_id}' AND {condition}",  # noqa: S608
        )
    )


async def live(database: str, user_id: str) -> int:
    return await counted(database, user_id, "revoked_at IS NULL")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def capped_caller(
    database_url: str, clock: Clock, client_secret: str
) -> AsyncIterator[Caller]:
    """A caller of a server whose users may have ``CAP`` live sessions."""
    async with (
        IdentityServer(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            database=database_url,
            settings=capped(clock),
        ) as server,
        aiohttp.ClientSession() as http,
    ):
        yield Caller(http, server.url, CLIENT_ID, client_secret)


async def log_ins(caller: Caller, anonymous_id: str, times: int, clock: Clock) -> list[Any]:
    """``times`` log-ins by ``anonymous_id``, one after another, a second apart; their sessions."""
    sessions = []
    for _ in range(times):
        clock.now += 1
        status, answer = await caller.log_in_anonymously(anonymous_id)
        assert status == 200, answer
        sessions.append(answer["session"])
    return sessions


@stores("sqlite-file", "postgresql")
async def test_log_ins_past_the_cap_end_the_least_recently_used_sessions(
    capped_caller: Caller, database_url: str, clock: Clock
) -> None:
    """CAP + 2 log-ins leave CAP live sessions: the oldest refresh tokens answer invalid_grant
    `idle` (a client logs back in by id), the newest renew."""
    created = await capped_caller.anonymous_user()
    user_id = created["user"]["id"]
    sessions = [
        created["session"],
        *await log_ins(capped_caller, created["user"]["anonymous_id"], CAP + 1, clock),
    ]
    assert await live(database_url, user_id) == CAP
    for ended in sessions[:2]:
        status, answer = await capped_caller.refresh(ended["refresh_token"])
        assert (status, answer["error"]["code"], answer["error"]["reason"]) == (
            400,
            "invalid_grant",
            "idle",
        )
    for kept in sessions[2:]:
        assert (await capped_caller.refresh(kept["refresh_token"]))[0] == 200


@stores("sqlite-file", "postgresql")
async def test_a_renewed_session_outlives_newer_unused_ones(
    capped_caller: Caller, database_url: str, clock: Clock
) -> None:
    """Least recently used, not oldest: the first session, renewed since, is kept while the
    sessions made after it and left unused end."""
    created = await capped_caller.anonymous_user()
    anonymous_id = created["user"]["anonymous_id"]
    unused = await log_ins(capped_caller, anonymous_id, CAP - 1, clock)
    clock.now += 1
    status, renewed = await capped_caller.refresh(created["session"]["refresh_token"])
    assert status == 200
    await log_ins(capped_caller, anonymous_id, CAP - 1, clock)
    assert await live(database_url, created["user"]["id"]) == CAP
    assert (await capped_caller.refresh(renewed["session"]["refresh_token"]))[0] == 200
    for ended in unused:
        assert (await capped_caller.refresh(ended["refresh_token"]))[1]["error"]["reason"] == "idle"


@stores("sqlite-file", "postgresql")
async def test_a_users_stored_sessions_stay_bounded(
    capped_caller: Caller, database_url: str, clock: Clock
) -> None:
    """However many log-ins, a user keeps CAP live and CAP ended sessions at most: older ended
    ones are deleted with their tokens (a refresh of one is `unknown`), other users untouched."""
    bystander = await capped_caller.anonymous_user()
    created = await capped_caller.anonymous_user()
    user_id = created["user"]["id"]
    sessions = await log_ins(capped_caller, created["user"]["anonymous_id"], 4 * CAP, clock)
    assert await counted(database_url, user_id) == 2 * CAP
    assert await live(database_url, user_id) == CAP
    of_user = f"SELECT id FROM sessions WHERE user_id = '{user_id}'"  # noqa: S608
    tokens = await query_value(
        database_url,
        f"SELECT count(*) FROM refresh_tokens WHERE session_id IN ({of_user})",  # noqa: S608
    )
    assert tokens == 2 * CAP
    status, answer = await capped_caller.refresh(sessions[0]["refresh_token"])
    assert (status, answer["error"]["reason"]) == (400, "unknown")
    assert (await capped_caller.refresh(bystander["session"]["refresh_token"]))[0] == 200


@stores("sqlite-file", "postgresql")
async def test_a_cap_of_0_ends_no_session(
    database_url: str, clock: Clock, client_secret: str
) -> None:
    """max_sessions_per_user 0 turns the cap off: every log-in's session stays live."""
    async with (
        IdentityServer(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            database=database_url,
            settings=capped(clock, cap=0),
        ) as server,
        aiohttp.ClientSession() as http,
    ):
        caller = Caller(http, server.url, CLIENT_ID, client_secret)
        created = await caller.anonymous_user()
        await log_ins(caller, created["user"]["anonymous_id"], 2 * CAP, clock)
        assert await live(database_url, created["user"]["id"]) == 2 * CAP + 1


async def test_a_core_whose_session_was_ended_by_the_cap_logs_back_in_by_id(
    tmp_path: Path, client_secret: str
) -> None:
    """CAP log-ins by the core's anonymous id elsewhere end its session; its next refresh is
    refused and it logs the same user back in by id: no SESSION_EXPIRED, a working token."""
    limits_off = {"max_failed_log_ins_per_minute": 0, "max_anonymous_sign_ups_per_hour": 0}
    async for service in make_service(
        tmp_path, client_secret, max_sessions_per_user=CAP, **limits_off
    ):
        backend = CountingBackend(HttpBackend(service.url))
        storage = FileSessionStorage(tmp_path / "session.json")
        async with service.core(storage, backend=backend) as core, aiohttp.ClientSession() as http:
            recorder = StateRecorder(core)
            user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
            assert user.anonymous_id is not None
            elsewhere = Caller(http, service.url, CLIENT_ID, client_secret)
            await log_ins(elsewhere, user.anonymous_id, CAP, Clock())
            await core.auth.refresh()
            assert (backend.counts["refresh"], backend.counts["authenticate"]) == (1, 2)
            assert core.auth.current_user == user
            assert Transition.SESSION_EXPIRED not in [s.transition for s in recorder.states]
            token = await core.auth.access_token()
            _, answer = await service.post("/v1/token/introspect", {"token": token})
            assert answer["active"] is True


@pytest.mark.parametrize("cap", [1, 5])
@stores("postgresql")
async def test_concurrent_log_ins_through_two_servers_never_pass_the_cap(
    database_url: str, client_secret: str, cap: int
) -> None:
    """Log-ins of one user sent at once through two servers sharing PostgreSQL (as two workers)
    leave exactly ``cap`` live sessions, each log-in answered 200."""
    clock = Clock()
    async with (
        IdentityServer(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            database=database_url,
            settings=capped(clock, cap),
        ) as first,
        IdentityServer(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            database=database_url,
            settings=capped(clock, cap),
        ) as second,
        aiohttp.ClientSession() as http,
    ):
        callers = [Caller(http, s.url, CLIENT_ID, client_secret) for s in (first, second)]
        created = await callers[0].anonymous_user()
        anonymous_id = created["user"]["anonymous_id"]
        answers = await asyncio.gather(
            *(callers[i % 2].log_in_anonymously(anonymous_id) for i in range(4 * cap + 8))
        )
        assert [status for status, _ in answers] == [200] * len(answers)
        assert await live(database_url, created["user"]["id"]) == cap


@pytest.mark.parametrize("cap", [1, 4])
@stores("sqlite", "postgresql")
async def test_concurrent_sessions_of_a_known_user_never_pass_the_cap(
    store: IdentityDatabase, cap: int
) -> None:
    """New sessions of one user stored at once (log-ins with a password: the store's
    create_session, on as many pooled connections) leave exactly ``cap`` live sessions."""

    def new_session() -> NewSession:
        return NewSession(str(uuid.uuid4()), CLIENT_ID, digest(new_secret()), 1e6, cap)

    user = await store.create_user(
        user_id=str(uuid.uuid4()),
        anonymous_id_digest=None,
        email="capped@example.test",
        password_hash="not checked here",
        session=new_session(),
    )
    stored = await asyncio.gather(
        *(store.create_session(user.id, new_session()) for _ in range(4 * cap + 8))
    )
    assert None not in stored
    ended = await asyncio.gather(*(store.session_by_id(each.id) for each in stored if each))
    assert sum(each is not None for each in ended) == cap
