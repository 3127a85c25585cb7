"""Fixtures: the reference server on loopback, and cores connected to it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from mimi_reactive import MimiConfiguration, MimiCore
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer

from .helpers import CountingBackend

CLIENT_ID = "test-app"
ANONYMOUS_ONLY = MimiConfiguration(allow_anonymous_user_only=True)

StartCore = Callable[..., Awaitable[MimiCore]]


@pytest.fixture
def client_secret() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture
async def server(client_secret: str) -> AsyncIterator[IdentityServer]:
    async with IdentityServer(client_id=CLIENT_ID, client_secret=client_secret) as running:
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
