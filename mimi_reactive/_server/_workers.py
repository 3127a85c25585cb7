"""``mimi-reactive serve --workers N``: N server processes on one port, run by gunicorn.

gunicorn's arbiter binds the port once, forks the workers (``aiohttp.GunicornWebWorker``, the
worker aiohttp ships for it), restarts one that dies, and stops them all gracefully on SIGTERM,
and on SIGHUP too, as ``serve`` does in one process (gunicorn's own SIGHUP reloads).
Each worker builds the same app as ``IdentityServer`` and keeps nothing of its own that
matters: users, sessions, revocations and signing keys are in PostgreSQL, and rate-limit
counts in the ``limits`` storage (Redis).
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.glogging import Logger

from ._app import served_url, token_issuer
from ._context import RegisteredClient, ServerSettings
from ._identity_server import ServerStartError
from ._limits import RateLimiter, limits_on
from ._logs import RedactingFilter, server_logger
from ._runner import app_runner
from ._service import open_service
from ._stores import connections_allowed, is_postgres, migrate_database

__all__ = ["WorkersRefusedError", "check_workers", "prepare_workers", "run_workers"]


class WorkersRefusedError(Exception):
    """These settings would give workers state of their own: one line saying what to change."""


def check_workers(workers: int, database: str, settings: ServerSettings) -> None:
    """Refuse several workers where they would not share what they keep."""
    if workers <= 1:
        return
    if not is_postgres(database):
        raise WorkersRefusedError(
            f"--workers {workers} needs a database the workers share: give --database"
            " postgresql://USER@HOST:PORT/DB (SQLite serves one process; its writers would"
            " wait on one file lock, and :memory: would be one database per worker)"
        )
    per_process = settings.rate_limit_storage.startswith(("memory://", "async+memory://"))
    if limits_on(settings) and per_process:
        raise WorkersRefusedError(
            f"--workers {workers} needs rate-limit counts the workers share: give"
            " --rate-limit-storage redis://HOST:6379 (memory:// counts per worker, so each"
            " limit would be multiplied by the number of workers)"
        )


class _Arbiter(Arbiter):
    """gunicorn's arbiter, stopping gracefully on SIGHUP as on SIGTERM: one rule for ``serve``
    in one process and with workers. SIGHUP is what a closed terminal or an ended SSH session
    sends; gunicorn's reload on it (new workers, the old ones stopped) would keep a server
    running that its operator left, and reloads nothing here: the configuration is built in
    code, not read again from a file."""

    def handle_hup(self) -> None:
        self.handle_term()


class _Gunicorn(BaseApplication):
    """gunicorn configured in code; each worker's app is built by ``_app``."""

    def __init__(
        self,
        *,
        clients: Mapping[str, RegisteredClient],
        database: str,
        settings: ServerSettings,
        listener: socket.socket,
        workers: int,
        log_level: str,
        announce: Callable[[str, int], None],
    ) -> None:
        self._clients, self._database, self._settings = clients, database, settings
        self._announce = announce
        self._options: dict[str, Any] = {
            # The socket bound before gunicorn starts (gunicorn takes over its descriptor).
            "bind": f"fd://{listener.detach()}",
            "workers": workers,
            "worker_class": "aiohttp.GunicornWebWorker",
            "accesslog": None,
            "errorlog": "-",
            "logger_class": _GunicornLogs,
            "loglevel": log_level,
            "graceful_timeout": 10,
            "proc_name": "mimi-reactive",
            "when_ready": self._ready,
            "post_worker_init": _redact_gunicorn_logs,
        }
        self._url = self._issuer = ""
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            self.cfg.set(name, value)
        # gunicorn 25.1+ would otherwise open a management socket (add or remove workers, shut
        # down) at $XDG_RUNTIME_DIR/gunicorn.ctl or ~/.gunicorn/gunicorn.ctl: undocumented
        # here, and one path for every deployment of the user, each unlinking the other's.
        if "control_socket_disable" in self.cfg.settings:  # none before 25.1
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Any:
        return self._app

    def run(self) -> None:
        """``BaseApplication.run`` with ``_Arbiter``; a failure to start is ``ServerStartError``."""
        try:
            _Arbiter(self).run()
        except RuntimeError as error:  # gunicorn's arbiter failing to start
            # The command line says it in one line, as any failed start (gunicorn prints it).
            raise ServerStartError(str(error)) from None

    def _ready(self, arbiter: Arbiter) -> None:
        """The port is bound (workers not yet forked): fix the URL every worker will use."""
        _redact_gunicorn_logs(arbiter)
        host, port = arbiter.LISTENERS[0].sock.getsockname()[:2]
        self._url = served_url(host, port)
        self._issuer = token_issuer(self._settings, host, self._url, server_logger())
        self._announce(self._url, self.cfg.workers)

    async def _app(self) -> web.AppRunner:
        try:
            return await self._open()
        except Exception as error:
            # Logged here, by type: gunicorn would print the exception's message as a bare
            # line (no format, no redaction). Exiting with its boot-error status, gunicorn
            # stops, saying "Reason: Worker failed to boot.".
            server_logger().error("server.worker_failed_to_start", error=type(error).__name__)
            raise SystemExit(Arbiter.WORKER_BOOT_ERROR) from None

    async def _open(self) -> web.AppRunner:
        service = await open_service(
            clients=self._clients,
            database=self._database,
            settings=self._settings,
            logger=server_logger(),
            # prepare_workers migrated the database and checked the rate-limit storage: a
            # worker touches neither at boot, as one that fails to boot stops gunicorn, the
            # healthy workers with it.
            prepared=True,
        )
        service.tokens.issuer = self._issuer
        return app_runner(service.app, shutdown_timeout=9.5)


