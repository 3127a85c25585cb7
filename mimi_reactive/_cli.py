"""The ``mimi-reactive`` command: ``serve`` the reference server, or run the ``demo``.

This is the only place that configures logging output.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

import structlog

from ._demo import run_demo
from ._server._app import ServerSettings
from .server import IdentityServer

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    _configure_logging(args.log_level)
    if args.command == "serve":
        secret = args.client_secret or os.environ.get("MIMI_CLIENT_SECRET")
        if not secret:
            print("serve needs --client-secret or MIMI_CLIENT_SECRET", file=sys.stderr)
            return 2
        asyncio.run(_serve(args, secret))
        return 0
    asyncio.run(run_demo())
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mimi-reactive", description=__doc__)
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="what to log to stderr (default: warning)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the reference identity service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--database", default="mimi-identity.sqlite3", help="SQLite file (created if missing)"
    )
    serve.add_argument("--client-id", required=True)
    serve.add_argument(
        "--client-secret",
        help="the client's secret; prefer the MIMI_CLIENT_SECRET environment variable, "
        "as arguments are visible to other users of the machine",
    )
    serve.add_argument(
        "--access-token-ttl", type=float, default=3600.0, help="access token lifetime, seconds"
    )
    serve.add_argument(
        "--session-idle-timeout",
        type=float,
        default=30 * 24 * 3600.0,
        help="seconds a session may go unused before it cannot be refreshed (default 30 days)",
    )
    commands.add_parser("demo", help="walk the anonymous-user flow against an in-process server")
    return parser


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
        ),
    ) as server:
        print(f"serving on {server.url}", flush=True)
        await stop.wait()


def _configure_logging(level: str) -> None:
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
