"""The ``mimi-reactive`` command: ``serve`` the reference server (``--workers N`` under
gunicorn), ``sweep`` or ``migrate`` its database, ``rotate-signing-key``, or run the ``demo``.

This is the only place that configures logging output. The commands and their options are
declared in ``_cli_parser.py``; this module runs them. Each command imports what it runs (the
server, the demo) when it runs: ``--help``, ``--version`` and a refused argument load neither.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from ._cli_parser import SIGNS_WITHIN, build_parser
from ._cli_signals import STOP_SIGNALS, StartStoppedError, stoppable
from ._exceptions import ConfigurationError
from ._server._config import (
    COMMAND_LINE_RULES,
    DEFAULTS,
    ClientConfig,
    check_clients,
    load_config_file,
)
from ._server._database_url import check_url
from ._server._settings import ServerSettings
from ._values import value_eq, value_hash, value_repr

__all__ = ["main"]


INTERRUPTED = 128 + signal.SIGINT
"""The exit status of a command stopped by Ctrl-C (SIGINT) before it could stop cleanly, as
shells report one killed by SIGINT (130)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (``INTERRUPTED`` after a Ctrl-C that
    came before ``serve`` listens, or during another command; 128 + the signal's number after a
    SIGTERM or SIGHUP that came before ``serve`` listens; 1 once stdout's reader went away, as
    ``| head`` does: no traceback either way)."""
    try:
        try:
            return _run(build_parser().parse_args(argv))
        finally:
            # Here, where a closed stdout is handled, rather than at the interpreter's exit
            # (after --help or --version too: argparse prints, then raises SystemExit).
            sys.stdout.flush()
    except KeyboardInterrupt:
        # asyncio.run has cancelled the command and run its cleanup (a server that was
        # starting is stopped, the demo's temporary folder removed) before raising this.
        return INTERRUPTED
    except BrokenPipeError:
        return _stdout_closed()


def _stdout_closed() -> int:
    """Python's own advice (the "Note on SIGPIPE" in the signal module's documentation): the
    command has stopped and cleaned up; what is left to write goes to devnull, so the
    interpreter's last flush fails no more; exit status 1."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1


def _run(args: argparse.Namespace) -> int:
    """Run the command ``args`` name; its exit status."""
    if args.command in _SERVER_COMMANDS:
        return _run_server_command(args)
    _configure_logging(args.log_level, DEFAULTS["log_format"])
    from ._demo import enter_pressed, run_demo  # here: it loads the server (start-up time)

    asyncio.run(run_demo(pause=enter_pressed if args.step else None))
    return 0


def _run_server_command(args: argparse.Namespace) -> int:
    """Run a command that takes the server's options; its exit status."""
    try:
        options, clients = _options(args)
    except ConfigurationError as error:
        return _refused(args.command, error, status=2)
    # Only serve has a --log-format: the others write the default.
    _configure_logging(args.log_level, options.values.get("log_format", DEFAULTS["log_format"]))
    # Here, not at the top: --help, --version and a refused option need not load the server.
    from ._server._workers import WorkersRefusedError
    from .server import ServerStartError

    try:
        if args.command == "serve" and options.values["workers"] > 1:
            return _serve_workers(options, clients, args.log_level)
        asyncio.run(_SERVER_COMMANDS[args.command](options, clients))
    except StartStoppedError as stopped:
        return 128 + stopped.signum  # as a shell reports a process the signal killed
    except WorkersRefusedError as error:
        return _refused(args.command, error, status=2)
    except ServerStartError as error:
        # A refused client or database name is a bad argument, as a bad flag is.
        return _refused(args.command, error, status=2 if error.refused else 1)
    return 0


def _refused(command: str, error: Exception, *, status: int) -> int:
    """Say in one line why ``command`` could not run; ``status`` is the exit status."""
    print(f"mimi-reactive {command}: {error}", file=sys.stderr)
    return status


@attrs.frozen
class _Options:
    """The server options a command runs with."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    # Hidden from the repr: a database or rate-limit storage URL may hold a password.
    values: Mapping[str, Any] = attrs.field(repr=False)
    """Each option the command has a flag for, and its value: the flag's, else the config
    file's, else its default."""
    given: frozenset[str]
    """The options a flag or the config file set, as opposed to defaults (sweep asks)."""
    settings: ServerSettings = attrs.field(repr=False)
    """The options that are settings of the server, checked by its rules (the defaults for
    those the command has no flag for)."""


