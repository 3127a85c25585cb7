"""The reference identity service's life: ``IdentityServer`` (start, sweep, stop), the
commands that work on its database without serving (sweep, migrate, rotate-signing-key), and
``ServerStartError`` for what keeps either from opening.

Published by ``mimi_reactive.server``; ``serve --workers`` uses ``registered_clients`` and
``start_error`` too, so that its workers keep clients, and refuse what ``IdentityServer``
refuses, in its words.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType

import structlog
from aiohttp import web

from .._exceptions import ConfigurationError, MimiCoreError
from ._app import listen, served_url, token_issuer
from ._config import ClientConfig, check_clients
from ._context import RegisteredClient
from ._database import IdentityDatabase
from ._database_url import check_url
from ._logs import server_logger
from ._records import SweepCounts
from ._runner import app_runner
from ._secrets import digest
from ._service import Service, open_service
from ._settings import ServerSettings
from ._stores import (
    DatabaseNameError,
    DatabaseOpenError,
    migrate_database,
    open_database,
)
from ._sweeper import sweep_once, sweep_rules
from ._tokens import PUBLISH_LEAD, new_signing_key

__all__ = ["IdentityServer", "ServerStartError", "registered_clients", "start_error"]


class ServerStartError(MimiCoreError):
    """The server could not start, or a command on its database without a server
    (``sweep_database``, ``migrate_database``, ``rotate_signing_key``) could not open it: one
    line that names the problem (never a secret).

    ``refused`` says an argument was refused before anything was opened (a missing file where
    nothing may be created): the command line exits 2 for those, as for any bad argument, else
    1. What ``IdentityServer`` can check as it is made (no client, a bad client id, a
    guessable secret, a URL of a database other than PostgreSQL) raises ``ConfigurationError``
    there instead."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class IdentityServer:
    """The reference server on a loopback (or given) address, backed by SQLite or PostgreSQL.

    ``port=0`` picks a free port; ``url`` tells which once started. ``database`` is a SQLite
    file path (created if missing, 0600), ``":memory:"``, or a ``postgresql://`` URL (its
    schema is created or migrated at start; ``?search_path=NAME`` picks a schema). One client
    by ``client_id`` and ``client_secret`` (``anonymous_only`` restricts it;
    ``previous_client_secret`` is accepted beside the secret during a roll-over), or several by
    ``clients``. No client, a client id that is blank or holds ``:``, a secret under 128 bits
    of entropy, or a ``database`` URL of another kind of database raise ``ConfigurationError``
    here, as the server is made; ``start`` raises ``ServerStartError`` for what only opening
    or listening finds.
    """

    def __init__(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        anonymous_only: bool = False,
        previous_client_secret: str | None = None,
        clients: Sequence[ClientConfig] = (),
        database: str | Path = ":memory:",
        host: str = "127.0.0.1",
        port: int = 0,
        settings: ServerSettings | None = None,
        logger: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        configs = list(clients)
        if client_id is not None or client_secret is not None:
            configs.append(
                ClientConfig(
                    client_id or "",
                    client_secret or "",
                    anonymous_only,
                    previous_secret=previous_client_secret,
                )
            )
        elif previous_client_secret is not None:
            raise ConfigurationError(
                "previous_client_secret applies to client_id's client: give client_id and"
                " client_secret (or previous_secret in a ClientConfig of clients)"
            )
        check_clients(configs)
        check_url(database)
        self._client_configs = configs
        self._database_path = database
        self._host = host
        self._port = port
        self._settings = settings or ServerSettings()
        self._log = logger or server_logger()
        self._runner: web.AppRunner | None = None
        self._service: Service | None = None
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
        clients = registered_clients(self._client_configs)
        try:
            service = await open_service(
                clients=clients,
                database=self._database_path,
                settings=self._settings,
                logger=self._log,
            )
        except (ValueError, DatabaseOpenError) as error:
            raise start_error(error) from None
        self._service = service
        self._runner = app_runner(service.app)
        await self._runner.setup()
        try:
            # The one way a server listens (serve --workers hands gunicorn the same socket);
            # off the loop, as the resolver blocks.
            listener = await asyncio.to_thread(listen, self._host, self._port)
        except ValueError as error:
            raise ServerStartError(str(error)) from None
        try:
            await web.SockSite(self._runner, listener).start()
        except BaseException:
            listener.close()
            raise
        host, port = self._runner.addresses[0][:2]
        self._url = served_url(host, port)
        service.tokens.issuer = token_issuer(self._settings, host, self._url, self._log)
        self._log.info("server.started", url=self._url)

    async def sweep(self) -> SweepCounts:
        """Run one retention sweep now (the sweeper does it every ``sweep_interval``)."""
        if self._service is None:
            raise RuntimeError("the server is not started")
        return await sweep_once(self._service.database, sweep_rules(self._settings), self._log)

    @staticmethod
    async def sweep_database(
        database: str | Path,
        settings: ServerSettings,
        logger: structlog.typing.FilteringBoundLogger | None = None,
        *,
        delete_retired_keys: bool = False,
    ) -> SweepCounts:
        """One retention sweep of an existing database, without a server (``mimi-reactive
        sweep``). Retired signing keys are kept unless ``delete_retired_keys`` (default
        False): pass True only if ``settings.access_token_ttl`` is the servers' own, as a
        shorter one deletes keys whose tokens are still unexpired."""
        async with _existing_database(database) as opened:
            rules = sweep_rules(settings, delete_retired_keys=delete_retired_keys)
            return await sweep_once(opened, rules, logger or server_logger())

    @staticmethod
    async def migrate_database(database: str | Path) -> tuple[int, int]:
        """Bring a database's schema up to date without serving (``mimi-reactive migrate``):
        the version it had and the version it has now."""
        try:
            return await migrate_database(database)
        except DatabaseOpenError as error:
            raise start_error(error) from None

    @staticmethod
    async def rotate_signing_key(database: str | Path, *, now: float | None = None) -> str:
        """Store a new access-token signing key, without a server (``mimi-reactive
        rotate-signing-key``); the new key's ``kid``.

        Running servers publish it at their next read of the keys (a JWKS request reads them
        if they were not read in the last 5 s) but sign with it only from 60 s
        (``PUBLISH_LEAD``) after ``now`` (default: the current time), so verifiers have it
        before its first token: within that plus ``key_reload_interval`` (60 s), or from the
        first JWKS request after that instant. The current key signs until then and is retired from
        then; it stays published for one access-token lifetime plus 300 s after that, so
        the tokens it signed keep verifying until they expire.
        """
        key = new_signing_key((time.time() if now is None else now) + PUBLISH_LEAD)
        async with _existing_database(database) as opened:
            await opened.add_signing_key(key)
        return key.kid

    async def stop(self) -> None:
        """Stop listening and sweeping, and close the database. Idempotent."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._service is not None:
            await self._service.close()
            self._service = None

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


def registered_clients(configs: Sequence[ClientConfig]) -> dict[str, RegisteredClient]:
    """The clients as the server keeps them (secret digests), by id. ``configs`` are checked
    already: by ``IdentityServer``'s constructor, or by the CLI as it reads its options."""
    return {
        config.id: RegisteredClient(
            config.id, tuple(digest(secret) for secret in config.secrets), config.anonymous_only
        )
        for config in configs
    }


@contextlib.asynccontextmanager
async def _existing_database(database: str | Path) -> AsyncIterator[IdentityDatabase]:
    """The database ``database`` names, opened without creating it (a mistyped path is refused,
    not made an empty database); ``ServerStartError`` if it cannot be opened; closed after."""
    try:
        opened = await open_database(database, create=False)
    except DatabaseOpenError as error:
        raise start_error(error) from None
    try:
        yield opened
    finally:
        await opened.close()


def start_error(error: ValueError | DatabaseOpenError) -> ServerStartError:
    """What a failure to open the rate-limit storage or the database is raised as: refused
    where the database's name was (``DatabaseNameError``)."""
    return ServerStartError(str(error), refused=isinstance(error, DatabaseNameError))
