"""The library's logs: stdlib loggers under ``mimi_reactive``, silent until the app asks.

Libraries follow the stdlib convention: a ``NullHandler`` on the package's logger, so nothing
is printed unless the app configures ``logging`` (``logging.basicConfig(level=logging.INFO)``,
or structlog's ``ProcessorFormatter``, which finds each event's fields on the record). An
event below the logger's level costs one cached level check and is never built.
"""

from __future__ import annotations

import logging

__all__ = ["Log"]

logging.getLogger("mimi_reactive").addHandler(logging.NullHandler())


class Log:
    """Structured events (a name and fields) on the stdlib logger ``name``.

    The record's message is ``event key=value ...``; the fields are also set on the record
    (``extra``) for structured handlers. Fields must never hold secrets.
    """

    __slots__ = ("_logger", "enabled_for")

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)
        self.enabled_for = self._logger.isEnabledFor
        """Whether an event at ``level`` would be logged: where building an event's fields
        costs something, ask first (on a command's path, the fields cost more than the check)."""

    def debug(self, event: str, **fields: object) -> None:
        if self._logger.isEnabledFor(logging.DEBUG):
            self._emit(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: object) -> None:
        if self._logger.isEnabledFor(logging.INFO):
            self._emit(logging.INFO, event, fields)

    def warning(self, event: str, **fields: object) -> None:
        if self._logger.isEnabledFor(logging.WARNING):
            self._emit(logging.WARNING, event, fields)

    def error(self, event: str, *, exc_info: BaseException | None = None, **fields: object) -> None:
        """Log an error; ``exc_info`` adds that exception's traceback (the app's own code)."""
        if self._logger.isEnabledFor(logging.ERROR):
            self._emit(logging.ERROR, event, fields, exc_info)

    def _emit(
        self,
        level: int,
        event: str,
        fields: dict[str, object],
        exc_info: BaseException | None = None,
    ) -> None:
        message = " ".join([event, *(f"{key}={value}" for key, value in fields.items())])
        self._logger.log(
            level,
            message,
            exc_info=exc_info,
            extra={"event": event, **fields},
            stacklevel=3,  # the line that logged, not this module
        )
