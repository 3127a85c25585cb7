"""``GET /ready``: the readiness probe that touches the store. It answers 200 while the database
answers and is the one the server opened; 503 ``temporarily_unavailable`` with Retry-After
once a SQLite file is removed or replaced or a PostgreSQL database is dropped, while
``GET /health`` (liveness) stays 200. Real stores only."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from mimi_reactive._server._readiness import READY_CACHE
from mimi_reactive.server import IdentityServer, ServerSettings

from .conftest import CLIENT_ID, POSTGRES_URL, stores
from .server_helpers import Caller, Clock, calling
from .test_server_logs import capturing_logger, logged


async def probe(url: str, path: str = "/ready") -> tuple[int, dict[str, object], str | None]:
    """GET ``path`` without client credentials: (status, JSON body, Retry-After)."""
    async with aiohttp.ClientSession() as plain, plain.get(url + path) as response:
        return response.status, await response.json(), response.headers.get("Retry-After")


NOT_READY = (
    503,
    {
        "error": {
            "code": "temporarily_unavailable",
            "message": (
                "the server cannot reach its database or its rate-limit counters now; try again"
            ),
        }
    },
    "5",
)


async def assert_unavailable(url: str, call: Caller) -> None:
    """The server at ``url`` answers GET /ready and a sign-up (by ``call``) 503
    temporarily_unavailable with Retry-After: 5, and GET /health (liveness) still 200."""
    assert await probe(url) == NOT_READY
    status, body, headers = await call.post("/v1/anonymous-users")
    assert (status, body["error"]["code"], headers["Retry-After"]) == (
        503,
        "temporarily_unavailable",
        "5",
    )
    assert (await probe(url, "/health"))[0] == 200


@stores("sqlite", "sqlite-file", "postgresql")
async def test_a_server_whose_store_answers_is_ready(store_server: IdentityServer) -> None:
    """GET /ready answers 200 {"status": "ready"} without client credentials on each store,
    and HEAD /ready 200 too."""
    assert await probe(store_server.url) == (200, {"status": "ready"}, None)
    async with aiohttp.ClientSession() as plain, plain.head(store_server.url + "/ready") as head:
        assert head.status == 200


def remove_directory(path: Path) -> None:
    """``rm -rf`` of the database's directory."""
    shutil.rmtree(path.parent)


def replace_file(path: Path) -> None:
    """Another file put at the database's path (a restore copied over it, say)."""
    path.rename(path.with_name("moved-away.sqlite3"))
    path.write_bytes(b"")


def replace_with_a_copy(path: Path) -> None:
    """A byte-for-byte copy of the database put at its path: same content, another file."""
    copy = path.with_name("copy.sqlite3")
    shutil.copyfile(path, copy)
    os.replace(copy, path)


@pytest.mark.parametrize(
    "change",
    [remove_directory, replace_file, replace_with_a_copy],
    ids=["directory-removed", "file-replaced", "replaced-by-a-copy"],
)
async def test_a_sqlite_file_removed_or_replaced_is_not_ready(
    tmp_path: Path, client_secret: str, change: object
) -> None:
    """Once the SQLite file's directory is removed, or another file is put at its path, GET
    /ready answers 503 temporarily_unavailable with Retry-After: 5, logged as a warning naming
    DatabaseReplacedError, and so does a sign-up, which no restart would find; GET /health
    still answers 200 (liveness)."""
    assert callable(change)
    path = tmp_path / "data" / "ids.sqlite3"
    path.parent.mkdir()
    captured, logger = capturing_logger()
    clock = Clock()
    settings = ServerSettings(clock=clock)
    async with calling(
        CLIENT_ID, client_secret, database=path, settings=settings, logger=logger
    ) as (server, call):
        await call.anonymous_user()
        assert (await probe(server.url))[0] == 200
        change(path)
        clock.now += READY_CACHE  # past the answer each process keeps
        await assert_unavailable(server.url, call)
        entry = await logged(captured, "database.not_ready")
        assert (entry["log_level"], entry["error"]) == ("warning", "DatabaseReplacedError")


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[tuple[str, str]]:
    """A new PostgreSQL database of this test's own (one the test may drop): its URL and name."""
    name = f"mimi_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield urllib.parse.urlsplit(POSTGRES_URL)._replace(path=f"/{name}").geturl(), name
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def test_a_dropped_postgresql_database_is_not_ready_and_calls_answer_503(
    postgres_unreachable: str | None, client_secret: str
) -> None:
    """With its PostgreSQL database dropped under it, the server's GET /ready and a sign-up
    both answer 503 temporarily_unavailable with Retry-After (a warning, not an
    http.internal_error), while GET /health stays 200."""
    if postgres_unreachable is not None:
        pytest.skip(postgres_unreachable)
    captured, logger = capturing_logger()
    clock = Clock()
    settings = ServerSettings(clock=clock)
    async with (
        fresh_database() as (url, name),
        calling(CLIENT_ID, client_secret, database=url, settings=settings, logger=logger) as (
            server,
            call,
        ),
    ):
        await call.anonymous_user()
        assert (await probe(server.url))[0] == 200
        admin = await asyncpg.connect(POSTGRES_URL)
        try:
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        finally:
            await admin.close()
        clock.now += READY_CACHE  # past the answer each process keeps
        await assert_unavailable(server.url, call)
        entry = await logged(captured, "database.unavailable")
        assert (entry["log_level"], entry["route"]) == ("warning", "/v1/anonymous-users")
        assert not [e for e in captured.entries if e["event"] == "http.internal_error"]


async def test_a_read_only_postgresql_is_not_ready_and_its_writes_answer_503(
    postgres_url: str, client_secret: str
) -> None:
    """Served by sessions that may not write (a standby its URL reaches after a failover,
    default_transaction_read_only set), the server's GET /ready and a sign-up both answer 503
    temporarily_unavailable with Retry-After, each logged at warning with the error's type (not
    an http.internal_error), while GET /health stays 200."""
    async with calling(CLIENT_ID, client_secret, database=postgres_url) as (_, call):
        await call.anonymous_user()  # the schema and its signing key, written while it could
    captured, logger = capturing_logger()
    read_only = postgres_url + "&default_transaction_read_only=on"
    async with calling(CLIENT_ID, client_secret, database=read_only, logger=logger) as (
        server,
        call,
    ):
        await assert_unavailable(server.url, call)
    not_ready = await logged(captured, "database.not_ready")
    unavailable = await logged(captured, "database.unavailable")
    assert not_ready["error"] == unavailable["error"] == "ReadOnlySQLTransactionError"
    assert (not_ready["log_level"], unavailable["log_level"]) == ("warning", "warning")
    assert not [e for e in captured.entries if e["event"] == "http.internal_error"]
