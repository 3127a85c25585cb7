"""The ``mimi-reactive`` command: ``serve`` the reference server (``--workers N`` under
gunicorn), ``sweep`` or ``migrate`` its database, ``rotate-signing-key``, or run the ``demo``.

This is the only place that configures logging output.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import re
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

import attrs
import structlog

from ._demo import run_demo
from ._server._config import ClientConfig, ConfigError, load_config_file
from ._server._context import ServerSettings
from ._server._logs import RedactingFilter
from ._server._workers import WorkersRefusedError, check_workers, run_workers
from .server import IdentityServer, ServerStartError, registered_clients

__all__ = ["main"]

_DESCRIPTION = "mimi_reactive's command line: run the reference identity service or the demo."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    _configure_logging(args.log_level)
    if args.command in _SERVER_COMMANDS:
        try:
            options, clients = _options(args)
            if args.command == "serve" and options["workers"] > 1:
                return _serve_workers(options, clients, args.log_level)
        except (ConfigError, WorkersRefusedError) as error:
            print(f"mimi-reactive {args.command}: {error}", file=sys.stderr)
            return 2
        except ServerStartError as error:
            print(f"mimi-reactive {args.command}: {error}", file=sys.stderr)
            return 1
        command = _SERVER_COMMANDS[args.command]
        try:
            asyncio.run(command(options, clients))
        except ServerStartError as error:
            print(f"mimi-reactive {args.command}: {error}", file=sys.stderr)
            return 1
        return 0
    asyncio.run(run_demo())
    return 0


# Each server option: its default, and its type check for values from the config file.
_DEFAULTS: dict[str, object] = {
    "host": "127.0.0.1",
    "port": 8080,
    "workers": 1,
    "database": "mimi-identity.sqlite3",
    "database_pool_size": 10,
    "issuer": None,
    "access_token_ttl": 3600.0,
    "session_idle_timeout": 30 * 24 * 3600.0,
    "refresh_reuse_interval": 10.0,
    "max_anonymous_sign_ups_per_hour": 100,
    "max_failed_log_ins_per_minute": 30,
    "rate_limit_storage": "memory://",
    "password_hash_workers": 1,
    "password_hash_queue": 8,
    "sweep_interval": 3600.0,
    "spent_token_retention": 24 * 3600.0,
    "anonymous_retention_days": 0,
}


def _options(args: argparse.Namespace) -> tuple[dict[str, Any], list[ClientConfig]]:
    """Every option from the flags, else the config file, else its default; and the clients."""
    from_file: dict[str, Any] = {}
    clients: list[ClientConfig] = []
    if args.config is not None:
        loaded = load_config_file(Path(args.config))
        from_file, clients = dict(loaded.server), list(loaded.clients)
    options: dict[str, Any] = {}
    for name, default in _DEFAULTS.items():
        flag = getattr(args, name, None)
        options[name] = flag if flag is not None else from_file.get(name, default)
    if args.command == "serve":
        if args.client_id is not None:
            secret = args.client_secret or os.environ.get("MIMI_CLIENT_SECRET")
            if not secret:
                raise ConfigError("--client-id needs --client-secret or MIMI_CLIENT_SECRET")
            clients.append(ClientConfig(args.client_id, secret, args.anonymous_only))
        if not clients:
            raise ConfigError("no client: give --client-id, or [[clients]] in --config")
    return options, clients


def _settings(options: dict[str, Any]) -> ServerSettings:
    names = {field.name for field in attrs.fields(ServerSettings)}
    return ServerSettings(**{k: v for k, v in options.items() if k in names})


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except for options that have none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Refuses bad arguments with one line (and the usual exit status 2), no usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    formatter = _Formatter
    parser = _Parser(prog="mimi-reactive", description=_DESCRIPTION, formatter_class=formatter)
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {metadata.version('mimi-reactive')}"
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="what to log to stderr",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the reference identity service",
        description="Run the reference identity service on SQLite until SIGINT or SIGTERM.",
        formatter_class=formatter,
    )
    serve.add_argument("--config", help="a TOML file with [server] options and [[clients]]")
    serve.add_argument("--host", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=_port, help="TCP port, 0 for any free port (8080)")
    serve.add_argument(
        "--workers",
        type=_positive,
        help="server processes on the port, run by gunicorn; more than 1 needs a PostgreSQL"
        " --database and a shared --rate-limit-storage (1)",
    )
    _database_options(serve)
    serve.add_argument(
        "--database-pool-size",
        type=_positive,
        help="PostgreSQL connections each server process keeps at most (10)",
    )
    serve.add_argument("--client-id", type=_non_blank, help="one app's client id")
    serve.add_argument(
        "--client-secret",
        help="the client's secret; prefer the MIMI_CLIENT_SECRET environment variable, "
        "as arguments are visible to other users of the machine",
    )
    serve.add_argument(
        "--anonymous-only",
        action="store_true",
        help="refuse this client credential sign-up, log-in and promotion",
    )
    serve.add_argument("--issuer", help="the service's public URL, the iss of access tokens")
    serve.add_argument(
        "--refresh-reuse-interval",
        type=_seconds(minimum_exclusive=None),
        help="seconds a spent refresh token still gets a new pair, so a client retrying "
        "after a lost answer keeps its session; 0 revokes on any reuse (10)",
    )
    serve.add_argument(
        "--max-anonymous-sign-ups-per-hour",
        type=_count,
        help="anonymous users one client IP may create per hour; 0: no limit (100)",
    )
    serve.add_argument(
        "--max-failed-log-ins-per-minute",
        type=_count,
        help="wrong anonymous ids, passwords and client secrets one client IP may send "
        "per minute before 429; 0: no limit (30)",
    )
    serve.add_argument(
        "--rate-limit-storage", help="where limits count, a limits storage URL (memory://)"
    )
    serve.add_argument(
        "--password-hash-workers", type=_positive, help="Argon2 hashes run at once (1)"
    )
    serve.add_argument(
        "--password-hash-queue",
        type=_count,
        help="Argon2 hashes that may wait; past that 503 with Retry-After (8)",
    )
    serve.add_argument(
        "--sweep-interval",
        type=_seconds(minimum_exclusive=None),
        help="seconds between retention sweeps; 0: no sweeper (3600)",
    )
    sweep = commands.add_parser(
        "sweep",
        help="delete dead sessions and old spent tokens once, then exit",
        description="Delete revoked and idle-expired sessions with their tokens, spent refresh"
        " tokens past the retention window, and (if set) long-unused anonymous users.",
        formatter_class=formatter,
    )
    sweep.add_argument("--config", help="a TOML file with [server] options")
    _database_options(sweep)
    migrate = commands.add_parser(
        "migrate",
        help="bring the database's schema up to date, then exit",
        description="Create or upgrade the database's schema (serve does it at start too).",
        formatter_class=formatter,
    )
    migrate.add_argument("--config", help="a TOML file with [server] options")
    migrate.add_argument("--database", help=_DATABASE_HELP)
    rotate = commands.add_parser(
        "rotate-signing-key",
        help="store a new access-token signing key and retire the current one, then exit",
        description="Store a new access-token signing key; running servers sign with it within"
        " a minute, and keep publishing the retired key for one access-token lifetime plus"
        " 300 s so the tokens it signed keep verifying. Prints the new key's kid.",
        formatter_class=formatter,
    )
    rotate.add_argument("--config", help="a TOML file with [server] options")
    rotate.add_argument("--database", help=_DATABASE_HELP)
    for command in (serve, sweep, migrate, rotate):
        for action in command._actions:
            default = _DEFAULTS.get(action.dest)
            if default is not None and action.help is not None and action.dest != "help":
                # The flag's own default is None (so the config file can fill it in): show
                # the effective default instead.
                action.help = re.sub(r" \([^()]*\)$", "", action.help)
                action.help += f" (default: {default})"
    commands.add_parser(
        "demo",
        help="walk the anonymous-user flow against an in-process server",
        description="Walk the anonymous-user flow against an in-process server.",
    )
    return parser


_DATABASE_HELP = (
    "a SQLite file, created 0600 if missing, or postgresql://USER[:PASSWORD]@HOST:PORT/DB"
    " (?search_path=SCHEMA picks a schema) (mimi-identity.sqlite3)"
)


def _database_options(parser: argparse.ArgumentParser) -> None:
    """The options ``serve`` and ``sweep`` share: where the data is and how long it stays
    (a retired signing key stays until no access token it signed can still be valid)."""
    parser.add_argument("--database", help=_DATABASE_HELP)
    parser.add_argument(
        "--access-token-ttl",
        type=_seconds(minimum_exclusive=0),
        help="seconds an access token is valid (3600)",
    )
    parser.add_argument(
        "--session-idle-timeout",
        type=_seconds(minimum_exclusive=0),
        help="seconds a session may go unused before it ends (30 days)",
    )
    parser.add_argument(
        "--spent-token-retention",
        type=_seconds(minimum_exclusive=None),
        help="seconds a spent refresh token is kept so its reuse is detected (86400)",
    )
    parser.add_argument(
        "--anonymous-retention-days",
        type=_seconds(minimum_exclusive=None),
        help="delete anonymous users unused this many days; they can never log in again (0: never)",
    )


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _positive(text: str) -> int:
    value = _count(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range (0 to 65535)")
    return port


def _non_blank(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _seconds(*, minimum_exclusive: float | None) -> Callable[[str], float]:
    """A finite number of seconds, above ``minimum_exclusive`` (or at least 0 if None)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number of seconds, not {text}")
        if minimum_exclusive is not None and value <= minimum_exclusive:
            raise argparse.ArgumentTypeError(f"must be more than {minimum_exclusive:g}, not {text}")
        if minimum_exclusive is None and value < 0:
            raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
        return value

    parse.__name__ = "seconds"  # argparse names the type in its messages
    return parse


