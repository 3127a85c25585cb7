"""One worker of the reference server: its database, keys, limiter and app, opened and closed
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
from ._database import IdentityDatabase
from ._limits import RateLimiter
from ._secrets import PasswordHasher
from ._stores import open_database, open_prepared
from ._sweeper import run_sweeper
from ._tokens import AccessTokens

__all__ = ["Service", "open_service"]


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
    prepared: bool = False,
) -> Service:
    """Open the database (migrating it), load the keys and build the app; ``ValueError`` for a
    rate-limit storage with a bad URL or that does not answer, ``DatabaseOpenError`` for a
    database that cannot be opened.

    ``prepared``: the database was migrated and the rate-limit storage checked already
    (``prepare_workers``, in the master): nothing is touched here, so a worker restarted
    during an outage starts and answers 503 until they answer, rather than failing to boot
    (which stops gunicorn); the keys are read at the first request that needs them."""
    limiter = RateLimiter.from_url(
        settings.rate_limit_storage, settings.clock, timeout=settings.storage_timeout
    )
    ttl = settings.access_token_ttl
    try:
        if prepared:
            opened = await open_prepared(
                database,
                pool_size=settings.database_pool_size,
                storage_timeout=settings.storage_timeout,
            )
            tokens = AccessTokens((), ttl=ttl, clock=settings.clock)
        else:
            await limiter.check()  # else every limited call would fail, after "serving on"
            opened = await open_database(
                database,
                pool_size=settings.database_pool_size,
                storage_timeout=settings.storage_timeout,
            )
            try:
                tokens = await AccessTokens.load(opened, ttl=ttl, clock=settings.clock)
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
        tasks = [asyncio.create_task(_reload_keys(tokens, opened, settings, logger))]
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


async def _reload_keys(
    tokens: AccessTokens,
    database: IdentityDatabase,
    settings: ServerSettings,
    log: structlog.typing.FilteringBoundLogger,
) -> None:
    """Take up keys stored by others (``rotate-signing-key``) every ``key_reload_interval``
    seconds until cancelled; a failed read keeps the keys it has and is logged."""
    while True:
        await asyncio.sleep(settings.key_reload_interval)
        try:
            kid = await tokens.reload(database)
        except Exception as error:
            log.warning("signing_key.reload_failed", error=type(error).__name__)
            continue
        if kid is not None:
            log.info("signing_key.taken_up", kid=kid)
