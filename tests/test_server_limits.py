"""Abuse limits per client IP: 429 with Retry-After past each limit, windows moved by the
server clock (no sleeping), and 503 when every Argon2 worker is busy, on either store."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from mimi_reactive import (
    AuthRoute,
    InvalidCredentialsError,
    MimiConfiguration,
    MimiCore,
    RateLimitedError,
)
from mimi_reactive._server._secrets import BUSY_DELAY, PasswordHasher
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer, ServerSettings

from .conftest import CLIENT_ID
from .server_helpers import Caller, Clock

SECRET = secrets.token_urlsafe(32)


@pytest.fixture
def clock() -> Clock:
    return Clock(3600.0 * 1000)  # the start of an hour: windows are easy to reason about


def limited_server(settings: ServerSettings, database: str) -> IdentityServer:
    """A server of this module's one client, with these limits, on this store."""
    return IdentityServer(
        client_id=CLIENT_ID, client_secret=SECRET, settings=settings, database=database
    )


@pytest.fixture
async def limited(clock: Clock, database_url: str) -> AsyncIterator[IdentityServer]:
    """A server with low limits, on each store in turn."""
    settings = ServerSettings(
        clock=clock, max_anonymous_sign_ups_per_hour=3, max_failed_log_ins_per_minute=2
    )
    async with limited_server(settings, database_url) as s:
        yield s


@pytest.fixture
async def caller(limited: IdentityServer) -> AsyncIterator[Caller]:
    async with aiohttp.ClientSession() as http:
        yield Caller(http, limited.url, CLIENT_ID, SECRET)


async def test_anonymous_sign_ups_past_the_hourly_limit_get_429(
    caller: Caller, clock: Clock
) -> None:
    """The 4th sign-up in an hour is 429 rate_limited with Retry-After; the next hour is open."""
    for _ in range(3):
        await caller.anonymous_user()
    clock.now += 600
    status, answer, headers = await caller.post("/v1/anonymous-users")
    assert (status, answer["error"]["code"]) == (429, "rate_limited")
    assert int(headers["Retry-After"]) == 3000
    clock.now += 3000
    await caller.anonymous_user()


async def test_wrong_anonymous_ids_past_the_limit_get_429_even_for_a_right_one(
    caller: Caller, clock: Clock
) -> None:
    """After 2 wrong ids in a minute the 3rd is 429, and so is a right id until the minute ends."""
    created = await caller.anonymous_user()
    for _ in range(2):
        status, _ = await caller.log_in_anonymously(secrets.token_urlsafe(32))
        assert status == 400
    status, answer = await caller.log_in_anonymously(secrets.token_urlsafe(32))
    assert (status, answer["error"]["code"]) == (429, "rate_limited")
    status, answer = await caller.log_in_anonymously(created["user"]["anonymous_id"])
    assert status == 429
    clock.now += 60
    status, _ = await caller.log_in_anonymously(created["user"]["anonymous_id"])
    assert status == 200


async def test_wrong_passwords_and_client_secrets_count_together(
    caller: Caller, limited: IdentityServer
) -> None:
    """A wrong password and a wrong client secret are both failures; the 3rd is 429."""
    await caller.post("/v1/users", {"email": "a@example.test", "password": "long enough"})
    status, _, _ = await caller.post(
        "/v1/sessions", {"email": "a@example.test", "password": "not the one"}
    )
    assert status == 400
    wrong = Caller(caller.http, limited.url, CLIENT_ID, secrets.token_urlsafe(32))
    assert (await wrong.post("/v1/anonymous-users"))[0] == 401
    status, answer, headers = await wrong.post("/v1/anonymous-users")
    assert (status, answer["error"]["code"]) == (429, "rate_limited")
    assert 1 <= int(headers["Retry-After"]) <= 60
    status, _, _ = await caller.post(
        "/v1/sessions", {"email": "a@example.test", "password": "long enough"}
    )
    assert status == 429  # no Argon2 work is spent on a blocked address


