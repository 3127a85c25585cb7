"""Each database operation is one transaction: a failure at its second statement leaves it
wholly undone, and concurrent requests never commit each other's half-done work, on either
store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from mimi_reactive._server._stores import is_postgres
from mimi_reactive.server import IdentityServer

from .conftest import CLIENT_ID, stores
from .server_helpers import execute, query_value, row_counts

# SQL that makes every insert of a refresh token fail, and SQL that undoes it, per store.
FAIL_REFRESH_TOKENS = {
    "sqlite": """
        CREATE TRIGGER fail_refresh_token BEFORE INSERT ON refresh_tokens
        BEGIN SELECT RAISE(ABORT, 'injected failure'); END
    """,
    "postgresql": """
        CREATE FUNCTION fail_refresh_token() RETURNS trigger LANGUAGE plpgsql
            AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;
        CREATE TRIGGER fail_refresh_token BEFORE INSERT ON refresh_tokens
            FOR EACH ROW EXECUTE FUNCTION fail_refresh_token();
    """,
}
HEAL_REFRESH_TOKENS = {
    "sqlite": "DROP TRIGGER fail_refresh_token",
    "postgresql": "DROP FUNCTION fail_refresh_token() CASCADE",
}


def store_of(database: str) -> str:
    return "postgresql" if is_postgres(database) else "sqlite"


async def fail_refresh_tokens(database: str) -> None:
    """From now on, storing a refresh token fails: the last write of a sign-up and of a
    rotation, after the user, session or spent mark it must not leave behind."""
    await execute(database, FAIL_REFRESH_TOKENS[store_of(database)])


async def heal_refresh_tokens(database: str) -> None:
    await execute(database, HEAL_REFRESH_TOKENS[store_of(database)])


@pytest.fixture
async def http(client_secret: str) -> AsyncIterator[aiohttp.ClientSession]:
    auth = aiohttp.encode_basic_auth(CLIENT_ID, client_secret)
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as session:
        yield session


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with http.post(url, json=body) as response:
        return response.status, await response.json()


@stores("sqlite-file", "postgresql")
async def test_failed_sign_up_leaves_no_user_and_no_session(
    store_server: IdentityServer, http: aiohttp.ClientSession, database_url: str
) -> None:
    """If storing the refresh token fails, the new user and its session are rolled back."""
    assert (await post(http, store_server.url + "/v1/anonymous-users", {}))[0] == 201
    before = await row_counts(database_url)
    await fail_refresh_tokens(database_url)
    status, answer = await post(http, store_server.url + "/v1/anonymous-users", {})
    assert (status, answer["error"]["code"]) == (500, "internal_error")
    assert await row_counts(database_url) == before
    await heal_refresh_tokens(database_url)
    assert (await post(http, store_server.url + "/v1/anonymous-users", {}))[0] == 201


@stores("sqlite-file", "postgresql")
async def test_failed_rotation_leaves_the_refresh_token_unspent(
    store_server: IdentityServer, http: aiohttp.ClientSession, database_url: str
) -> None:
    """If storing the new refresh token fails after the old one was marked spent, the old one
    is unspent again: presenting it later rotates normally instead of counting as reuse."""
    _, created = await post(http, store_server.url + "/v1/anonymous-users", {})
    grant = {"grant_type": "refresh_token", "refresh_token": created["session"]["refresh_token"]}
    await fail_refresh_tokens(database_url)
    status, _ = await post(http, store_server.url + "/v1/token", grant)
    assert status == 500
    spent = "SELECT count(*) FROM refresh_tokens WHERE used_at IS NOT NULL"
    assert await query_value(database_url, spent) == 0
    await heal_refresh_tokens(database_url)
    status, refreshed = await post(http, store_server.url + "/v1/token", grant)
    assert status == 200
    _, introspected = await post(
        http,
        store_server.url + "/v1/token/introspect",
        {"token": refreshed["session"]["access_token"]},
    )
    assert introspected["active"] is True


@stores("sqlite-file", "postgresql")
async def test_concurrent_sign_ups_each_commit_a_whole_session(
    store_server: IdentityServer, http: aiohttp.ClientSession, database_url: str
) -> None:
    """Many concurrent sign-ups, some failing midway, leave every session with its token."""

    async def sign_up() -> int:
        return (await post(http, store_server.url + "/v1/anonymous-users", {}))[0]

    first = await asyncio.gather(*(sign_up() for _ in range(30)))
    await fail_refresh_tokens(database_url)
    failing = await asyncio.gather(*(sign_up() for _ in range(10)))
    await heal_refresh_tokens(database_url)
    second = await asyncio.gather(*(sign_up() for _ in range(30)))
    assert set(first) == set(second) == {201}
    assert set(failing) == {500}
    orphans = await query_value(
        database_url,
        "SELECT count(*) FROM sessions s WHERE NOT EXISTS"
        " (SELECT 1 FROM refresh_tokens t WHERE t.session_id = s.id)",
    )
    assert orphans == 0
    assert await row_counts(database_url) == {"users": 60, "sessions": 60, "refresh_tokens": 60}
