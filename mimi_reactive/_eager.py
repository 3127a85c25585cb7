"""Running a coroutine at once, up to its first wait, in the name of a task that is waiting
(what Python 3.12's eager tasks do for a new task), so work that never waits costs no turn
of the event loop; the task then awaits what is left.

While the coroutine runs, ``asyncio.current_task()`` is that task and the context is that
task's: a timeout entered on the way cancels the task that goes on with the work, and what
runs sees the same task and context before and after the first wait. A cancellation of the
task before it awaits what is left (a timeout due at once) is the coroutine's
(``Started.throw_when_awaited``).

Python 3.12's public eager tasks (``asyncio.Task(..., eager_start=True)``) run a coroutine at
once as a new task, not as one that exists: used here, each command would cost the task this
saves, and run in a task other than the store's worker (the one its close cancels and its
reentrancy check knows). So the private hooks stay the way on every version that has them.
"""

from __future__ import annotations

import asyncio
import contextvars
from asyncio import tasks
from collections.abc import Callable, Coroutine, Generator
from typing import Any, Generic, TypeVar

__all__ = ["SUPPORTED", "Started", "start"]

T = TypeVar("T")

# asyncio's own hooks for whose turn it is (3.11 to 3.14 have both); without them every
# command takes the hop to the worker, as before.
_enter: Callable[[asyncio.AbstractEventLoop, asyncio.Task[Any]], None] | None = getattr(
    tasks, "_enter_task", None
)
_leave: Callable[[asyncio.AbstractEventLoop, asyncio.Task[Any]], None] | None = getattr(
    tasks, "_leave_task", None
)
SUPPORTED = _enter is not None and _leave is not None


class Started(Generic[T]):
    """A coroutine ``start`` ran up to its first wait: ``await`` it, in the task it ran as,
    for the rest (each wait handed to that task, as if the task had run it from the start)."""

    __slots__ = ("_coroutine", "_thrown", "_waiting_on")

    def __init__(self, coroutine: Coroutine[Any, Any, T], waiting_on: Any) -> None:
        self._coroutine = coroutine
        self._waiting_on = waiting_on
        self._thrown: BaseException | None = None

    def throw_when_awaited(self, error: BaseException) -> None:
        """Have the coroutine resume with ``error`` (the task was cancelled before it awaited
        this: a cancellation is the coroutine's, as it runs in the task's name), cancelling
        what it waits on, as cancelling a task cancels the future it waits on."""
        self._thrown = error
        if asyncio.isfuture(self._waiting_on):
            self._waiting_on.cancel()

    def __await__(self) -> Generator[Any, None, T]:
        coroutine, waiting_on, error = self._coroutine, self._waiting_on, self._thrown
        while True:
            if error is None:
                try:
                    yield waiting_on  # the task waits on it, as it does for its own coroutine
                except GeneratorExit:
                    coroutine.close()
                    raise
                except BaseException as thrown:  # the task was cancelled: so is the coroutine
                    error = thrown
                else:
                    # Resumed as a task resumes it; from here the task drives it directly.
                    return (yield from coroutine.__await__())
            try:
                waiting_on = coroutine.throw(error)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            error = None


def start(
    task: asyncio.Task[Any],
    context: contextvars.Context,
    coroutine: Coroutine[Any, Any, T],
) -> T | Started[T]:
    """Run ``coroutine`` as ``task`` (which must be waiting) in ``context`` until it returns
    (its result) or first waits (what is left, for ``task`` to await); what it raises, raises.
    Call it from a task on ``task``'s loop: that task is the current one again after."""
    assert _enter is not None
    assert _leave is not None
    loop = task.get_loop()
    caller = asyncio.current_task(loop)
    if caller is not None:
        _leave(loop, caller)
    _enter(loop, task)
    try:
        waiting_on = context.run(coroutine.send, None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    finally:
        _leave(loop, task)
        if caller is not None:
            _enter(loop, caller)
    return Started(coroutine, waiting_on)
