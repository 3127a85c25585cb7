"""The reference identity service: run it in-process or with ``mimi-reactive serve``.

```python
async with IdentityServer(client_id="app", client_secret=secret) as server:
    backend = HttpBackend(server.url)
```

Several apps: ``IdentityServer(clients=[ClientConfig("app", secret, anonymous_only=True)])``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import structlog
from aiohttp import web

from ._server._app import create_app
from ._server._config import ClientConfig, ConfigError
from ._server._context import RegisteredClient, ServerSettings
from ._server._database import SqliteIdentityDatabase
from ._server._limits import RateLimiter, limiter_storage
from ._server._logs import http_logger
from ._server._records import SweepCounts
from ._server._schema import SchemaTooNewError
from ._server._secrets import PasswordHasher, digest
from ._server._sweeper import run_sweeper, sweep_once
from ._server._tokens import AccessTokens

__all__ = ["ClientConfig", "IdentityServer", "ServerSettings", "ServerStartError", "SweepCounts"]


class ServerStartError(Exception):
    """The server could not start: one line that names the problem (never a secret)."""


class IdentityServer:
    """The reference server on a loopback (or given) address, backed by SQLite.

    ``port=0`` picks a free port; ``url`` tells which once started. ``database`` is a file
    path (created if missing, 0600) or ``":memory:"``. One client by ``client_id`` and
    ``client_secret`` (``anonymous_only`` restricts it), or several by ``clients``. A secret
    under 128 bits of entropy is refused at start (``ServerStartError``).
    """

    def __init__(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        anonymous_only: bool = False,
        clients: Sequence[ClientConfig] = (),
        database: str | Path = ":memory:",
        host: str = "127.0.0.1",
        port: int = 0,
        settings: ServerSettings | None = None,
        logger: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        configs = list(clients)
        if client_id is not None or client_secret is not None:
            configs.append(ClientConfig(client_id or "", client_secret or "", anonymous_only))
        self._client_configs = configs
        self._database_path = database
        self._host = host
        self._port = port
        self._settings = settings or ServerSettings()
        self._log = logger or structlog.get_logger("mimi_reactive.server")
        self._runner: web.AppRunner | None = None
        self._database: SqliteIdentityDatabase | None = None
        self._passwords: PasswordHasher | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._url: str | None = None

    def __repr__(self) -> str:
        return f"IdentityServer(url={self._url!r})"

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:49152``."""
        if self._url is None:
            raise RuntimeError("the server is not started")
        return self._url

    async def start(self) -> None:
        """Open the database and listen; ``ServerStartError`` (and nothing left open) if not."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        clients = self._registered_clients()
        settings = self._settings
        try:
            storage = limiter_storage(settings.rate_limit_storage)
        except ValueError as error:
            raise ServerStartError(str(error)) from None
        try:
            self._database = await SqliteIdentityDatabase.open(self._database_path)
        except (OSError, sqlite3.Error, SchemaTooNewError) as error:
            raise ServerStartError(
                f"cannot open the database {str(self._database_path)!r}: {_reason(error)}"
            ) from None
        tokens = await AccessTokens.load(
            self._database, ttl=settings.access_token_ttl, now=settings.clock()
        )
        self._passwords = PasswordHasher(
            workers=settings.password_hash_workers, queue=settings.password_hash_queue
        )
        app = create_app(
            database=self._database,
            clients=clients,
            settings=settings,
            logger=self._log,
            passwords=self._passwords,
            limiter=RateLimiter(storage, settings.clock),
            tokens=tokens,
        )
        # aiohttp's own request-error logs go through a logger that drops their details
        # (they can quote a raw header line, credentials included).
        self._runner = web.AppRunner(app, access_log=None, logger=http_logger())
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except (OSError, OverflowError) as error:
            raise ServerStartError(
                f"cannot listen on {self._host}:{self._port}: {_reason(error)}"
            ) from None
        host, port = self._runner.addresses[0][:2]
        self._url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
        tokens.issuer = settings.issuer or self._url
        if settings.sweep_interval > 0:
            self._sweeper = asyncio.create_task(run_sweeper(self._database, settings, self._log))
        self._log.info("server.started", url=self._url)

    def _registered_clients(self) -> dict[str, RegisteredClient]:
        if not self._client_configs:
            raise ServerStartError("no client: give client_id and client_secret, or clients")
        registered: dict[str, RegisteredClient] = {}
        for config in self._client_configs:
            try:
                config.check()
            except ConfigError as error:
                raise ServerStartError(str(error)) from None
            if config.id in registered:
                raise ServerStartError(f"client {config.id!r} is given twice")
            registered[config.id] = RegisteredClient(
                config.id, digest(config.secret), config.anonymous_only
            )
        return registered

    async def sweep(self) -> SweepCounts:
        """Run one retention sweep now (the sweeper does it every ``sweep_interval``)."""
        if self._database is None:
            raise RuntimeError("the server is not started")
        return await sweep_once(self._database, self._settings, self._log)

    @staticmethod
    async def sweep_database(
        database: str | Path,
        settings: ServerSettings,
        logger: structlog.typing.FilteringBoundLogger | None = None,
    ) -> SweepCounts:
        """One retention sweep of a database file, without a server (``mimi-reactive sweep``)."""
        try:
            opened = await SqliteIdentityDatabase.open(database)
        except (OSError, sqlite3.Error, SchemaTooNewError) as error:
            raise ServerStartError(
                f"cannot open the database {str(database)!r}: {_reason(error)}"
            ) from None
        try:
            return await sweep_once(
                opened, settings, logger or structlog.get_logger("mimi_reactive.server")
            )
        finally:
            await opened.close()

    async def stop(self) -> None:
        """Stop listening and sweeping, and close the database. Idempotent."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._passwords is not None:
            await asyncio.to_thread(self._passwords.close)
            self._passwords = None
        if self._database is not None:
            await self._database.close()
            self._database = None

    async def __aenter__(self) -> IdentityServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


def _reason(error: BaseException) -> str:
    """The OS's or SQLite's own words for a failure, without a traceback."""
    if isinstance(error, socket.gaierror) and error.strerror:
        return error.strerror.lower()
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno).lower()
    return str(error) or type(error).__name__
