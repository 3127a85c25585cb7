"""Keeping secrets out of the stdlib log records the server process writes.

aiohttp logs a malformed request with the exception, whose message can quote the raw header
line (a client id and secret in base64) or request line; asyncio logs failed callbacks with
their arguments. Our own structlog events never carry secrets; these records might, so they
are reduced to their logger, template, harmless arguments and exception type before any
handler sees them.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import signal
import sys
from typing import TextIO, cast

import structlog
from aiohttp.http import HttpProcessingError

__all__ = [
    "ClientFaultFilter",
    "LineHandler",
    "NamedPrintLogger",
    "RedactingFilter",
    "debug_enabled",
    "http_logger",
    "server_logger",
    "write_line",
]

_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[a-zA-Z%]")
_HTTP_LOGGER = "mimi_reactive.server.http"
# Signal names as gunicorn writes them: SIGTERM, and term as its arbiter says.
_SIGNAL_NAMES = frozenset(
    name for each in signal.Signals for name in (each.name, each.name.removeprefix("SIG").lower())
)


# gunicorn's arbiter lines whose arguments are its own: its version, the address it listens
# at, its worker class, "Master", the reason it stops ("Worker failed to boot."). Never from a
# request nor a secret, and what an operator needs to read.
_GUNICORN_OWN = frozenset(
    {
        "Starting gunicorn %s",
        "Listening at: %s (%s)",
        "Listening at: %s",
        "Using worker: %s",
        "Hang up: %s",
        "Shutting down: %s",
        "Reason: %s",
    }
)


class RedactingFilter(logging.Filter):
    """Keep a record's template, harmless arguments and exception type; drop every other
    argument and the traceback. gunicorn's own lines (``_GUNICORN_OWN``) are kept whole."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "gunicorn.error" and record.msg in _GUNICORN_OWN and not record.exc_info:
            return True
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        args = record.args if isinstance(record.args, tuple) else ()
        kept: list[object] = []
        if record.args:
            values = iter(args)

            def redact(placeholder: re.Match[str]) -> str:
                if placeholder[0] == "%%":
                    return "%%"
                value = next(values, None)
                if "*" in placeholder[0] or "(" in placeholder[0] or not _harmless(value):
                    return "<redacted>"
                kept.append(value)
                return placeholder[0]

            template = _PLACEHOLDER.sub(redact, template)
            if not kept:  # no arguments left: the template is written as it is
                template = template.replace("%%", "%")
        if record.exc_info and record.exc_info[1] is not None:
            template += f" ({type(record.exc_info[1]).__name__})"
        record.msg, record.args = template, tuple(kept)
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def _harmless(value: object) -> bool:
    """Whether ``value`` can be written as it is: a number (a pid, an exit code), an IP
    address (the peer) or a signal name. Any other string may come from a request."""
    if isinstance(value, int | float):
        return True
    if not isinstance(value, str):
        return False
    if value in _SIGNAL_NAMES:
        return True
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


class ClientFaultFilter(logging.Filter):
    """aiohttp logs every request its parser refuses (a bad header, a line too long) as an
    error: a client's fault, so it is written at info, or not at all below that level."""

    def filter(self, record: logging.LogRecord) -> bool:
        fault = record.exc_info[1] if record.exc_info else None
        if isinstance(fault, HttpProcessingError) and record.levelno > logging.INFO:
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


def http_logger() -> logging.Logger:
    """The logger aiohttp's request handler writes to: client faults at info, every record
    redacted."""
    logger = logging.getLogger(_HTTP_LOGGER)
    present = {type(kept) for kept in logger.filters}  # an app's own filters may be there
    for kind in (ClientFaultFilter, RedactingFilter):  # first: redaction drops the exception
        if kind not in present:
            logger.addFilter(kind())
    return logger


def write_line(stream: TextIO, line: str) -> None:
    """Write ``line`` and its newline to ``stream`` in one write call: processes sharing one
    stderr (``--workers N``) then never merge two lines into one, as two writes (a line, then
    its newline, on an unbuffered stream) let them do. A pipe takes one write whole up to
    PIPE_BUF (4 KiB on Linux): a longer line may still interleave with another process's. A
    stream with no file descriptor (a test's capture) is written and flushed."""
    text = line + "\n"
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        stream.write(text)
        stream.flush()
        return
    stream.flush()  # what the stream holds goes first
    data = text.encode(stream.encoding or "utf-8", "backslashreplace")
    while data:  # a pipe may take a long line in parts
        data = data[os.write(descriptor, data) :]


class NamedPrintLogger:
    """The command line's structlog logger: writes each event to stderr as one line, in one
    write (``write_line``), and keeps the name it was got by (``mimi_reactive.server``) for
    ``add_logger_name``, as a stdlib logger would."""

    def __init__(self, name: str = "mimi_reactive") -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"NamedPrintLogger({self.name!r})"

    def msg(self, message: str) -> None:
        write_line(sys.stderr, message)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class LineHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes each record as one line in one write (``write_line``)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            write_line(self.stream, self.format(record))
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


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
