"""The ``mimi-reactive`` command: ``serve`` the reference server, or run the ``demo``.

This is the only place that configures logging output.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import NoReturn

import structlog

from ._demo import run_demo
from ._server._app import ServerSettings
from ._server._logs import RedactingFilter
from .server import IdentityServer, ServerStartError

__all__ = ["main"]

_DESCRIPTION = "mimi_reactive's command line: run the reference identity service or the demo."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    _configure_logging(args.log_level)
    if args.command == "serve":
        secret = args.client_secret or os.environ.get("MIMI_CLIENT_SECRET")
        if not secret:
            print(
                "mimi-reactive serve: needs --client-secret or MIMI_CLIENT_SECRET", file=sys.stderr
            )
            return 2
        try:
            asyncio.run(_serve(args, secret))
        except ServerStartError as error:
            print(f"mimi-reactive serve: {error}", file=sys.stderr)
            return 1
        return 0
    asyncio.run(run_demo())
    return 0


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
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=_port, default=8080, help="TCP port (0: any free port)")
    serve.add_argument(
        "--database",
        default="mimi-identity.sqlite3",
        help="SQLite file, created 0600 if missing",
    )
    serve.add_argument(
        "--client-id", type=_non_blank, required=True, help="the app's client id (required)"
    )
    serve.add_argument(
        "--client-secret",
        help="the client's secret; prefer the MIMI_CLIENT_SECRET environment variable, "
        "as arguments are visible to other users of the machine",
    )
    serve.add_argument(
        "--access-token-ttl",
        type=_seconds(minimum_exclusive=0),
        default=3600.0,
        help="seconds an access token is valid",
    )
    serve.add_argument(
        "--session-idle-timeout",
        type=_seconds(minimum_exclusive=0),
        default=30 * 24 * 3600.0,
        help="seconds a session may go unused before it cannot be refreshed (30 days)",
    )
    serve.add_argument(
        "--refresh-reuse-interval",
        type=_seconds(minimum_exclusive=None),
        default=10.0,
        help="seconds a spent refresh token still gets a new pair, so a client retrying "
        "after a lost answer keeps its session; 0 revokes on any reuse",
    )
    commands.add_parser(
        "demo",
        help="walk the anonymous-user flow against an in-process server",
        description="Walk the anonymous-user flow against an in-process server.",
    )
    return parser


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


async def _serve(args: argparse.Namespace, client_secret: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with IdentityServer(
        client_id=args.client_id,
        client_secret=client_secret,
        database=args.database,
        host=args.host,
        port=args.port,
        settings=ServerSettings(
            access_token_ttl=args.access_token_ttl,
            session_idle_timeout=args.session_idle_timeout,
            refresh_reuse_interval=args.refresh_reuse_interval,
        ),
    ) as server:
        print(f"serving on {server.url}", flush=True)
        await stop.wait()


def _configure_logging(level: str) -> None:
    """Our structlog events, and every stdlib record (aiohttp's, asyncio's) redacted, to stderr."""
    numeric = getattr(logging, level.upper())
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s"))
    logging.basicConfig(level=numeric, handlers=[handler], force=True)
