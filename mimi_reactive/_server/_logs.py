"""Keeping secrets out of the stdlib log records the server process writes.

aiohttp logs a malformed request with the exception, whose message can quote the raw header
line (a client id and secret in base64) or request line; asyncio logs failed callbacks with
their arguments. Our own structlog events never carry secrets; these records might, so they
are reduced to their logger, template and exception type before any handler sees them.
"""

from __future__ import annotations

import logging
import re
from typing import cast

import structlog

__all__ = ["RedactingFilter", "debug_enabled", "http_logger", "server_logger"]

_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[a-zA-Z%]")
_HTTP_LOGGER = "mimi_reactive.server.http"


class RedactingFilter(logging.Filter):
    """Keep a record's template and exception type; drop its arguments and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        if record.args:
            template = _PLACEHOLDER.sub("<redacted>", template)
        if record.exc_info and record.exc_info[1] is not None:
            template += f" ({type(record.exc_info[1]).__name__})"
        record.msg, record.args = template, ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def http_logger() -> logging.Logger:
    """The logger aiohttp's request handler writes to, with its records redacted."""
    logger = logging.getLogger(_HTTP_LOGGER)
    if not any(isinstance(each, RedactingFilter) for each in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger


def server_logger() -> structlog.typing.FilteringBoundLogger:
    """The server's own event logger when the app passed none.

    Where structlog was configured (the ``mimi-reactive`` command does it, an app may), its
    configuration is used. Otherwise, as a library should, events go to the stdlib logger
    ``mimi_reactive.server``, silent until the app configures ``logging``.
    """
    if structlog.is_configured():
        return cast(structlog.typing.FilteringBoundLogger, structlog.get_logger(_SERVER_LOGGER))
    return cast(
        structlog.typing.FilteringBoundLogger,
        structlog.wrap_logger(
            logging.getLogger(_SERVER_LOGGER),
            processors=[
                structlog.stdlib.filter_by_level,
                structlog.processors.KeyValueRenderer(key_order=["event"], sort_keys=True),
            ],
            wrapper_class=structlog.stdlib.BoundLogger,
        ),
    )


def debug_enabled(log: object) -> bool:
    """Whether a debug event to ``log`` would be written: building one per request costs more
    than the rest of ``GET /health``, so the server asks first. Loggers that cannot say
    (an app's own structlog wrapper) are asked to write it."""
    check = getattr(log, "is_enabled_for", None)
    return True if check is None else bool(check(logging.DEBUG))


_SERVER_LOGGER = "mimi_reactive.server"