def _serve_workers(options: dict[str, Any], clients: list[ClientConfig], log_level: str) -> int:
    """Several worker processes under gunicorn, once the database is migrated (here, once)."""
    try:
        settings = _settings(options)
    except ValueError as error:
        raise ServerStartError(str(error)) from None
    check_workers(options["workers"], options["database"], settings)
    registered = registered_clients(clients)
    asyncio.run(IdentityServer.migrate_database(options["database"]))
    return run_workers(
        clients=registered,
        database=options["database"],
        settings=settings,
        host=options["host"],
        port=options["port"],
        workers=options["workers"],
        log_level=log_level,
    )


async def _serve(options: dict[str, Any], clients: list[ClientConfig]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        settings = _settings(options)
    except ValueError as error:
        raise ServerStartError(str(error)) from None
    async with IdentityServer(
        clients=clients,
        database=options["database"],
        host=options["host"],
        port=options["port"],
        settings=settings,
    ) as server:
        print(f"serving on {server.url}", flush=True)
        await stop.wait()


async def _migrate(options: dict[str, Any], clients: list[ClientConfig]) -> None:
    """Create or upgrade the schema, without listening."""
    found, now = await IdentityServer.migrate_database(options["database"])
    print(f"schema version {now} (was {found})", flush=True)


async def _sweep(options: dict[str, Any], clients: list[ClientConfig]) -> None:
    """One sweep of the database, without listening."""
    try:
        settings = _settings({**options, "sweep_interval": 0})
    except ValueError as error:
        raise ServerStartError(str(error)) from None
    counts = await IdentityServer.sweep_database(options["database"], settings)
    print(
        f"deleted {counts.sessions} sessions, {counts.refresh_tokens} spent refresh tokens,"
        f" {counts.users} anonymous users, {counts.signing_keys} retired signing keys",
        flush=True,
    )


async def _rotate_signing_key(options: dict[str, Any], clients: list[ClientConfig]) -> None:
    """Store a new signing key, without listening; print its kid (never the key)."""
    kid = await IdentityServer.rotate_signing_key(options["database"])
    print(f"signing key {kid} added; running servers sign with it within a minute", flush=True)


_Command = Callable[[dict[str, Any], list[ClientConfig]], Coroutine[Any, Any, None]]
# The commands that take the server's options (--database, --config, ...); demo does not.
_SERVER_COMMANDS: dict[str, _Command] = {
    "serve": _serve,
    "sweep": _sweep,
    "migrate": _migrate,
    "rotate-signing-key": _rotate_signing_key,
}


def _configure_logging(level: str) -> None:
    """Our structlog events, and every stdlib record (aiohttp's, asyncio's) redacted, to stderr."""
    numeric = getattr(logging, level.upper())
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        # Bind once, not on every event: a lazy proxy re-binds per call (4 us a request).
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s"))
    logging.basicConfig(level=numeric, handlers=[handler], force=True)
