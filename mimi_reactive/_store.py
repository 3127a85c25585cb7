"""The asyncio shell around the pure core: runs commands one at a time and publishes states.

A command is queued; a single worker task takes commands in order, asks the guards for a
decision, runs the planned effects (``_effects.py``), feeds each outcome to the reducer,
and publishes every new state before it takes the next command. So commands never
interleave, and every subscriber sees every state in the same order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable

import attrs
import structlog

from ._backend import AuthBackend
from ._commands import Command
from ._config import MimiConfiguration
from ._effects import EffectResult, EffectRunner
from ._exceptions import (
    CoreClosedError,
    InvalidRouteError,
    MimiCoreError,
    NotLoggedInError,
    ReentrantCallError,
    RouteRefusedError,
    UnsupportedRouteError,
)
from ._guards import Decision, GuardContext, Proceed, Refuse, Skip, decide
from ._reasons import Reason
from ._reducer import CommandFailed, Event, RenewalFailed, SessionExpired, reduce
from ._state import SessionState, Transition
from ._storage import SessionStorage, StoredSession
from ._stream import StateStream

__all__ = ["CommandFuture", "Outcome", "SessionStore"]


@attrs.frozen
class Outcome:
    """How a command ended: the guards' decision, the state after it, and any error."""

    decision: Decision
    state: SessionState
    error: MimiCoreError | None = None

    @property
    def skipped(self) -> bool:
        """Whether the guards skipped the command (nothing to act on)."""
        return isinstance(self.decision, Skip)


class CommandFuture(concurrent.futures.Future[Outcome]):
    """The pending outcome of a dispatched command, safe to wait on from any thread.

    Blocking on it from the core's event-loop thread would stop the loop that runs the
    command, so ``result()`` and ``exception()`` raise ``ReentrantCallError`` there instead.
    """

    def __init__(self, loop_thread: int) -> None:
        super().__init__()
        self._loop_thread = loop_thread

    def result(self, timeout: float | None = None) -> Outcome:
        self._refuse_to_deadlock()
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._refuse_to_deadlock()
        return super().exception(timeout)

    def _refuse_to_deadlock(self) -> None:
        if not self.done() and threading.get_ident() == self._loop_thread:
            raise ReentrantCallError(
                "blocking on a command on the core's event-loop thread would never return; "
                "await core.auth.run(...) or add a done-callback instead"
            )


_Job = tuple[Command, CommandFuture]


