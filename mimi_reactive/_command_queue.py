"""The queue that runs a store's commands one at a time, in order, on its event loop.

A command is queued; a single worker task takes commands in order and has the store run
each to its outcome before it takes the next, so commands never interleave. A command the
guards answer without effects (already logged in, blank id, refused) needs no turn of the
worker when nothing is queued or running: it is decided at once, in order. One with
effects, awaited on the loop with nothing ahead of it, runs at once in the worker's name
(``_eager``) until it first waits, when the worker takes it over: one that never waits costs
no turn of the loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import os
import threading
import weakref
from collections.abc import Coroutine
from typing import Any, Protocol

from . import _eager
from ._effect_runner import EffectRunner
from ._exceptions import CoreClosedError, MimiCoreError, ReentrantCallError, WrongEventLoopError
from ._future import CommandFuture, Pending, claim, resolve, stopped
from ._log import Log
from ._messages import Command, Decision, Outcome, Proceed, Refused, Satisfied, Skipped

__all__ = ["FORKED", "CommandQueue", "Commands"]

FORKED = (
    "the core was started in the process this one was forked from, and its event loop did "
    "not come along: start the core after forking"
)

_log = Log("mimi_reactive.session")

# The decision is carried when the caller already made it (nothing was queued or running,
# so nothing can change the state before the worker takes the job); a command the caller
# started itself (``_run_now``) is carried as what is left of it, and always run.
_Job = tuple[Command, Pending, Decision | None, _eager.Started[Outcome] | None]


class Commands(Protocol):
    """The store's side of a command: what the queue has it decide and run."""

    def decide(self, command: Command) -> Decision:
        """The guards' decision on ``command`` in the state now."""

    def settle(self, decision: Skipped | Satisfied | Refused) -> Outcome:
        """The outcome of a command the guards answered without effects."""

    def perform(self, command: Command, decision: Decision | None) -> Coroutine[Any, Any, Outcome]:
        """Run ``command`` (deciding it first when ``decision`` is None) to its outcome."""

    def apply_committed(self) -> None:
        """Publish what a command stopped midway had already stored."""

    def end(self) -> None:
        """Complete the streams: the worker has ended."""

    async def release(self) -> None:
        """Release the backend's connections, never raising: the worker was cancelled with the
        core unclosed (``asyncio.run`` returning), or stopped by a subscriber's ``SystemExit``,
        so no ``close()`` may ever run, or finish, on this loop."""