def _options(args: argparse.Namespace) -> tuple[_Options, list[ClientConfig]]:
    """Every option the command has a flag for, from the flag, else the config file, else its
    default; and the clients (``serve`` only: the other commands authenticate none, so need
    none of their secrets). ``ConfigurationError`` for a value of those options out of its
    range, or ``serve`` without a client (the server checks each client as it starts); the other
    options' values are left unchecked (a ``migrate`` is not refused for a rate limit only
    ``serve`` reads)."""
    serving = args.command == "serve"
    from_file: dict[str, Any] = {}
    clients: list[ClientConfig] = []
    if args.config is not None:
        loaded = load_config_file(Path(args.config), read_secrets=serving)
        from_file, clients = dict(loaded.server), list(loaded.clients)
    values: dict[str, Any] = {}
    given: set[str] = set()
    for name, default in DEFAULTS.items():
        if not hasattr(args, name):
            # An option this command has no flag for, so does not use: its value in a config
            # file shared with serve is serve's, and is not checked here.
            continue
        flag = getattr(args, name)
        values[name] = flag if flag is not None else from_file.get(name, default)
        if flag is not None or name in from_file:
            given.add(name)
    for name, rule in COMMAND_LINE_RULES.items():
        problem = rule.problem(values[name]) if name in values else None
        if problem is not None:
            raise ConfigurationError(f"{name} {problem}")
    check_url(values["database"])
    if not serving and values.get("database") == ":memory:":
        # It would work on a database of its own, gone at exit: never the servers'.
        raise ConfigurationError(
            "--database :memory: is a database no server shares: give the servers' SQLite file"
            " or postgresql:// URL"
        )
    names = attrs.fields_dict(ServerSettings)
    try:
        settings = ServerSettings(**{k: v for k, v in values.items() if k in names})
    except ValueError as error:
        raise ConfigurationError(_as_flags(str(error), args)) from None
    if serving:
        client_id = _client_id(args)
        if client_id is not None:
            secret = args.client_secret or os.environ.get("MIMI_CLIENT_SECRET")
            if not secret:
                raise ConfigurationError("--client-id needs --client-secret or MIMI_CLIENT_SECRET")
            # An empty variable is one not set, as for MIMI_CLIENT_SECRET; an empty flag is
            # refused by ClientConfig.
            previous = args.previous_client_secret
            if previous is None:
                previous = os.environ.get("MIMI_PREVIOUS_CLIENT_SECRET") or None
            clients.append(
                ClientConfig(client_id, secret, args.anonymous_only, previous_secret=previous)
            )
        if not clients:
            raise ConfigurationError("no client: give --client-id, or [[clients]] in --config")
        check_clients(clients)
    return _Options(values, frozenset(given), settings), clients


def _as_flags(message: str, args: argparse.Namespace) -> str:
    """``message`` (``ServerSettings``' words, which name settings) with each setting a flag
    gave written as that flag (``--access-token-ttl``), as the user typed it."""

    def named(match: re.Match[str]) -> str:
        name = match.group(0)
        return "--" + name.replace("_", "-") if getattr(args, name, None) is not None else name

    return re.sub(r"\b[a-z]+(?:_[a-z]+)+\b", named, message)


def _client_id(args: argparse.Namespace) -> str | None:
    """The ``--client-id`` flag's value; ``ConfigurationError`` for it given twice (argparse
    would keep the last: more clients go in ``[[clients]]`` of ``--config``), or for a flag of
    its client without it, or ``MIMI_PREVIOUS_CLIENT_SECRET`` (either would be silently
    ignored: a roll-over the operator believes started would refuse the old secret)."""
    given: list[str] = args.client_id or []
    if len(given) > 1:
        raise ConfigurationError(
            "--client-id is given more than once: one client comes from the flags, more"
            " from [[clients]] in --config"
        )
    if not given:
        for flag, present in (
            ("--client-secret", args.client_secret is not None),
            ("--previous-client-secret", args.previous_client_secret is not None),
            ("--anonymous-only", args.anonymous_only),
        ):
            if present:
                raise ConfigurationError(
                    f"{flag} applies to --client-id's client: give --client-id"
                )
        # Empty is not set, as where it is read. MIMI_CLIENT_SECRET is left alone: the
        # variable [[clients]] entries usually name, it is no sign of a forgotten flag.
        if os.environ.get("MIMI_PREVIOUS_CLIENT_SECRET"):
            raise ConfigurationError(
                "MIMI_PREVIOUS_CLIENT_SECRET applies to --client-id's client: give --client-id,"
                " or previous_secret_env in a [[clients]] table of --config"
            )
    return given[0] if given else None


