"""The runner of every server process (in-process, and each worker of ``serve --workers``):
aiohttp's ``AppRunner`` configured once, with a stop that does not wait for connections that
will never be read."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ._logs import http_logger

__all__ = ["app_runner"]

RECLOSE_EVERY = 0.05
"""Seconds between two closings of the idle connections while a stop runs."""


def app_runner(app: web.Application, *, shutdown_timeout: float = 60.0) -> web.AppRunner:
    """The runner of every server process (in-process and each worker): no access log;
    aiohttp's request-error records go through the redacting logger (they can quote a raw
    header line, credentials included); bodies are not inflated, so a compressed one reaches
    ``read_body``, which refuses it with JSON, instead of failing in aiohttp's parser."""
    return _Runner(
        app,
        access_log=None,
        logger=http_logger(),
        auto_decompress=False,
        shutdown_timeout=shutdown_timeout,
    )


class _Runner(web.AppRunner):
    """``AppRunner`` whose stop closes the idle connections again and again while it runs.

    aiohttp's stop closes the sites, then each connection once (an idle one's wait for its
    next request is cancelled), then waits up to ``shutdown_timeout`` for each connection's
    work to end. Before Python 3.12 a connection's work starts in a task one turn of the loop
    after the connection is made: one made just before that closing starts after it, waits for
    a request it will never read (a closed connection drops what it receives), and the stop
    waits the whole ``shutdown_timeout`` for it. A worker taking connections all the time
    (behind a load balancer) so took gunicorn's whole graceful timeout (10 s) to stop in most
    stops, and the requests of those connections went unanswered until then. Closed again each
    ``RECLOSE_EVERY`` seconds, such a connection is closed as soon as it waits."""

    async def cleanup(self) -> None:
        closing = asyncio.ensure_future(self._close_idle_connections())
        try:
            await super().cleanup()
        finally:
            closing.cancel()
            await asyncio.wait([closing])  # ended before the loop may close

    async def _close_idle_connections(self) -> None:
        while True:
            # Mostly after aiohttp's own closing, but not always (a slow site.stop() can take
            # longer): closing before it, or again, is harmless, as a closing only ends the
            # connection's wait for a request and has it close after the one it answers.
            await asyncio.sleep(RECLOSE_EVERY)
            if self.server is not None:
                self.server.pre_shutdown()  # each connection closed: at once if it waits