class CommandQueue:
    """Runs ``commands`` one at a time on the loop it was created on.

    ``dispatch`` may be called from any thread; everything else from the loop's thread.
    """

    def __init__(self, commands: Commands, effects: EffectRunner) -> None:
        self._commands = commands
        self._effects = effects
        # The commands waiting for the worker (None: stop), and while it waits for one, the
        # future that wakes it: lighter than an asyncio.Queue on every command's path.
        self._jobs: collections.deque[_Job | None] = collections.deque()
        self._wake: asyncio.Future[None] | None = None
        self._busy = False
        self.closed = False
        """Whether ``close`` was called or the worker ended: commands get ``CoreClosedError``."""
        self.forked = False
        """Whether this is a forked copy, whose loop runs (if at all) in the parent only."""
        self._closed_why = "the core is closed"
        # Whether close() began: a worker that ends without it (cancelled as asyncio.run
        # ends, or stopped by a subscriber's SystemExit) releases the backend itself.
        self._close_begun = False
        # Held while a thread checks ``closed`` and hands a command to the loop, and while
        # the ending worker sets it: a command handed over before is in the loop's queue
        # ahead of the loop's end (answered), one after fails at once (none waits forever).
        self._handover = threading.RLock()  # a signal handler may dispatch in a dispatch
        self.loop = asyncio.get_running_loop()
        """The event loop the commands run on."""
        self._loop_thread = threading.get_ident()
        self._context = contextvars.copy_context()  # the worker's: _run_now runs in it too
        self._stopped = False
        """Whether a subscriber's ``SystemExit`` or ``KeyboardInterrupt`` stopped the worker."""
        self._worker = self.loop.create_task(
            self._work(), name="mimi_reactive.session_store", context=self._context
        )
        self._worker.add_done_callback(self._retrieve_stop)
        _LIVE.add(self)

    def dispatch(self, command: Command) -> CommandFuture:
        """Queue ``command`` from any thread (or from inside a subscriber); never blocks.

        Returns an awaitable future of its ``Outcome``; a closed core fails it with
        ``CoreClosedError``.
        """
        future = CommandFuture(self._loop_thread)
        if threading.get_ident() == self._loop_thread:
            self._enqueue(command, future)
            return future
        with self._handover:
            if self.closed:  # the worker ended: the loop may never run a callback again
                future.set_exception(CoreClosedError(self._closed_why))
                return future
            try:
                self.loop.call_soon_threadsafe(self._enqueue, command, future)
            except RuntimeError:  # the loop itself is closed
                future.set_exception(CoreClosedError("the core's event loop is closed"))
        return future

    async def run(self, command: Command) -> Outcome:
        """Run ``command`` after the ones already queued and return its outcome.

        Cancelling the wait drops a command that has not started; one that has started
        runs to completion, so the state is always the one before or after it.
        """
        if asyncio.get_running_loop() is not self.loop:  # inline: every command passes
            raise self.other_loop_error()
        if self.closed:
            raise CoreClosedError(self._closed_why)
        if self._busy and asyncio.current_task() is self._worker:
            raise ReentrantCallError(
                "awaiting a command from inside a running command would never return; "
                "use core.auth.dispatch(...) to queue it"
            )
        decision = None
        if not self._busy and not self._jobs:
            # Nothing ahead of it: deciding now keeps the order, and most decisions that
            # need no effects end here without a turn of the worker.
            decision = self._commands.decide(command)
            if not isinstance(decision, Proceed):
                return self._commands.settle(decision)
            if _eager.SUPPORTED:
                return await self._run_now(command, decision)
        future: asyncio.Future[Outcome] = self.loop.create_future()
        self._push((command, future, decision, None))
        return await future

    def forget_after_fork(self) -> None:
        """In a forked child: the worker runs in the parent only; refuse every command at
        once (a dispatch from another thread would wait forever on the copy of its loop)."""
        self.forked = self.closed = True
        self._closed_why = FORKED
        self._handover = threading.RLock()  # another thread may have held it at the fork

    def refuse_other_loop(self) -> None:
        """Raise ``other_loop_error()`` unless called on the queue's own loop: a command
        awaited from another loop would be queued here and its answer never reach it."""
        if asyncio.get_running_loop() is not self.loop:
            raise self.other_loop_error()

    def other_loop_error(self) -> MimiCoreError:
        """What a call awaited on another event loop raises: ``WrongEventLoopError`` while
        the core runs on its own (``dispatch`` is the way in); ``CoreClosedError`` once it is
        closed or that loop has ended, when no way in is left."""
        if self.loop.is_closed():
            return CoreClosedError("the core's event loop is closed")
        if self.closed:
            return CoreClosedError(self._closed_why)
        return WrongEventLoopError()

    async def close(self, *, grace_period: float) -> None:
        """Fail queued commands, give the running one ``grace_period`` seconds to finish
        (then cancel it, once a storage write it runs has ended and its state is published,
        or after ``max(grace_period, WRITE_END_SECONDS)`` more, when the write is abandoned:
        its caller gets ``CoreClosedError``); the worker then ends. Cancelled, it raises at
        once, the worker left to end in its own time."""
        self.begin_close()
        if self._busy and asyncio.current_task() is self._worker:
            return  # closed from inside a command: the worker stops after it
        done, _ = await asyncio.wait({self._worker}, timeout=grace_period)
        if not done:
            _log.warning("session.close_cancelled_command", grace_period=grace_period)
            await self._effects.writes.ended(grace_period)  # its event applied first
            self._worker.cancel()
            # Waited for, not awaited: what the worker ends with (its cancellation, or a
            # subscriber's SystemExit as it published what the command had stored, which
            # has stopped the loop already) is not raised here, and cuts off no clean-up;
            # the caller's own cancellation is (close() cancelled midway).
            await asyncio.wait({self._worker})

    def begin_close(self) -> None:
        """The part of ``close`` that does not wait: refuse commands from now on, fail the
        queued ones, and have the worker stop after the running one. Idempotent."""
        self._close_begun = True  # the close releases the backend, even once stopped
        if self.closed:
            return
        self.closed = True
        started = [job for job in self._jobs if job is not None and job[3] is not None]
        while self._jobs:
            job = self._jobs.popleft()
            if job is not None and job[3] is None and claim(job[1]):
                job[1].set_exception(CoreClosedError("the core was closed before this ran"))
        self._jobs.extend(started)  # running already: it finishes, as the worker's would
        self._push(None)

    def _enqueue(self, command: Command, future: CommandFuture) -> None:
        if self.closed:
            if future.set_running_or_notify_cancel():
                future.set_exception(CoreClosedError(self._closed_why))
            return
        self._push((command, future, None, None))

    async def _run_now(self, command: Command, decision: Proceed) -> Outcome:
        """Run a command nothing is ahead of at once, as the worker would run it (in its name
        and context, ``_eager``), until it ends or first waits; what is left then goes to the
        worker, ahead of anything queued meanwhile, and the caller waits for it as for any
        queued command (cancelling that wait leaves it running)."""
        self._busy = True
        self._effects.hold_revocations()  # they start where a task's first step would
        stopping = False
        try:
            started = _eager.start(
                self._worker, self._context, self._commands.perform(command, decision)
            )
        except asyncio.CancelledError as error:  # raised, not delivered: the core cannot go on
            self._busy = False
            self._publish_committed()
            self._stop_now(error)
            closed = CoreClosedError("the core stopped while this ran")
            raise closed from error
        except MimiCoreError:  # typed, not a bug (a clock gone wrong): the caller's as is
            self._busy = False
            raise
        except Exception as error:
            self._busy = False
            raise _crashed(error) from error
        except BaseException as error:  # SystemExit, KeyboardInterrupt: raised to the caller
            self._busy = False
            stopping = True
            self._stop_now(error)
            raise
        finally:
            self._effects.release_revocations(start=not stopping)
        if not isinstance(started, _eager.Started):
            self._busy = False
            return started
        future: asyncio.Future[Outcome] = self.loop.create_future()
        self._jobs.appendleft((command, future, decision, started))  # it is still _busy
        self._wake_worker()
        return await future

    def _stop_now(self, error: BaseException, *running: Pending) -> None:
        """Stop as the worker does when a command run by ``_run_now`` raised ``error``
        (the program is to stop): every caller hears it (``running`` first), the streams
        complete."""
        self._stop_all(error, *running)
        self._push(None)  # the worker ends
        self._commands.end()

    def _publish_committed(self, *running: Pending) -> None:
        """Publish what a command stopped midway had stored (``apply_committed``). What a
        subscriber raises as it hears (``SystemExit``, which the stream lets through) stops
        the core as in a command, every caller hearing it (``running`` first), and is then
        raised: never in place of an answer, for which a caller would wait for ever."""
        try:
            self._commands.apply_committed()
        except BaseException as error:
            self._stop_now(error, *running)
            raise

    def _stop_all(self, error: BaseException, *running: Pending) -> None:
        """The program is to stop (``error``): refuse commands from now on, and every caller
        waiting, ``running`` first, hears it (none may wait for ever)."""
        self.closed = True
        queued = [job[1] for job in self._jobs if job is not None]
        self._jobs.clear()
        for pending in (*running, *queued):
            resolve(pending, error=stopped(pending, error))

    def _started_ahead(self) -> _eager.Started[Outcome] | None:
        """The command started at once in the worker's name that it is yet to take over."""
        job = self._jobs[0] if self._jobs else None
        return None if job is None else job[3]

    def _push(self, job: _Job | None) -> None:
        self._jobs.append(job)
        self._wake_worker()

    def _wake_worker(self) -> None:
        wake = self._wake
        if wake is not None:
            self._wake = None
            if not wake.done():  # done only if the worker was cancelled while it waited
                wake.set_result(None)

    async def _work(self) -> None:
        try:
            while True:
                if not self._jobs:
                    self._wake = self.loop.create_future()
                    try:
                        await self._wake
                    except asyncio.CancelledError as cancelled:
                        if (started := self._started_ahead()) is None:
                            raise
                        # Its cancellation came before the worker took the command over
                        # (a timeout due at once, asyncio.run ending): it is the command's.
                        started.throw_when_awaited(cancelled)
                    continue
                job = self._jobs.popleft()
                if job is None:
                    break
                command, future, decision, started = job
                if started is None and not claim(future):
                    continue  # the caller stopped waiting before it started
                self._busy = True
                work = self._commands.perform(command, decision) if started is None else started
                try:
                    outcome = await work
                except asyncio.CancelledError:
                    self._publish_committed(future)  # stored already: the state must say so
                    resolve(future, error=CoreClosedError("the core stopped while this ran"))
                    raise
                except MimiCoreError as error:  # typed, not a bug (a clock gone wrong)
                    resolve(future, error=error)
                except Exception as error:  # a bug must not stop the worker or the stream
                    resolve(future, error=_crashed(error))
                except BaseException as error:  # SystemExit, KeyboardInterrupt: not a bug
                    # It ends the loop (the program is to stop); no caller may wait for ever:
                    # this one and every queued one hear it, later ones CoreClosedError.
                    self._stop_all(error, future)
                    raise
                else:
                    resolve(future, outcome=outcome)
                finally:
                    self._busy = False
        except (SystemExit, KeyboardInterrupt):
            self._stopped = True
            raise
        finally:
            await self._end()

    async def _end(self) -> None:
        """As the worker ends: refuse commands and complete the streams. Cancelled unclosed
        (``asyncio.run`` ending), or stopped (a subscriber's ``SystemExit``, one as the
        streams complete too), the loop is ending, and no ``close()`` may ever run on it, or
        finish one running (``asyncio.run``'s clean-up cancels it): the backend is released
        here, while the loop still runs (not reported leaked at exit)."""
        self._refuse_queued()
        try:
            self._commands.end()
        except (SystemExit, KeyboardInterrupt):
            self._stopped = True
            raise
        finally:
            if self._stopped or not self._close_begun:
                await self._commands.release()

    def _retrieve_stop(self, worker: asyncio.Task[None]) -> None:
        """The worker ended: a ``SystemExit`` it stopped with was raised out of the loop (the
        program stops), so it is retrieved, not reported by asyncio as never retrieved."""
        if self._stopped and not worker.cancelled():  # cancelled as it released the backend
            worker.exception()

    def _refuse_queued(self) -> None:
        """Close the queue as its worker ends, however it ends (close, or the loop cancelling
        its tasks as ``asyncio.run`` returns with the core unclosed): no command may wait for
        it, as a thread blocked on ``dispatch(...).result()`` would keep the program alive."""
        with self._handover:
            self.closed = True
        while self._jobs:
            job = self._jobs.popleft()
            if job is not None:
                resolve(job[1], error=CoreClosedError("the core stopped before this ran"))


_LIVE: weakref.WeakSet[CommandQueue] = weakref.WeakSet()  # what a fork copies unrunnable


def _forget_all_after_fork() -> None:
    for queue in list(_LIVE):
        queue.forget_after_fork()


os.register_at_fork(after_in_child=_forget_all_after_fork)


def _crashed(error: Exception) -> MimiCoreError:
    """What the caller of a command that raised ``error`` (a bug) hears; logged."""
    _log.error("session.command_crashed", error=type(error).__name__)
    crashed = MimiCoreError("the command failed unexpectedly")
    crashed.__cause__ = error
    return crashed
