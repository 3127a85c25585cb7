"""The event loop a ``BlockingMimiCore`` runs its ``MimiCore`` on, in a daemon thread of its
own, and the rules by which other threads call into it and close it."""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from ._command_queue import FORKED
from ._exceptions import CoreClosedError, ReentrantCallError
from ._future import INTERRUPTED, CallDepth, CommandFuture, holds_a_future
from ._log import Log

__all__ = ["LoopThread"]

T = TypeVar("T")

_log = Log("mimi_reactive.core")


class LoopThread:
    """An event loop running forever in a daemon thread: a forgotten close never keeps the
    process alive.

    One lock orders calls against the end: a call either is scheduled while the loop still
    runs (and is answered, by the loop or by the thread's end with ``CoreClosedError``) or is
    refused with ``CoreClosedError``; nobody waits on a loop that has stopped. From the moment
    a close begins, new calls and dispatches are refused: a thread dispatching in a loop
    cannot keep the close waiting behind its backlog.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        # Reentrant: a signal handler may dispatch while the thread it interrupted holds it.
        self._lock = threading.RLock()
        # Taken once, never released, without blocking: the first close is the one that
        # closes, and even a signal handler may take it (it never waits for the lock).
        self._close_claimed = threading.Lock()
        self._ended = False  # the loop has stopped: nothing scheduled now would run
        self._forked = False  # this is a forked copy: the thread is in the parent only
        self._waiting: set[Future[Any]] = set()  # the callers not answered yet
        self._depth = CallDepth()  # the calls of this core each thread is inside
        self._fatal: BaseException | None = None
        self._closing: asyncio.Task[Any] | None = None  # the close that stops the loop
        self.close_at_once: Callable[[], Coroutine[Any, Any, None]] | None = None
        """What closes the core at once, run as a subscriber's ``SystemExit`` ends the loop,
        after the close running then (if any) has ended: the backend's connections are
        released all the same."""
        self._thread = threading.Thread(target=self._run, name="mimi_reactive.core", daemon=True)
        _LIVE.add(self)
        self._thread.start()

    @property
    def closing(self) -> bool:
        """Whether a close has begun (or the thread ended): calls are refused."""
        return self._ended or self._close_claimed.locked()

    def call(self, work: Coroutine[Any, Any, T], *, closing: bool = False) -> T:
        """Run ``work`` on the loop and block until it is done; its error is raised here."""
        self._refuse_to_deadlock(work)
        if self._depth.calls:  # a signal handler interrupting a call of the core
            work.close()
            raise ReentrantCallError(INTERRUPTED)
        waiter: Future[T] = Future()
        self._depth.calls += 1
        try:
            with self._lock:
                if self._ended or (self._close_claimed.locked() and not closing):
                    work.close()
                    raise self._closed_error()
                self._waiting.add(waiter)
                self.loop.call_soon_threadsafe(self._begin, work, waiter, closing)
            try:
                return waiter.result()
            finally:
                with self._lock:
                    self._waiting.discard(waiter)
        finally:
            self._depth.calls -= 1

    def dispatch(self, queue: Callable[[], CommandFuture]) -> CommandFuture:
        """``queue()`` (which hands a command to the loop) while the loop takes calls; once
        a close has begun, a future failed with ``CoreClosedError``, as a closed core's
        ``dispatch`` returns: a command handed to a stopped loop would never be answered."""
        self._depth.calls += 1
        try:
            with self._lock:
                if not self._ended and not self._close_claimed.locked():
                    future = queue()
                    future.depth = self._depth  # its wait is a call of the core
                    return future
        finally:
            self._depth.calls -= 1
        refused = CommandFuture(self._thread.ident or 0)
        refused.set_exception(self._closed_error())
        return refused

    @property
    def thread(self) -> threading.Thread:
        """The thread the loop runs on, where a caller that blocks would never return."""
        return self._thread

    @property
    def forked(self) -> bool:
        """Whether this is a forked copy, whose thread stayed in the parent process."""
        return self._forked

    @property
    def fatal(self) -> BaseException | None:
        """What a subscriber raised that ended the thread (``SystemExit``, say), if any."""
        return self._fatal

    def close(
        self, make_work: Callable[[], Coroutine[Any, Any, None]], *, wait: bool = True
    ) -> None:
        """Run ``make_work()`` (the core's close) on the loop, then stop it, and wait until
        its thread has ended; a later or concurrent close only waits. Idempotent.

        A close that cannot wait returns at once, the close scheduled: one on the core's own
        thread (a subscriber's), and one made while this thread is inside a call of the core
        (a signal handler interrupting it: the call holds what the end needs); so does one
        told not to ``wait``. In a forked copy it does nothing: the core is the parent's.
        """
        if self._forked:
            return
        own_thread = threading.current_thread() is self._thread
        if wait and not own_thread:
            _refuse_inside_a_loop()
        first = self._close_claimed.acquire(blocking=False)
        if own_thread or self._depth.calls or holds_a_future() or not wait:
            if first and not self._ended:
                self._close_later(make_work())
            return
        if first:
            try:
                self.call(make_work(), closing=True)
            except CoreClosedError:
                pass  # the thread ended first (a subscriber's SystemExit): closed all the same
            except BaseException as error:
                if error is not self._fatal:
                    raise  # the subscriber's SystemExit ended the thread as this close began
        self._thread.join()

    def stop(self) -> None:
        """Stop the loop and wait for its thread; later calls raise ``CoreClosedError``."""
        self._close_claimed.acquire(blocking=False)
        with self._lock:
            if not self._ended:
                self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()

    def forget_after_fork(self) -> None:
        """In a forked child: the thread is the parent's; refuse every call at once."""
        self._forked = True
        self._ended = True
        self._lock = threading.RLock()  # another thread may have held it as the process forked
        self._waiting.clear()

    def _closed_error(self) -> CoreClosedError:
        return CoreClosedError(FORKED if self._forked else "the core is closed")

    def _close_later(self, work: Coroutine[Any, Any, None]) -> None:
        """Schedule ``work`` and the loop's stop after it, taking no lock (see ``close``)."""
        try:
            self.loop.call_soon_threadsafe(self._begin, work, Future(), True)
        except RuntimeError:  # the loop was closed meanwhile: its end closed the core
            work.close()

    def _refuse_to_deadlock(self, work: Coroutine[Any, Any, Any]) -> None:
        if threading.current_thread() is self._thread:
            work.close()
            raise ReentrantCallError(
                "a blocking call from the core's own thread (a subscriber, say) would never "
                "return; use core.auth.dispatch(...) there"
            )
        _refuse_inside_a_loop(work)

    def _begin(self, work: Coroutine[Any, Any, T], waiter: Future[T], then_stop: bool) -> None:
        if self._fatal is not None:  # run while the thread ends: its end answers the caller
            work.close()
            return
        task = self.loop.create_task(work)
        task.add_done_callback(lambda done: self._answer(waiter, done))
        if then_stop:
            self._closing = task
            task.add_done_callback(self._stop)

    def _stop(self, _: object) -> None:
        """Stop the loop as the close ends, unless it stopped already (a subscriber's
        ``SystemExit``): the thread's end then runs the loop until its own work is done,
        which a stop would cut off (``RuntimeError``: the loop stopped before it was)."""
        if not self._ended:
            self.loop.stop()

    def _answer(self, waiter: Future[T], task: asyncio.Task[T]) -> None:
        # Retrieved even when the caller hears something else: asyncio logs one never read.
        error = None if task.cancelled() else task.exception()
        if waiter.done():
            return
        if self._fatal is not None:  # the core died: whatever the call got, it gets this
            waiter.set_exception(self._fatal)
        elif task.cancelled():  # by the thread's end
            waiter.set_exception(CoreClosedError("the core closed during the call"))
        elif error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(task.result())

    def _run(self) -> None:
        """The thread: the loop until it is stopped, or until a subscriber's ``SystemExit``
        or ``KeyboardInterrupt`` ends it; then every caller still waiting is answered."""
        try:
            self.loop.run_forever()
        except BaseException as error:  # a subscriber asked the program to stop
            _log.error("core.thread_stopped", error=type(error).__name__)
            self._fatal = error
            # Told once, here: not again as the dead worker's "exception never retrieved".
            self.loop.set_exception_handler(_quiet_about_stopping)
        finally:
            with self._lock:
                self._ended = True
                waiting = list(self._waiting)
            if self._fatal is not None:
                self._run_to_end(self._close_at_the_end())
            self._run_to_end(self._cancelled_tasks())
            for waiter in waiting:
                if not waiter.done():
                    waiter.set_exception(self._fatal or CoreClosedError("the core is closed"))
            self.loop.close()

    async def _close_at_the_end(self) -> None:
        """Close the core as a subscriber's ``SystemExit`` ended the loop: ``close_at_once``,
        once the close already running (if any) has ended. Never beside it: it would find
        the backend closing and return before it is closed, and the loop's end would cancel
        the running close midway. After it, it finds nothing left to do, or finishes what
        that close was cut off from (it raised the ``SystemExit`` itself)."""
        if self._closing is not None:
            await asyncio.wait({self._closing})
        if self.close_at_once is not None:
            await self.close_at_once()

    async def _cancelled_tasks(self) -> None:
        """Cancel what still runs on the loop (calls that raced the stop) and wait until it
        has ended, as ``asyncio.run`` does; a turn of the loop even with no task left, so
        the answers already scheduled run."""
        tasks = asyncio.all_tasks(self.loop) - {asyncio.current_task(self.loop)}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run_to_end(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` on the stopped loop; a subscriber's ``SystemExit`` again only logged."""
        try:
            self.loop.run_until_complete(work)
        except BaseException as error:
            _log.error("core.thread_stopped", error=type(error).__name__)


_LIVE: weakref.WeakSet[LoopThread] = weakref.WeakSet()  # the threads a fork leaves behind


def _forget_all_after_fork() -> None:
    for loop_thread in list(_LIVE):
        loop_thread.forget_after_fork()


os.register_at_fork(after_in_child=_forget_all_after_fork)


def _quiet_about_stopping(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    if not isinstance(context.get("exception"), SystemExit | KeyboardInterrupt):
        loop.default_exception_handler(context)


def _refuse_inside_a_loop(work: Coroutine[Any, Any, Any] | None = None) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop running here: blocking is fine
    if work is not None:
        work.close()
    raise ReentrantCallError(
        "BlockingMimiCore blocks the calling thread, and this one runs an event loop; "
        "use MimiCore (await MimiCore.start(...)) in async code"
    )
