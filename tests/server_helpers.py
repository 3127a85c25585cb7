"""Helpers for the server tests: a movable clock, a JSON caller over real HTTP, a server on a
thread of its own, and a look at either store's tables from outside the server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import pytest
from multidict import CIMultiDict

from mimi_reactive._server._stores import is_postgres
from mimi_reactive.server import IdentityServer, ServerSettings

from .conftest import CLIENT_ID, fresh_schema_outside_a_loop

_T = TypeVar("_T")


class Clock:
    """A wall clock the test moves by hand (a server's or a core's); it stands still in
    between."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Caller:
    """Posts JSON to one server as one client and returns (status, body, headers)."""

    def __init__(self, http: aiohttp.ClientSession, url: str, client_id: str, secret: str) -> None:
        self.http, self.url = http, url
        self.auth = aiohttp.encode_basic_auth(client_id, secret)

    async def post(self, path: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
        async with self.http.post(
            self.url + path, json={} if body is None else body, headers={"Authorization": self.auth}
        ) as response:
            return response.status, await response.json(), dict(response.headers)

    async def anonymous_user(self) -> dict[str, Any]:
        status, created, _ = await self.post("/v1/anonymous-users")
        assert status == 201, created
        return created  # type: ignore[no-any-return]

    async def sign_up_forwarded_for(self, forwarded_for: str | tuple[str, ...]) -> int:
        """The status of an anonymous sign-up sent as a proxy would, for ``forwarded_for``
        (the X-Forwarded-For header, or its lines in order)."""
        return await self.post_forwarded_for("/v1/anonymous-users", {}, forwarded_for)

    async def post_forwarded_for(
        self, path: str, body: Any, forwarded_for: str | tuple[str, ...]
    ) -> int:
        """The status of ``body`` posted to ``path`` as a proxy would, for ``forwarded_for``
        (the X-Forwarded-For header, or its lines in order)."""
        lines = (forwarded_for,) if isinstance(forwarded_for, str) else forwarded_for
        headers = CIMultiDict([("Authorization", self.auth)])
        headers.extend(("X-Forwarded-For", line) for line in lines)
        async with self.http.post(self.url + path, json=body, headers=headers) as response:
            return response.status

    async def log_in_anonymously(self, anonymous_id: str) -> tuple[int, Any]:
        status, body, _ = await self.post("/v1/sessions/anonymous", {"anonymous_id": anonymous_id})
        return status, body

    async def refresh(self, refresh_token: str) -> tuple[int, Any]:
        status, body, _ = await self.post(
            "/v1/token", {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )
        return status, body


async def eventually(check: Callable[[], Awaitable[bool]], *, every: float = 0.05) -> None:
    """Wait until ``check()`` holds, asked again every ``every`` seconds: for a state of another
    process, which no event announces. Bound it with ``asyncio.timeout``."""
    while not await check():  # noqa: ASYNC110
        await asyncio.sleep(every)


async def query_value(database: str, query: str) -> Any:
    """The first value of ``query``'s first row on the store ``database`` names (a SQLite file
    or a PostgreSQL URL), over a connection of the test's own beside the server's."""
    if is_postgres(database):
        connection = await asyncpg.connect(database)
        try:
            return await connection.fetchval(query)
        finally:
            await connection.close()
    with contextlib.closing(sqlite3.connect(database)) as db:
        return db.execute(query).fetchone()[0]


async def execute(database: str, script: str) -> None:
    """Run ``script`` (one or more statements) on the live store, from outside the server."""
    if is_postgres(database):
        connection = await asyncpg.connect(database)
        try:
            await connection.execute(script)
        finally:
            await connection.close()
        return
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.executescript(script)


async def row_counts(database: str, *tables: str) -> dict[str, int]:
    """How many rows each table has (users, sessions and refresh tokens unless told)."""
    names = tables or ("users", "sessions", "refresh_tokens")
    counts = {}
    for name in names:
        counts[name] = int(await query_value(database, f"SELECT count(*) FROM {name}"))  # noqa: S608
    return counts


async def stored_bytes(database: str) -> bytes:
    """Everything the store holds, as bytes: every file beside a SQLite database (its WAL and
    free pages included), or every row of every table of the PostgreSQL schema, as text."""
    if not is_postgres(database):
        return b"".join(path.read_bytes() for path in Path(database).parent.iterdir())
    connection = await asyncpg.connect(database)
    try:
        tables = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        rows = [
            row[0]
            for table in tables
            for row in await connection.fetch(f"SELECT t::text FROM {table[0]} t")  # noqa: S608
        ]
    finally:
        await connection.close()
    return "\n".join(rows).encode()


async def run_command(
    *args: str, environment: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run ``mimi-reactive ARGS`` in a child process to its end (60 s at most); its exit
    status, stdout and stderr. ``environment`` defaults to this process's, less the client
    secret."""
    if environment is None:
        environment = {k: v for k, v in os.environ.items() if k != "MIMI_CLIENT_SECRET"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mimi_reactive",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


class Served:
    """A `mimi-reactive ... serve` process: its ``url`` once it printed where it listens, and
    its exit status and output once it stopped."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process, self.url = process, ""
        self.returncode: int | None = None
        self.stdout = self.stderr = b""


@contextlib.asynccontextmanager
async def serving(*arguments: str, environment: dict[str, str]) -> AsyncIterator[Served]:
    """Run `mimi-reactive ARGUMENTS` (a `serve` on ``--port 0``: the server binds a port the OS
    picks, so no other process can take it first); wait for the line saying where it
    listens; SIGTERM it after, keeping its exit status and the rest of its output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mimi_reactive",
        *arguments,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    served = Served(process)
    # Read all along: a server logging at debug would block once the pipe's buffer is full.
    stderr = asyncio.ensure_future(process.stderr.read())
    try:
        # A worker pool also migrates the database first: give the first line time.
        line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        listening = re.fullmatch(
            r"serving on (http://127\.0\.0\.1:[1-9][0-9]*)( with [1-9][0-9]* workers)?\n", line
        )
        if listening is None:
            process.kill()
            why = (await asyncio.wait_for(stderr, 30)).decode(errors="replace")
            raise AssertionError(f"serve printed {line!r}, not where it listens:\n{why}")
        served.url = listening[1]
        yield served
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                served.stdout = await process.stdout.read()
                served.stderr = await stderr
                await process.wait()
        finally:
            if process.returncode is None:  # it did not stop on TERM: not left running
                process.kill()
                await process.wait()
            stderr.cancel()
        served.returncode = process.returncode


@contextlib.asynccontextmanager
async def calling(
    client_id: str, client_secret: str, **options: Any
) -> AsyncIterator[tuple[IdentityServer, Caller]]:
    """A reference server for one client (``options`` as ``IdentityServer`` takes them) and a
    caller of it as that client."""
    async with (
        IdentityServer(client_id=client_id, client_secret=client_secret, **options) as server,
        aiohttp.ClientSession() as http,
    ):
        yield server, Caller(http, server.url, client_id, client_secret)


class BackgroundServer:
    """An ``IdentityServer`` on an event loop of its own thread: one server for many tests (a
    module's table, a document's blocks), whatever loop each of them runs on."""

    def __init__(self, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.server = IdentityServer(**options)
        self.run(self.server.start())

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coroutine`` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(60)

    def stop(self) -> None:
        """Stop the server; cancel what it left running, as ``asyncio.run`` would (aiohttp
        goes on 10 s reading the rest of a body it answered unread, from a client gone or
        not: closed with it, the loop would log each such task as destroyed pending); then
        stop its loop and thread."""
        self.run(self.server.stop())
        self.run(_cancel_all_but_this())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


async def _cancel_all_but_this() -> None:
    """Cancel every task of the running loop but the current one, and wait for their end."""
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


NO_LIMITS = ServerSettings(
    max_anonymous_sign_ups_per_hour=0,
    max_credential_sign_ups_per_hour=0,
    max_failed_log_ins_per_minute=0,
)
"""Limits off: a table of hostile requests sends hundreds of failures the limits would count
(they have their own tests), so a case would get 429 for what the cases before it did."""


@contextlib.contextmanager
def table_server(
    store: str, secret: str, postgres_unreachable: str | None
) -> Iterator[IdentityServer]:
    """One reference server, limits off, for a module's whole table of requests (a server for
    each case took most of its time, and each case then also shows the server still serves
    after all before it): on SQLite in memory, or on PostgreSQL in a fresh schema (skipped,
    with the reason, where none is reachable)."""
    with contextlib.ExitStack() as stack:
        database = ":memory:"
        if store == "postgresql":
            if postgres_unreachable is not None:
                pytest.skip(postgres_unreachable)
            database = stack.enter_context(fresh_schema_outside_a_loop())
        running = BackgroundServer(
            client_id=CLIENT_ID, client_secret=secret, database=database, settings=NO_LIMITS
        )
        stack.callback(running.stop)
        yield running.server