def _serve_workers(options: _Options, clients: list[ClientConfig], log_level: str) -> int:
    """Several worker processes under gunicorn, once the port is bound, the rate-limit storage
    answers and the database is migrated (here, once: what fails says so in one line)."""
    # Not at the top: --help need not load the server.
    from ._server._app import listen
    from ._server._identity_server import ServerStartError, registered_clients, start_error
    from ._server._stores import DatabaseOpenError
    from ._server._workers import check_workers, prepare_workers, run_workers

    values, settings = options.values, options.settings
    check_workers(values["workers"], values["database"], settings)
    registered = registered_clients(clients)
    try:
        listener = listen(values["host"], values["port"])  # before the database is touched
    except ValueError as error:
        raise ServerStartError(str(error)) from None
    try:
        asyncio.run(
            stoppable(prepare_workers(values["database"], settings, workers=values["workers"]))
        )
    except (ValueError, DatabaseOpenError) as error:
        listener.close()
        raise start_error(error) from None
    except StartStoppedError:
        listener.close()
        raise
    return run_workers(
        clients=registered,
        database=values["database"],
        settings=settings,
        listener=listener,
        workers=values["workers"],
        log_level=log_level,
        announce=_announce_workers,
    )


def _announce_workers(url: str, workers: int) -> None:
    """The line `serve --workers` prints once its port is bound (tests and scripts read it)."""
    print(f"serving on {url} with {workers} workers", flush=True)


async def _serve(options: _Options, clients: list[ClientConfig]) -> None:
    """Listen until SIGINT, SIGTERM or SIGHUP."""
    from .server import IdentityServer  # not at the top: --help need not load it

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    server = IdentityServer(
        clients=clients,
        database=options.values["database"],
        host=options.values["host"],
        port=options.values["port"],
        settings=options.settings,
    )
    async with contextlib.AsyncExitStack() as started:
        # Until the server listens, a stop signal cancels the start (which cleans up after
        # itself): a Ctrl-C through asyncio.run (main exits INTERRUPTED), SIGTERM and SIGHUP
        # through stoppable; once it listens, each stops the server cleanly.
        await stoppable(started.enter_async_context(server))
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stop.set)
        print(f"serving on {server.url}", flush=True)
        await stop.wait()


async def _migrate(options: _Options, clients: list[ClientConfig]) -> None:
    """Create or upgrade the schema, without listening."""
    from .server import IdentityServer  # not at the top: --help need not load it

    found, now = await IdentityServer.migrate_database(options.values["database"])
    print(f"schema version {now} (was {found})", flush=True)


async def _sweep(options: _Options, clients: list[ClientConfig]) -> None:
    """One sweep of the database, without listening; retired signing keys only with the
    access-token lifetime given (flag or config file)."""
    from .server import IdentityServer  # not at the top: --help need not load it

    # A retired key may go only once every token it signed has expired: that needs the
    # servers' access-token lifetime, which the default (3600 s) may not be.
    ttl_known = "access_token_ttl" in options.given
    counts = await IdentityServer.sweep_database(
        options.values["database"], options.settings, delete_retired_keys=ttl_known
    )
    kept = "" if ttl_known else " (kept: give the servers' --access-token-ttl to delete them)"
    print(
        f"deleted {counts.sessions} sessions, {counts.refresh_tokens} spent refresh tokens,"
        f" {counts.users} anonymous users, {counts.signing_keys} retired signing keys{kept}",
        flush=True,
    )


async def _rotate_signing_key(options: _Options, clients: list[ClientConfig]) -> None:
    """Store a new signing key, without listening; print its kid (never the key)."""
    from ._server._tokens import KEY_READ_THROTTLE
    from .server import IdentityServer  # not at the top: --help need not load it

    kid = await IdentityServer.rotate_signing_key(options.values["database"])
    print(
        f"signing key {kid} added; running servers publish it within {KEY_READ_THROTTLE:g}"
        f" seconds and sign with it within {SIGNS_WITHIN}",
        flush=True,
    )


_Command = Callable[[_Options, list[ClientConfig]], Coroutine[Any, Any, None]]
# The commands that take the server's options (--database, --config, ...); demo does not.
_SERVER_COMMANDS: dict[str, _Command] = {
    "serve": _serve,
    "sweep": _sweep,
    "migrate": _migrate,
    "rotate-signing-key": _rotate_signing_key,
}


def _configure_logging(level: str, log_format: object) -> None:
    """Our structlog events, and every stdlib record (aiohttp's, asyncio's, gunicorn's) redacted,
    to stderr through one processor chain: each line says when (ISO 8601, UTC), at which
    level and from which logger, as ``console`` text or one ``json`` object."""
    import structlog  # not at the top: it loads rich, which --help need not wait for

    from ._server._logs import LineHandler, NamedPrintLogger, RedactingFilter

    numeric = getattr(logging, level.upper())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: list[structlog.typing.Processor] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if log_format == "json"
        else [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    )
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=NamedPrintLogger,
        # Bind once, not on every event: a lazy proxy re-binds per call (4 us a request).
        cache_logger_on_first_use=True,
    )
    handler = LineHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        )
    )
    logging.basicConfig(level=numeric, handlers=[handler], force=True)