async def test_the_client_library_raises_rate_limited_with_retry_after(
    limited: IdentityServer,
) -> None:
    """HttpBackend turns 429 into RateLimitedError carrying the server's Retry-After."""
    async with MimiCore.start(
        client_id=CLIENT_ID,
        client_secret=SECRET,
        configuration=MimiConfiguration(allow_anonymous_user_only=True),
        backend=HttpBackend(limited.url),
    ) as core:
        for _ in range(2):
            with pytest.raises(InvalidCredentialsError):
                await core.auth.authenticate(
                    AuthRoute.log_in_anonymously(anonymous_id=secrets.token_urlsafe(32))
                )
        with pytest.raises(RateLimitedError) as raised:
            await core.auth.authenticate(
                AuthRoute.log_in_anonymously(anonymous_id=secrets.token_urlsafe(32))
            )
    assert raised.value.status == 429
    assert raised.value.retry_after == 60


async def test_limits_set_to_zero_are_off(clock: Clock, database_url: str) -> None:
    """With both limits 0, many sign-ups and wrong ids from one address are never 429."""
    settings = ServerSettings(
        clock=clock, max_anonymous_sign_ups_per_hour=0, max_failed_log_ins_per_minute=0
    )
    async with (
        limited_server(settings, database_url) as server,
        aiohttp.ClientSession() as http,
    ):
        caller = Caller(http, server.url, CLIENT_ID, SECRET)
        for _ in range(110):
            await caller.anonymous_user()
        for _ in range(40):
            assert (await caller.log_in_anonymously(secrets.token_urlsafe(32)))[0] == 400


async def test_a_trusted_proxy_forwards_the_client_address(clock: Clock, database_url: str) -> None:
    """Behind a trusted proxy each X-Forwarded-For client has its own limit; others cannot
    forge one."""
    settings = ServerSettings(
        clock=clock,
        max_anonymous_sign_ups_per_hour=1,
        trusted_proxies=frozenset({"127.0.0.1"}),
    )
    async with (
        limited_server(settings, database_url) as server,
        aiohttp.ClientSession() as http,
    ):
        sign_up = Caller(http, server.url, CLIENT_ID, SECRET).sign_up_forwarded_for
        assert await sign_up("203.0.113.1") == 201
        assert await sign_up("203.0.113.2") == 201
        assert await sign_up("203.0.113.1") == 429
        assert await sign_up("not-an-address, 203.0.113.1") == 429


async def test_a_password_flood_gets_503_instead_of_queueing_without_end(
    database_url: str,
) -> None:
    """With one Argon2 worker and no queue, concurrent password log-ins past the first get
    503 server_busy with Retry-After (held back that long), and anonymous log-in still
    answers."""
    settings = ServerSettings(
        password_hash_workers=1, password_hash_queue=0, max_failed_log_ins_per_minute=0
    )
    async with (
        limited_server(settings, database_url) as server,
        aiohttp.ClientSession() as http,
    ):
        caller = Caller(http, server.url, CLIENT_ID, SECRET)
        created = await caller.anonymous_user()
        wrong = {"email": "a@example.test", "password": "not the one"}
        started = time.monotonic()
        answers = await asyncio.gather(*(caller.post("/v1/sessions", wrong) for _ in range(8)))
        # Refusals are held back BUSY_DELAY seconds, so a flood that retries at once is slowed.
        assert time.monotonic() - started >= BUSY_DELAY
        busy = [a for a in answers if a[0] == 503]
        assert busy, [a[0] for a in answers]
        assert all(a[1]["error"]["code"] == "server_busy" for a in busy)
        assert all(a[2]["Retry-After"] == "1" for a in busy)
        assert {a[0] for a in answers} <= {400, 503}
        assert (await caller.log_in_anonymously(created["user"]["anonymous_id"]))[0] == 200


async def test_a_password_hash_takes_one_lane() -> None:
    """Argon2 hashes in one lane (one thread), so one pool worker takes one core at most."""
    hasher = PasswordHasher()
    try:
        stored = await hasher.hash("correct horse battery staple")
        assert await hasher.verify(stored, "correct horse battery staple")
    finally:
        hasher.close()
    assert stored.startswith("$argon2id$")
    assert ",p=1$" in stored
