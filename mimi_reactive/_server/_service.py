"""One worker of the reference server: its store, keys, limiter and app, opened and closed
together, whether it runs in-process (``IdentityServer``) or as one of ``--workers N``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import attrs
import structlog
from aiohttp import web

from ._app import create_app
from ._context import RegisteredClient, ServerSettings
from ._limits import RateLimiter, limiter_storage
from ._records import IdentityDatabase
from ._secrets import PasswordHasher
from ._stores import open_database
from ._sweeper import run_sweeper
from ._tokens import AccessTokens

__all__ = ["KEY_RELOAD_INTERVAL", "Service", "open_service"]

KEY_RELOAD_INTERVAL = 60.0
"""Seconds between a worker's reads of the signing keys (well inside the 300 s a retired key
stays published), so a key added to the database signs everywhere within a minute."""


@attrs.define
class Service:
    """A worker's app and what it holds open; ``close`` releases it all, once."""

    app: web.Application
    database: IdentityDatabase
    tokens: AccessTokens
    passwords: PasswordHasher
    limiter: RateLimiter
    closed: bool = False

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                await asyncio.to_thread(self.passwords.close)
                await self.limiter.close()  # a Redis storage's connections, say
            finally:
                await self.database.close()


async def open_service(
    *,
    clients: Mapping[str, RegisteredClient],
    database: str | Path,
    settings: ServerSettings,
    logger: structlog.typing.FilteringBoundLogger,
) -> Service:
    """Open the store (migrating it), load the keys and build the app; ``ValueError`` for a
    bad rate-limit storage URL, ``DatabaseOpenError`` for a store that cannot be opened."""
    limiter = RateLimiter(limiter_storage(settings.rate_limit_storage), settings.clock)
    try:
        opened = await open_database(database, pool_size=settings.database_pool_size)
        try:
            ttl, now = settings.access_token_ttl, settings.clock()
            tokens = await AccessTokens.load(opened, ttl=ttl, now=now)
        except BaseException:
            await opened.close()
            raise
    except BaseException:
        await limiter.close()
        raise
    passwords = PasswordHasher(
        workers=settings.password_hash_workers, queue=settings.password_hash_queue
    )
    app = create_app(
        database=opened,
        clients=clients,
        settings=settings,
        logger=logger,
        passwords=passwords,
        limiter=limiter,
        tokens=tokens,
    )
    service = Service(app, opened, tokens, passwords, limiter)

    async def background(app: web.Application) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(_reload_keys(tokens, opened))]
        if settings.sweep_interval > 0:
            tasks.append(asyncio.create_task(run_sweeper(opened, settings, logger)))
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(app: web.Application) -> None:
        await service.close()

    app.cleanup_ctx.append(background)
    app.on_cleanup.append(close)
    return service


async def _reload_keys(tokens: AccessTokens, database: IdentityDatabase) -> None:
    """Take up keys stored by others every ``KEY_RELOAD_INTERVAL`` until cancelled."""
    while True:
        await asyncio.sleep(KEY_RELOAD_INTERVAL)
        with contextlib.suppress(Exception):  # a failed read keeps the keys it has
            await tokens.reload(database)
