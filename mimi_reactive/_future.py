"""The pending outcome of a queued command, and how the queue answers it: a ``CommandFuture``
for a command dispatched from any thread (``core.auth.dispatch``), an asyncio future for a
caller on the core's loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Generator, Iterator
from typing import Any

from ._exceptions import CoreClosedError, ReentrantCallError
from ._messages import Outcome

__all__ = [
    "INTERRUPTED",
    "CallDepth",
    "CommandFuture",
    "Pending",
    "claim",
    "holds_a_future",
    "resolve",
    "stopped",
]


class CallDepth(threading.local):
    """How many calls of one core (a dispatched command's wait among them) the thread is
    inside: more than one only when a signal handler interrupted one."""

    calls = 0


class _Holding(threading.local):
    locks = 0  # the CommandFuture locks the thread holds, or is about to take


_HOLDING = _Holding()


def holds_a_future() -> bool:
    """Whether this thread holds (or is taking) a ``CommandFuture``'s lock: a signal handler
    that interrupted it must not wait for the core's loop, which needs that lock to answer
    the future (``done()``, ``result()`` take it, and it is held as their wait ends)."""
    return _HOLDING.locks > 0


class _CountedLock:
    """A ``CommandFuture``'s lock (an ``RLock``, as ``Future``'s), counted in ``_HOLDING``
    from before it is taken until after it is let go: never held uncounted."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        _HOLDING.locks += 1
        taken = False
        try:
            taken = self._lock.acquire(blocking, timeout)
        finally:
            if not taken:
                _HOLDING.locks -= 1
        return taken

    def release(self) -> None:
        self._lock.release()
        _HOLDING.locks -= 1

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()

    # What threading.Condition uses to let go of the lock while it waits, and take it back.
    def _is_owned(self) -> bool:
        return self._lock._is_owned()  # type: ignore[attr-defined,no-any-return]

    def _release_save(self) -> tuple[int, int]:
        state: tuple[int, int] = self._lock._release_save()  # type: ignore[attr-defined]
        _HOLDING.locks -= state[0]
        return state

    def _acquire_restore(self, state: tuple[int, int]) -> None:
        _HOLDING.locks += state[0]
        self._lock._acquire_restore(state)  # type: ignore[attr-defined]


class CommandFuture(concurrent.futures.Future[Outcome]):
    """The pending outcome of a dispatched command: ``await`` it on any event loop, or wait
    on it (``result()``) from any other thread.

    Blocking on it from the core's event-loop thread would stop the loop that runs the
    command, so ``result()`` and ``exception()`` raise ``ReentrantCallError`` there instead.
    """

    def __init__(self, loop_thread: int) -> None:
        super().__init__()
        self._condition = threading.Condition(_CountedLock())  # type: ignore[arg-type]
        self._loop_thread = loop_thread
        self.depth: CallDepth | None = None
        """Counts this future's waits as calls of a ``BlockingMimiCore`` (set by its
        ``dispatch``): a signal handler interrupting one then schedules its ``close()``, as
        the waiting thread may hold this future's lock, which the loop needs to answer it."""

    def __await__(self) -> Generator[Any, None, Outcome]:
        return asyncio.wrap_future(self).__await__()

    def result(self, timeout: float | None = None) -> Outcome:
        """Wait up to ``timeout`` seconds for the outcome and return it (what the command
        raised, it raises); ``ReentrantCallError`` on the core's event-loop thread."""
        self._refuse_to_deadlock()
        with self._counted():
            return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait up to ``timeout`` seconds and return what the command raised, or ``None``;
        ``ReentrantCallError`` on the core's event-loop thread."""
        self._refuse_to_deadlock()
        with self._counted():
            return super().exception(timeout)

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        """The wait, counted in ``depth`` if set."""
        depth = self.depth
        if depth is None:
            yield
            return
        depth.calls += 1
        try:
            yield
        finally:
            depth.calls -= 1

    def _refuse_to_deadlock(self) -> None:
        if self.done():
            return
        if threading.get_ident() == self._loop_thread:
            # A BlockingMimiCore's (depth set) is waited on by code that is not async.
            advice = _NOT_ASYNC if self.depth is not None else _ASYNC
            raise ReentrantCallError(f"{_ON_THE_LOOP}; {advice}")
        if self.depth is not None and self.depth.calls:
            raise ReentrantCallError(INTERRUPTED)


_ON_THE_LOOP = "blocking on a command on the core's event-loop thread would never return"
_ASYNC = "await it, or await core.auth.run(...), instead"
_NOT_ASYNC = "let the states stream tell its outcome, or use add_done_callback(...) instead"

INTERRUPTED = (
    "a blocking call of the core from a signal handler that interrupted another could "
    "wait for ever (the interrupted call holds what the core needs to answer); dispatch "
    "the command, or close() the core, from the handler instead"
)


# A queued command's pending outcome: an asyncio future for callers on the loop (cheap), a
# CommandFuture for dispatch from anywhere.
Pending = asyncio.Future[Outcome] | CommandFuture


def claim(future: Pending) -> bool:
    """Mark a queued command's future as started; False if its caller gave up waiting."""
    if isinstance(future, CommandFuture):
        return future.set_running_or_notify_cancel()
    return not future.done()


def stopped(future: Pending, error: BaseException) -> BaseException:
    """What a caller hears when a subscriber's ``SystemExit`` (say) stopped the worker: a
    thread waiting on a dispatch that same exception; a caller on the loop ``CoreClosedError``
    (re-raised in a task there, it would stop the loop again, in the middle of its close)."""
    if isinstance(future, CommandFuture):
        return error
    closed = CoreClosedError("the core stopped while this waited")
    closed.__cause__ = error
    return closed


def resolve(
    future: Pending, *, outcome: Outcome | None = None, error: BaseException | None = None
) -> None:
    """Answer a queued command's caller with ``outcome`` or ``error``, unless it is answered."""
    if future.done():  # an awaiting caller was cancelled while the command ran
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert outcome is not None
        future.set_result(outcome)
