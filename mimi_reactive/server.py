"""The reference identity service: run it in-process or with ``mimi-reactive serve``.

::

    async with IdentityServer(client_id="app", client_secret=secret) as server:
        backend = HttpBackend(server.url)
"""

from __future__ import annotations

import os
import socket
import sqlite3
from pathlib import Path
from types import TracebackType

import structlog
from aiohttp import web

from ._server._app import ServerSettings, create_app
from ._server._database import SqliteIdentityDatabase
from ._server._logs import http_logger
from ._server._secrets import digest

__all__ = ["IdentityServer", "ServerSettings", "ServerStartError"]


class ServerStartError(Exception):
    """The server could not start: one line that names the problem (never a secret)."""


class IdentityServer:
    """The reference server on a loopback (or given) address, backed by SQLite.

    ``port=0`` picks a free port; ``url`` tells which once started. ``database`` is a file
    path (created if missing, 0600) or ``":memory:"``.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        database: str | Path = ":memory:",
        host: str = "127.0.0.1",
        port: int = 0,
        settings: ServerSettings | None = None,
        logger: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self._clients = {client_id: digest(client_secret)}
        self._database_path = database
        self._host = host
        self._port = port
        self._settings = settings or ServerSettings()
        self._log = logger or structlog.get_logger("mimi_reactive.server")
        self._runner: web.AppRunner | None = None
        self._database: SqliteIdentityDatabase | None = None
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
        try:
            self._database = await SqliteIdentityDatabase.open(self._database_path)
        except (OSError, sqlite3.Error) as error:
            raise ServerStartError(
                f"cannot open the database {str(self._database_path)!r}: {_reason(error)}"
            ) from None
        app = create_app(
            database=self._database,
            clients=self._clients,
            settings=self._settings,
            logger=self._log,
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
        self._log.info("server.started", url=self._url)

    async def stop(self) -> None:
        """Stop listening and close the database. Idempotent."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
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