async def prepare_workers(database: str, settings: ServerSettings, *, workers: int = 1) -> None:
    """Once, before the workers start: the rate-limit storage answers (``ValueError`` if not,
    rather than every worker failing to boot after "serving on"), the schema is up to date
    (``DatabaseOpenError`` if it cannot be), and a warning is logged if the ``workers`` pools
    together may open more connections than the PostgreSQL server allows."""
    limiter = RateLimiter.from_url(settings.rate_limit_storage, settings.clock)
    try:
        await limiter.check()
    finally:
        await limiter.close()
    await migrate_database(database)
    if is_postgres(database):
        wanted = workers * settings.database_pool_size
        allowed = await connections_allowed(database, within=settings.storage_timeout)
        if allowed is not None and wanted > allowed:
            # A warning, not a refusal: the pools open connections only as load needs them,
            # and the database may be reconfigured while the workers run.
            server_logger().warning(
                "database.too_few_connections",
                hint=f"--workers {workers} x --database-pool-size"
                f" {settings.database_pool_size} = {wanted} connections at the busiest, but the"
                f" PostgreSQL server allows {allowed} (max_connections less the reserved ones):"
                " past that, requests answer 503 while the database is healthy; lower either,"
                " or raise max_connections",
            )


class _GunicornLogs(Logger):
    """gunicorn's records go to the process's own handlers (the command line's: its format,
    with redaction), not to a stream and format of gunicorn's own."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True


def _redact_gunicorn_logs(_: object) -> None:
    """gunicorn's own records (a worker's failure quotes its exception) are redacted too."""
    for name in ("gunicorn.error", "gunicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(each, RedactingFilter) for each in logger.filters):
            logger.addFilter(RedactingFilter())


def run_workers(
    *,
    clients: Mapping[str, RegisteredClient],
    database: str,
    settings: ServerSettings,
    listener: socket.socket,
    workers: int,
    log_level: str,
    announce: Callable[[str, int], None],
) -> int:
    """Run ``workers`` processes on ``listener`` (from ``listen``, bound before the database is
    touched, so a busy port fails in one line) until SIGTERM, SIGHUP or SIGINT; gunicorn's exit
    status.
    ``announce(url, workers)`` is called once gunicorn listens."""
    application = _Gunicorn(
        clients=clients,
        database=database,
        settings=settings,
        listener=listener,
        workers=workers,
        log_level=log_level,
        announce=announce,
    )
    try:
        application.run()
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 1
    sys.stdout.flush()
    return 0
