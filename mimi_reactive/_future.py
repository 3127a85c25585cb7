"""The pending outcome of a command dispatched from any thread (``core.auth.dispatch``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Generator
from typing import Any

from ._exceptions import ReentrantCallError
from ._messages import Outcome

__all__ = ["CommandFuture"]


class CommandFuture(concurrent.futures.Future[Outcome]):
    """The pending outcome of a dispatched command: ``await`` it on any event loop, or wait
    on it (``result()``) from any other thread.

    Blocking on it from the core's event-loop thread would stop the loop that runs the
    command, so ``result()`` and ``exception()`` raise ``ReentrantCallError`` there instead.
    """

    def __init__(self, loop_thread: int) -> None:
        super().__init__()
        self._loop_thread = loop_thread

    def __await__(self) -> Generator[Any, None, Outcome]:
        return asyncio.wrap_future(self).__await__()

    def result(self, timeout: float | None = None) -> Outcome:
        """Wait up to ``timeout`` seconds for the outcome and return it (what the command
        raised, it raises); ``ReentrantCallError`` on the core's event-loop thread."""
        self._refuse_to_deadlock()
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait up to ``timeout`` seconds and return what the command raised, or ``None``;
        ``ReentrantCallError`` on the core's event-loop thread."""
        self._refuse_to_deadlock()
        return super().exception(timeout)

    def _refuse_to_deadlock(self) -> None:
        if not self.done() and threading.get_ident() == self._loop_thread:
            raise ReentrantCallError(
                "blocking on a command on the core's event-loop thread would never return; "
                "await it, or await core.auth.run(...), instead"
            )