class SessionStore:
    """Owns the session state; the only place that changes it.

    Must be created on the event loop that will run it. ``dispatch`` may be called from any
    thread; everything else from the loop's thread.
    """

    def __init__(
        self,
        *,
        backend: AuthBackend,
        storage: SessionStorage,
        configuration: MimiConfiguration,
        logger: structlog.typing.FilteringBoundLogger,
        restored: StoredSession | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        """The local wall clock every expiry is measured on."""
        self._capabilities = backend.capabilities
        self._configuration = configuration
        self._log = logger
        self._effects = EffectRunner(
            backend=backend,
            storage=storage,
            retry=configuration.retry,
            refresh_ahead=configuration.refresh_ahead,
            logger=logger,
            clock=clock,
        )
        initial = (
            SessionState(restored.user, transition=Transition.RESTORED)
            if restored is not None
            else SessionState()
        )
        self._stream = StateStream(
            initial,
            logger=logger,
            detach_failing_subscribers=configuration.detach_failing_subscribers,
        )
        self._session = restored
        self._session_listeners: list[Callable[[], None]] = []
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._worker = self._loop.create_task(self._work(), name="mimi_reactive.session_store")

    @property
    def session(self) -> StoredSession | None:
        """The session behind the current state, tokens included."""
        return self._session

    def refresh_due_at(self) -> float | None:
        """Local time the session's tokens are due for renewal; None if never."""
        session = self._session
        if session is None or not self._capabilities.refresh:
            return None
        if self.state.degraded:
            return self.clock()  # retry now; the keeper spaces its attempts out
        due = session.refresh_due_at(self._configuration.refresh_ahead)
        # However short the service makes lifetimes, never renew in a tight loop.
        return None if due is None else max(due, session.obtained_at + _MIN_RENEWAL_INTERVAL)

    def on_session_changed(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (on the loop) whenever the session, its tokens, or whether it
        is degraded change."""
        self._session_listeners.append(listener)

    @property
    def state(self) -> SessionState:
        """The state last published."""
        return self._stream.value

    @property
    def stream(self) -> StateStream:
        """The published states."""
        return self._stream

    def dispatch(self, command: Command) -> CommandFuture:
        """Queue ``command`` from any thread (or from inside a subscriber); never blocks.

        Returns a future of its ``Outcome``; a closed core fails it with ``CoreClosedError``.
        """
        future = CommandFuture(self._loop_thread)
        if threading.get_ident() == self._loop_thread:
            self._enqueue(command, future)
        else:
            try:
                self._loop.call_soon_threadsafe(self._enqueue, command, future)
            except RuntimeError:  # the loop itself is closed
                future.set_exception(CoreClosedError("the core's event loop is closed"))
        return future

    async def execute(self, command: Command) -> Outcome:
        """Queue ``command`` behind the ones already queued and wait for its outcome.

        Cancelling the wait drops a command that has not started; one that has started
        runs to completion, so the state is always the one before or after it.
        """
        if asyncio.current_task() is self._worker:
            raise ReentrantCallError(
                "awaiting a command from inside a running command would never return; "
                "use core.auth.dispatch(...) to queue it"
            )
        if self._closed:
            raise CoreClosedError("the core is closed")
        return await asyncio.wrap_future(self.dispatch(command))

    async def close(self, *, grace_period: float = 10.0) -> None:
        """Fail queued commands, give the running one ``grace_period`` seconds to finish
        (then cancel it: its caller gets ``CoreClosedError``), and complete the stream."""
        if not self._closed:
            self._closed = True
            while not self._queue.empty():
                job = self._queue.get_nowait()
                if job is not None and job[1].set_running_or_notify_cancel():
                    job[1].set_exception(CoreClosedError("the core was closed before this ran"))
            self._queue.put_nowait(None)
        if asyncio.current_task() is self._worker:
            return  # closed from inside a command: the worker stops after it
        done, _ = await asyncio.wait({self._worker}, timeout=grace_period)
        if not done:
            self._log.warning("session.close_cancelled_command", grace_period=grace_period)
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await self._effects.close(grace_period)

    def _enqueue(self, command: Command, future: CommandFuture) -> None:
        if self._closed:
            if future.set_running_or_notify_cancel():
                future.set_exception(CoreClosedError("the core is closed"))
            return
        self._queue.put_nowait((command, future))

    async def _work(self) -> None:
        try:
            while (job := await self._queue.get()) is not None:
                command, future = job
                if not future.set_running_or_notify_cancel():
                    continue  # the caller stopped waiting before it started
                try:
                    outcome = await self._perform(command)
                except asyncio.CancelledError:
                    future.set_exception(CoreClosedError("the core stopped while this ran"))
                    raise
                except Exception as error:  # a bug must not stop the runner or the stream
                    self._log.error("session.command_crashed", error=type(error).__name__)
                    crashed = MimiCoreError("the command failed unexpectedly")
                    crashed.__cause__ = error
                    future.set_exception(crashed)
                else:
                    future.set_result(outcome)
        finally:
            self._stream.complete()

    async def _perform(self, command: Command) -> Outcome:
        context = GuardContext(
            self.state,
            command,
            self._configuration,
            self._capabilities,
            session=self._session,
            now=self.clock(),
        )
        decision = decide(context)
        self._log.debug(
            "session.command",
            command=type(command).__name__,
            decision=type(decision).__name__,
            reason=None if isinstance(decision, Proceed) else decision.reason.value,
        )
        match decision:
            case Refuse(reason=reason):
                refusal = _REFUSALS.get(reason, RouteRefusedError)
                return Outcome(decision, self.state, refusal(reason))
            case Skip(reason=reason):
                return Outcome(decision, self.state, InvalidRouteError(reason))
            case Proceed(effects=effects):
                for effect in effects:
                    result = await self._effects.run(effect, self._session)
                    self._apply(result)
                    error = _error_of(result.event)
                    if error is not None:
                        return Outcome(decision, self.state, error)
                return Outcome(decision, self.state)
            case _:
                return Outcome(decision, self.state)

    def _apply(self, result: EffectResult) -> None:
        state = reduce(self.state, result.event)
        changed = result.session != self._session or state.degraded != self.state.degraded
        self._session = result.session
        self._log.debug("session.state", transition=state.transition.value)
        self._stream.publish(state)
        if changed:
            for listener in self._session_listeners:
                listener()


_REFUSALS: dict[Reason, type[RouteRefusedError]] = {
    Reason.BACKEND_CANNOT: UnsupportedRouteError,
    Reason.NO_USER_LOGGED_IN: NotLoggedInError,
}

# However short the lifetimes a service hands out, renew at most this often (seconds).
_MIN_RENEWAL_INTERVAL = 1.0


def _error_of(event: Event) -> MimiCoreError | None:
    match event:
        case CommandFailed(error=error) | RenewalFailed(error=error) | SessionExpired(error=error):
            return error
    return None
