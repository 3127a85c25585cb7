"""Fixtures: the reference server on loopback (one that can stop and return too), cores
connected to it, and a core on a scripted backend for tests that need no server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from hypothesis import HealthCheck, settings

from mimi_reactive import MimiConfiguration, MimiCore, RetryPolicy, SessionStorage, _keeper
from mimi_reactive._server._database import IdentityDatabase
from mimi_reactive._server._stores import open_database
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer, ServerSettings
from mimi_reactive.testing import ScriptedBackend

from .helpers import CountingBackend

# Property tests judge behaviour, not speed: on a loaded machine a stalled example (a slow
# turn of a shared core, a full garbage collection) must not fail a run as too slow.
settings.register_profile(
    "mimi_reactive", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("mimi_reactive")

CLIENT_ID = "test-app"
ANONYMOUS_ONLY = MimiConfiguration(allow_anonymous_user_only=True)

StartCore = Callable[..., Awaitable[MimiCore]]


@pytest.fixture
def often(monkeypatch: pytest.MonkeyPatch) -> None:
    """The keeper looks at the wall clock every few milliseconds instead of every minute."""
    monkeypatch.setattr(_keeper, "_LONGEST_SLEEP", 0.005)


@pytest.fixture
def client_secret() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture
async def server(client_secret: str) -> AsyncIterator[IdentityServer]:
    async with IdentityServer(client_id=CLIENT_ID, client_secret=client_secret) as running:
        yield running


POSTGRES_URL = os.environ.get("MIMI_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_unreachable() -> str | None:
    """Why the test PostgreSQL cannot be used, or None when it answers."""

    async def probe() -> None:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=5)
        await connection.close()

    try:
        asyncio.run(probe())
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        name = type(error).__name__
        return f"no PostgreSQL at {POSTGRES_URL} ({name}); set MIMI_TEST_POSTGRES_URL to one"
    return None


@contextlib.asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    """A URL of the test PostgreSQL whose search_path is a new schema, dropped on exit."""
    schema = f"mimi_test_{secrets.token_hex(6)}"
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        await connection.execute(f"CREATE SCHEMA {schema}")
        yield f"{POSTGRES_URL}?search_path={schema}"
    finally:
        await connection.execute(f"DROP SCHEMA {schema} CASCADE")
        await connection.close()


@contextlib.contextmanager
def fresh_schema_outside_a_loop() -> Iterator[str]:
    """``fresh_schema`` for a synchronous fixture (one wider than a test's loop)."""
    entered = fresh_schema()
    runner = asyncio.Runner()
    try:
        yield runner.run(entered.__aenter__())
    finally:
        runner.run(entered.__aexit__(None, None, None))
        runner.close()


@pytest.fixture
async def postgres_url(postgres_unreachable: str | None) -> AsyncIterator[str]:
    """The test PostgreSQL with a fresh schema of this test's own, dropped afterwards."""
    if postgres_unreachable is not None:
        pytest.skip(postgres_unreachable)
    async with fresh_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(
    request: pytest.FixtureRequest, postgres_unreachable: str | None
) -> AsyncIterator[str]:
    """Each store in turn: SQLite in memory, then a PostgreSQL schema of this test's own.

    ``@stores(...)`` picks other params: ``sqlite-file`` is SQLite in a file of the test's
    ``tmp_path`` (for tests that look at the tables from outside the server).
    """
    if request.param == "sqlite":
        yield ":memory:"
        return
    if request.param == "sqlite-file":
        tmp_path: Path = request.getfixturevalue("tmp_path")
        yield str(tmp_path / "ids.sqlite3")
        return
    if postgres_unreachable is not None:
        pytest.skip(postgres_unreachable)
    async with fresh_schema() as url:
        yield url


REDIS = ("127.0.0.1", 6379)


@pytest.fixture
def redis_url() -> str:
    """A Redis URL whose counters are this test's own (a fresh key prefix); skips without one."""
    try:
        socket.create_connection(REDIS, timeout=2).close()
    except OSError as error:
        pytest.skip(f"no Redis at {REDIS[0]}:{REDIS[1]} ({type(error).__name__})")
    return f"redis://{REDIS[0]}:{REDIS[1]}/0?key_prefix=mimi-test-{secrets.token_hex(6)}"


STORES = ("sqlite", "sqlite-file", "postgresql")


def stores(*params: str) -> pytest.MarkDecorator:
    """Run a test that uses ``database_url`` on these of ``STORES`` only."""
    unknown = set(params) - set(STORES)
    if unknown:
        raise ValueError(f"no such store: {', '.join(sorted(unknown))}")
    return pytest.mark.parametrize("database_url", params, indirect=True)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[IdentityDatabase]:
    """The server's database on each store in turn, opened (and migrated) on its own."""
    opened = await open_database(database_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def store_server(client_secret: str, database_url: str) -> AsyncIterator[IdentityServer]:
    """The reference server on each store in turn."""
    async with IdentityServer(
        client_id=CLIENT_ID, client_secret=client_secret, database=database_url
    ) as running:
        yield running


@pytest.fixture
async def start_core(server: IdentityServer, client_secret: str) -> AsyncIterator[StartCore]:
    """Start cores against the test server (anonymous-only unless told); closes them after."""
    cores: list[MimiCore] = []

    async def start(
        configuration: MimiConfiguration = ANONYMOUS_ONLY, backend: object = None
    ) -> MimiCore:
        core = await MimiCore.start(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            configuration=configuration,
            backend=backend or HttpBackend(server.url),  # type: ignore[arg-type]
        )
        cores.append(core)
        return core

    yield start
    for core in cores:
        await core.close()


@pytest.fixture
async def counting_core(
    start_core: StartCore, server: IdentityServer
) -> tuple[MimiCore, CountingBackend]:
    """An anonymous-only core whose backend counts the calls it makes to the server."""
    backend = CountingBackend(HttpBackend(server.url))
    return await start_core(ANONYMOUS_ONLY, backend), backend


@pytest.fixture
async def backend() -> ScriptedBackend:
    """A scripted in-memory backend, for tests that need no server."""
    return ScriptedBackend()


@pytest.fixture
async def core(backend: ScriptedBackend) -> AsyncIterator[MimiCore]:
    """An anonymous-only core on ``backend``, closed after the test."""
    async with MimiCore.start(
        client_id="app", client_secret="secret", backend=backend, configuration=ANONYMOUS_ONLY
    ) as started:
        yield started


# The cores of a Service retry fast: tests wait for recoveries, not for the default backoff.
FAST_RETRY = RetryPolicy(initial_delay=0.05, max_delay=0.2, max_attempts=100)


class Service:
    """The reference server on a fixed port and database file, so it can stop and return."""

    def __init__(self, tmp_path: Path, client_secret: str, settings: ServerSettings) -> None:
        self.database = tmp_path / "identity.sqlite3"
        self.client_secret = client_secret
        self.settings = settings
        self.port = 0
        self.server: IdentityServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = IdentityServer(
            client_id=CLIENT_ID,
            client_secret=self.client_secret,
            database=self.database,
            port=self.port,
            settings=self.settings,
        )
        await self.server.start()
        self.port = int(self.server.url.rsplit(":", 1)[1])

    async def stop(self) -> None:
        assert self.server is not None
        await self.server.stop()

    def core(
        self,
        storage: SessionStorage | None = None,
        backend: Any = None,
        clock: Any = time.time,
        **configuration: Any,
    ) -> Any:
        return MimiCore.start(
            client_id=CLIENT_ID,
            client_secret=self.client_secret,
            # 10 s: a password log-in (Argon2) on a loaded 2-core CI machine took more than 2.
            backend=backend or HttpBackend(self.url, timeout=10),
            configuration=MimiConfiguration(
                **{"allow_anonymous_user_only": True, "retry": FAST_RETRY, **configuration}
            ),
            storage=storage,
            clock=clock,
        )

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        auth = aiohttp.encode_basic_auth(CLIENT_ID, self.client_secret)
        async with (
            aiohttp.ClientSession(headers={"Authorization": auth}) as http,
            http.post(self.url + path, json=body) as response,
        ):
            return response.status, await response.json()


async def make_service(
    tmp_path: Path, client_secret: str, **settings: Any
) -> AsyncIterator[Service]:
    """A started ``Service`` with these ``ServerSettings``, stopped after (iterate it once)."""
    service = Service(tmp_path, client_secret, ServerSettings(**settings))
    await service.start()
    yield service
    if service.server is not None:
        await service.server.stop()


@pytest.fixture
async def service(tmp_path: Path, client_secret: str) -> AsyncIterator[Service]:
    """A ``Service`` with the default settings."""
    async for running in make_service(tmp_path, client_secret):
        yield running


@pytest.fixture
async def short_lived(tmp_path: Path, client_secret: str) -> AsyncIterator[Service]:
    """Access tokens live two seconds."""
    async for running in make_service(tmp_path, client_secret, access_token_ttl=2.0):
        yield running
