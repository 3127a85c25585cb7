"""The ``mimi-reactive`` command line's grammar: its commands and options, their defaults, and
the argument types that refuse a bad value (one line, exit status 2) before anything runs.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NoReturn

import attrs

# The version pyproject.toml gives the distribution; importlib.metadata would cost --version
# and --help some 20-40 ms.
from . import __version__
from ._server._config import SERVER_KEYS
from ._server._settings import ServerSettings

__all__ = ["DEFAULTS", "build_parser"]

_DESCRIPTION = "mimi_reactive's command line: run the reference identity service or the demo."

# The options only the command line has; every other server option is a ServerSettings field
# and has that field's default (one source for the command line, the config file and the API).
_COMMAND_LINE_DEFAULTS: dict[str, object] = {
    "host": "127.0.0.1",
    "port": 8080,
    "workers": 1,
    "database": "mimi-identity.sqlite3",
}
_SETTINGS_FIELDS = attrs.fields_dict(ServerSettings)
# Each server option (a [server] key of the config file, which type-checks its values) and its
# default.
DEFAULTS: dict[str, object] = {
    name: _COMMAND_LINE_DEFAULTS[name]
    if name in _COMMAND_LINE_DEFAULTS
    else _SETTINGS_FIELDS[name].default
    for name in SERVER_KEYS
}


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


def build_parser() -> argparse.ArgumentParser:
    formatter = _Formatter
    parser = _Parser(prog="mimi-reactive", description=_DESCRIPTION, formatter_class=formatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
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
        description="Run the reference identity service (on SQLite or PostgreSQL, see --database)"
        " until SIGINT or SIGTERM.",
        formatter_class=formatter,
    )
    serve.add_argument("--config", help="a TOML file with [server] options and [[clients]]")
    serve.add_argument("--host", help="address to listen on")
    serve.add_argument("--port", type=_port, help="TCP port, 0 for any free port")
    serve.add_argument(
        "--workers",
        type=_positive,
        help="server processes on the port, run by gunicorn; more than 1 needs a PostgreSQL"
        " --database and a shared --rate-limit-storage",
    )
    _database_options(serve)
    serve.add_argument(
        "--database-pool-size",
        type=_positive,
        help="PostgreSQL connections each server process keeps at most",
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
        "after a lost answer keeps its session; 0 revokes on any reuse",
    )
    serve.add_argument(
        "--max-anonymous-sign-ups-per-hour",
        type=_count,
        help="anonymous users one client IP may create per hour; 0: no limit",
    )
    serve.add_argument(
        "--max-failed-log-ins-per-minute",
        type=_count,
        help="wrong anonymous ids, passwords and client secrets one client IP may send "
        "per minute before 429; 0: no limit",
    )
    serve.add_argument("--rate-limit-storage", help="where limits count, a limits storage URL")
    serve.add_argument("--password-hash-workers", type=_positive, help="Argon2 hashes run at once")
    serve.add_argument(
        "--password-hash-queue",
        type=_count,
        help="Argon2 hashes that may wait; past that 503 with Retry-After",
    )
    serve.add_argument(
        "--sweep-interval",
        type=_seconds(minimum_exclusive=None),
        help="seconds between retention sweeps; 0: no sweeper",
    )
    sweep = commands.add_parser(
        "sweep",
        help="delete dead sessions, old spent tokens and retired signing keys once, then exit",
        description="Delete revoked and idle-expired sessions with their tokens, spent refresh"
        " tokens past the retention window, (if set) long-unused anonymous users, and retired"
        " signing keys once every token they signed has expired: the last only when given the"
        " servers' --access-token-ttl (flag or [server] access_token_ttl in --config), which"
        " decides when they go; without it retired keys are kept.",
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
            default = DEFAULTS.get(action.dest)
            if default is not None and action.help is not None:
                # The flag's own default is None (so the config file can fill it in): show
                # the effective default instead.
                action.help += f" (default: {default})"
    # sweep assumes no lifetime: without the servers' it keeps retired keys.
    ttl = next(action for action in sweep._actions if action.dest == "access_token_ttl")
    ttl.help = (
        "seconds the servers' access tokens are valid: retired signing keys are deleted once"
        " every token they signed has expired (not given: they are kept)"
    )
    commands.add_parser(
        "demo",
        help="walk the anonymous-user flow against an in-process server",
        description="Walk the anonymous-user flow against an in-process server.",
    )
    return parser


_DATABASE_HELP = (
    "a SQLite file, created 0600 if missing, or postgresql://USER[:PASSWORD]@HOST:PORT/DB"
    " (?search_path=SCHEMA picks a schema)"
)


def _database_options(parser: argparse.ArgumentParser) -> None:
    """The options ``serve`` and ``sweep`` share: where the data is and how long it stays
    (a retired signing key stays until no access token it signed can still be valid)."""
    parser.add_argument("--database", help=_DATABASE_HELP)
    parser.add_argument(
        "--access-token-ttl",
        type=_seconds(minimum_exclusive=0),
        help="seconds an access token is valid",
    )
    parser.add_argument(
        "--session-idle-timeout",
        type=_seconds(minimum_exclusive=0),
        help="seconds a session may go unused before it ends",
    )
    parser.add_argument(
        "--spent-token-retention",
        type=_seconds(minimum_exclusive=None),
        help="seconds a spent refresh token is kept so its reuse is detected",
    )
    parser.add_argument(
        "--anonymous-retention-days",
        type=_seconds(minimum_exclusive=None),
        help="delete anonymous users unused this many days; they can never log in again",
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
