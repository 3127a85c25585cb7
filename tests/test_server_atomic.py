"""Each database operation is one transaction: a failure at its second statement leaves it
wholly undone, and concurrent requests never commit each other's half-done work."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mimi_reactive.server import IdentityServer

from .conftest import CLIENT_ID

FAIL_NEXT_REFRESH_TOKEN = """
CREATE TRIGGER fail_refresh_token BEFORE INSERT ON refresh_tokens
BEGIN SELECT RAISE(ABORT, 'injected failure'); END
"""


def database_counts(path: Path) -> dict[str, int]:
    """Rows per table, read through a separate connection."""
    with sqlite3.connect(path) as db:
        return {
            table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in ("users", "sessions", "refresh_tokens")
        }


def execute(path: Path, statement: str) -> None:
    """Run one statement on the live database from outside the server."""
    with sqlite3.connect(path) as db:
        db.execute(statement)


@pytest.fixture
async def file_server(tmp_path: Path, client_secret: str) -> AsyncIterator[IdentityServer]:
    async with IdentityServer(
        client_id=CLIENT_ID, client_secret=client_secret, database=tmp_path / "ids.sqlite3"
    ) as running:
        yield running


@pytest.fixture
async def http(client_secret: str) -> AsyncIterator[aiohttp.ClientSession]:
    auth = aiohttp.encode_basic_auth(CLIENT_ID, client_secret)
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as session:
        yield session


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with http.post(url, json=body) as response:
        return response.status, await response.json()


async def test_failed_sign_up_leaves_no_user_and_no_session(
    file_server: IdentityServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """If storing the refresh token fails, the new user and its session are rolled back."""
    path = tmp_path / "ids.sqlite3"
    assert (await post(http, file_server.url + "/v1/anonymous-users", {}))[0] == 201
    before = database_counts(path)
    execute(path, FAIL_NEXT_REFRESH_TOKEN)
    status, answer = await post(http, file_server.url + "/v1/anonymous-users", {})
    assert (status, answer["error"]["code"]) == (500, "internal_error")
    assert database_counts(path) == before
    execute(path, "DROP TRIGGER fail_refresh_token")
    assert (await post(http, file_server.url + "/v1/anonymous-users", {}))[0] == 201


async def test_failed_rotation_leaves_the_refresh_token_unspent(
    file_server: IdentityServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """If storing the new refresh token fails after the old one was marked spent, the old one
    is unspent again: presenting it later rotates normally instead of counting as reuse."""
    path = tmp_path / "ids.sqlite3"
    _, created = await post(http, file_server.url + "/v1/anonymous-users", {})
    grant = {"grant_type": "refresh_token", "refresh_token": created["session"]["refresh_token"]}
    execute(path, FAIL_NEXT_REFRESH_TOKEN)
    status, _ = await post(http, file_server.url + "/v1/token", grant)
    assert status == 500
    with sqlite3.connect(path) as db:
        spent = db.execute("SELECT count(*) FROM refresh_tokens WHERE used_at IS NOT NULL")
        assert spent.fetchone()[0] == 0
    execute(path, "DROP TRIGGER fail_refresh_token")
    status, refreshed = await post(http, file_server.url + "/v1/token", grant)
    assert status == 200
    _, introspected = await post(
        http,
        file_server.url + "/v1/token/introspect",
        {"token": refreshed["session"]["access_token"]},
    )
    assert introspected["active"] is True


async def test_concurrent_sign_ups_each_commit_a_whole_session(
    file_server: IdentityServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Many concurrent sign-ups, some failing midway, leave every session with its token."""
    path = tmp_path / "ids.sqlite3"

    async def sign_up() -> int:
        return (await post(http, file_server.url + "/v1/anonymous-users", {}))[0]

    first = await asyncio.gather(*(sign_up() for _ in range(30)))
    execute(path, FAIL_NEXT_REFRESH_TOKEN)
    failing = await asyncio.gather(*(sign_up() for _ in range(10)))
    execute(path, "DROP TRIGGER fail_refresh_token")
    second = await asyncio.gather(*(sign_up() for _ in range(30)))
    assert set(first) == set(second) == {201}
    assert set(failing) == {500}
    with sqlite3.connect(path) as db:
        orphans = db.execute(
            "SELECT count(*) FROM sessions s WHERE NOT EXISTS"
            " (SELECT 1 FROM refresh_tokens t WHERE t.session_id = s.id)"
        ).fetchone()[0]
    assert orphans == 0
    assert database_counts(path) == {"users": 60, "sessions": 60, "refresh_tokens": 60}
