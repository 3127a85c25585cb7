"""The ``mimi-reactive`` command line's grammar: its commands and options, their defaults, and
the argument types that refuse a bad value (one line, exit status 2) before anything runs.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

import attrs

# The version pyproject.toml gives the distribution; importlib.metadata would cost --version
# and --help some 20-40 ms.
from . import __version__
from ._server._config import COMMAND_LINE_RULES, DEFAULTS, LOG_FORMATS
from ._server._settings import (
    MAX_POOL_SIZE,
    NOT_BLANK,
    PUBLISH_LEAD,
    PUBLISH_MARGIN,
    Network,
    Rule,
    ServerSettings,
    network,
)

__all__ = ["SIGNS_WITHIN", "build_parser"]

_DESCRIPTION = "mimi_reactive's command line: run the reference identity service or the demo."
_SETTINGS_FIELDS = attrs.fields_dict(ServerSettings)
_RELOAD_DEFAULT = ServerSettings().key_reload_interval
SIGNS_WITHIN = f"{(PUBLISH_LEAD + _RELOAD_DEFAULT) / 60:g} minutes"
"""How soon after ``rotate-signing-key`` running servers (at the default key reload interval)
sign with the new key: its help and its output both say it."""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except for options that have none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Refuses bad arguments with one line (and the usual exit status 2), no usage dump."""

    _given: Sequence[str] = ()

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """argparse's parse, keeping the arguments given for ``error``'s hint."""
        self._given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        first = self._given[0] if self._given else ""
        if message.startswith(_TAKEN_FOR_A_COMMAND) and _OPTION_FIRST.match(first):
            # `mimi-reactive --log-format json serve`: argparse took the option's value for
            # the command's name.
            message += (
                f"; {first.partition('=')[0]} goes after the command's name"
                f" (mimi-reactive {self._command_given()} {first} ...)"
            )
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def _command_given(self) -> str:
        """The first command name among the arguments given (``COMMAND`` if none is): the
        one the hint shows the option after."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return next((given for given in self._given if given in action.choices), "COMMAND")
        return "COMMAND"


_TAKEN_FOR_A_COMMAND = ("argument COMMAND: invalid choice", "unrecognized arguments")
"""argparse's words for a command's option given before the command's name."""
_OPTION_FIRST = re.compile(r"--(?!log-level\b|version\b|help\b)")
"""An option only a command takes, given before the command's name."""


def _log_level(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--log-level",
        default=default,
        choices=["debug", "info", "warning", "error"],
        help="what to log to stderr",
    )


def build_parser() -> argparse.ArgumentParser:
    formatter = _Formatter
    parser = _Parser(prog="mimi-reactive", description=_DESCRIPTION, formatter_class=formatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _log_level(parser, "warning")
    # Each command takes --log-level after its name too. SUPPRESS: not given there, it leaves
    # the value given before the command (or the default) alone.
    log_level = _Parser(add_help=False)
    _log_level(log_level, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the reference identity service",
        description="Run the reference identity service (on SQLite or PostgreSQL, see --database)"
        " until SIGINT, SIGTERM or SIGHUP.",
        formatter_class=formatter,
        parents=[log_level],
    )
    serve.add_argument(
        "--config", type=_config_path, help="a TOML file with [server] options and [[clients]]"
    )
    serve.add_argument(
        "--log-format",
        type=_checked("log_format"),
        metavar="{" + ",".join(LOG_FORMATS) + "}",
        help="how each line on stderr is written: console text, or one JSON object (timestamp"
        " in ISO 8601 UTC, level, logger, event and its fields); both for the server's events,"
        " aiohttp's and gunicorn's",
    )
    serve.add_argument("--host", type=_checked("host"), help="address to listen on")
    serve.add_argument("--port", type=_checked("port"), help="TCP port, 0 for any free port")
    serve.add_argument(
        "--workers",
        type=_checked("workers"),
        help="server processes on the port, run by gunicorn; more than 1 needs a PostgreSQL"
        " --database and a shared --rate-limit-storage",
    )
    _database_options(serve, _DATABASE_HELP)
    serve.add_argument(
        "--database-pool-size",
        type=_checked("database_pool_size"),
        help=f"PostgreSQL connections each server process keeps at most (1 to {MAX_POOL_SIZE}:"
        " each one is set up at start)",
    )
    serve.add_argument(
        "--storage-timeout",
        type=_checked("storage_timeout"),
        help="seconds the database and the rate-limit storage each have for one call;"
        " past that 503 with Retry-After",
    )
    serve.add_argument(
        "--client-id",
        type=_checked("client_id", NOT_BLANK),
        action="append",  # so that a second one is refused, not silently kept instead
        help="one app's client id (more apps: [[clients]] in --config)",
    )
    serve.add_argument(
        "--client-secret",
        help="the client's secret; prefer the MIMI_CLIENT_SECRET environment variable, "
        "as arguments are visible to other users of the machine",
    )
    serve.add_argument(
        "--previous-client-secret",
        help="the client's secret being rolled over from, accepted beside --client-secret"
        " until removed (two at most); prefer the MIMI_PREVIOUS_CLIENT_SECRET environment"
        " variable",
    )
    serve.add_argument(
        "--anonymous-only",
        action="store_true",
        help="refuse this client credential sign-up, log-in and promotion",
    )
    serve.add_argument(
        "--issuer",
        type=_checked("issuer"),
        help="the service's public URL, the iss of access tokens",
    )
    serve.add_argument(
        "--refresh-reuse-interval",
        type=_checked("refresh_reuse_interval"),
        help="seconds a spent refresh token still gets a new pair, so a client retrying "
        "after a lost answer keeps its session; 0 revokes on any reuse",
    )
    serve.add_argument(
        "--max-sessions-per-user",
        type=_checked("max_sessions_per_user"),
        help="live sessions one user may have; a log-in past it ends the user's least recently"
        " used ones (their clients log back in by id); 0: no limit",
    )
    serve.add_argument(
        "--max-anonymous-sign-ups-per-hour",
        type=_checked("max_anonymous_sign_ups_per_hour"),
        help="anonymous users one client IP may create per hour; 0: no limit",
    )
    serve.add_argument(
        "--max-credential-sign-ups-per-hour",
        type=_checked("max_credential_sign_ups_per_hour"),
        help="sign-ups with email and password one client IP may ask for per hour; 0: no limit",
    )
    serve.add_argument(
        "--max-failed-log-ins-per-minute",
        type=_checked("max_failed_log_ins_per_minute"),
        help="wrong anonymous ids, passwords and client secrets, and emails already taken at"
        " sign-up or promotion, one client IP may send per minute before 429; 0: no limit",
    )
    serve.add_argument(
        "--rate-limit-storage",
        type=_checked("rate_limit_storage"),
        help="where limits count, a limits storage URL",
    )
    serve.add_argument(
        "--trusted-proxy",
        dest="trusted_proxies",
        action="append",
        type=_trusted_proxy,
        metavar="ADDRESS",
        help="a reverse proxy (an address, or a network such as 10.0.0.0/8) whose"
        " X-Forwarded-For names the client that limits count by; repeat for several",
    )
    serve.add_argument(
        "--password-hash-workers",
        type=_checked("password_hash_workers"),
        help="Argon2 hashes run at once",
    )
    serve.add_argument(
        "--password-hash-queue",
        type=_checked("password_hash_queue"),
        help="Argon2 hashes that may wait; past that 503 with Retry-After",
    )
    serve.add_argument(
        "--sweep-interval",
        type=_checked("sweep_interval"),
        help="seconds between retention sweeps; 0: no sweeper",
    )
    serve.add_argument(
        "--key-reload-interval",
        type=_checked("key_reload_interval"),
        help="seconds between reads of the signing keys: a key rotate-signing-key adds signs"
        " within this long",
    )
    sweep = commands.add_parser(
        "sweep",
        help="delete dead sessions, old spent tokens and retired signing keys once, then exit",
        description="Delete idle-expired sessions with their tokens, revoked sessions and spent"
        " refresh tokens past the retention window (spent_token_retention in --config), (if"
        " set) long-unused anonymous users, and retired"
        " signing keys once every token they signed has expired: the last only when given the"
        " servers' --access-token-ttl (flag or [server] access_token_ttl in --config), which"
        " decides when they go; without it retired keys are kept.",
        formatter_class=formatter,
        parents=[log_level],
    )
    sweep.add_argument("--config", type=_config_path, help="a TOML file with [server] options")
    _database_options(sweep, _EXISTING_DATABASE_HELP)
    migrate = commands.add_parser(
        "migrate",
        help="bring the database's schema up to date, then exit",
        description="Create or upgrade the database's schema (serve does it at start too).",
        formatter_class=formatter,
        parents=[log_level],
    )
    migrate.add_argument("--config", type=_config_path, help="a TOML file with [server] options")
    migrate.add_argument("--database", type=_checked("database"), help=_DATABASE_HELP)
    rotate = commands.add_parser(
        "rotate-signing-key",
        help="store a new access-token signing key and retire the current one, then exit",
        description="Store a new access-token signing key; running servers sign with it within"
        f" {SIGNS_WITHIN} ({PUBLISH_LEAD:g} s after it is stored, plus their"
        f" --key-reload-interval, {_RELOAD_DEFAULT:g} s by default), and keep publishing the"
        f" retired key for one access-token lifetime plus {PUBLISH_MARGIN:g} s so the tokens it"
        " signed keep verifying. Prints the new key's kid.",
        formatter_class=formatter,
        parents=[log_level],
    )
    rotate.add_argument("--config", type=_config_path, help="a TOML file with [server] options")
    rotate.add_argument("--database", type=_checked("database"), help=_EXISTING_DATABASE_HELP)
    for command in (serve, sweep, migrate, rotate):
        for action in command._actions:
            default = DEFAULTS.get(action.dest)
            if default not in (None, frozenset()) and action.help is not None:
                # The flag's own default is None (so the config file can fill it in): show
                # the effective default instead.
                action.help += f" (default: {default})"
    # sweep assumes no lifetime: without the servers' it keeps retired keys.
    ttl = next(action for action in sweep._actions if action.dest == "access_token_ttl")
    ttl.help = (
        "seconds the servers' access tokens are valid: retired signing keys are deleted once"
        " every token they signed has expired (not given: they are kept)"
    )
    demo = commands.add_parser(
        "demo",
        help="walk the anonymous-user flow against an in-process server",
        description="Walk the anonymous-user flow against an in-process server.",
        parents=[log_level],
    )
    demo.add_argument(
        "--step",
        action="store_true",
        help="wait for Enter after each step's heading (to show the flow to someone)",
    )
    return parser


_POSTGRES_HELP = (
    "postgresql://USER[:PASSWORD]@HOST:PORT/DB (or postgres://; ?search_path=SCHEMA picks a schema)"
)
_DATABASE_HELP = f"a SQLite file, created 0600 if missing, or {_POSTGRES_HELP}"
_EXISTING_DATABASE_HELP = (
    f"the servers' SQLite file (one that does not exist is refused: run migrate or serve"
    f" first), or {_POSTGRES_HELP}"
)
"""``--database`` of the commands that open the servers' database and never create one."""


def _database_options(parser: argparse.ArgumentParser, database_help: str) -> None:
    """The options ``serve`` and ``sweep`` share: where the data is and how long it stays
    (a retired signing key stays until no access token it signed can still be valid)."""
    parser.add_argument("--database", type=_checked("database"), help=database_help)
    parser.add_argument(
        "--access-token-ttl",
        type=_checked("access_token_ttl"),
        help="seconds an access token is valid",
    )
    parser.add_argument(
        "--session-idle-timeout",
        type=_checked("session_idle_timeout"),
        help="seconds a session may go unused before it ends (longer than --access-token-ttl)",
    )
    parser.add_argument(
        "--spent-token-retention",
        type=_checked("spent_token_retention"),
        help="seconds a spent refresh token, and a revoked session, are kept so that reuse is"
        " detected and an ended session is not taken for an unknown one",
    )
    parser.add_argument(
        "--anonymous-retention-days",
        type=_checked("anonymous_retention_days"),
        help="delete anonymous users unused this many days; they can never log in again",
    )


def _config_path(text: str) -> str:
    """``--config``'s path as typed; an empty one is refused (``Path("")`` is ``.``, which
    the refusal would name instead of what was typed)."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty: give a TOML file's path")
    return text


def _checked(name: str, rule: Rule | None = None) -> Callable[[str], object]:
    """The argument type of option ``name``'s flag: its text read as the option's rule says,
    then checked by that rule (the one the config file and ``ServerSettings`` use)."""
    found = rule or COMMAND_LINE_RULES.get(name) or _SETTINGS_FIELDS[name].validator
    assert isinstance(found, Rule), name

    def check(text: str) -> object:
        try:
            value = found.read(text)
        except ValueError:
            value = text  # not a number: refused by the rule, the text quoted
        problem = found.problem(value)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value

    check.__name__ = name  # argparse names the type in its messages
    return check


def _trusted_proxy(text: str) -> Network:
    try:
        return network(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
