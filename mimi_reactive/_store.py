"""The asyncio shell around the pure core: runs commands one at a time and publishes states.

A command is queued; a single worker task takes commands in order, asks the guards for a
decision, runs the planned effects against the backend, feeds each outcome to the reducer,
and publishes every new state before it takes the next command. So commands never
interleave, and every subscriber sees every state in the same order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading

import attrs
import structlog

from ._backend import AuthBackend, BackendSession
from ._config import MimiConfiguration
from ._exceptions import (
    CoreClosedError,
    InvalidRouteError,
    MimiCoreError,
    ReentrantCallError,
    RouteRefusedError,
    UnsupportedRouteError,
)
from ._guards import (
    Authenticate,
    Decision,
    EndSession,
    GuardContext,
    Proceed,
    Refuse,
    Skip,
    decide,
)
from ._reasons import Reason
from ._reducer import CommandFailed, Event, SignedIn, SignedOut, reduce
from ._routes import (
    AuthRoute,
    Command,
    LogIn,
    LogInAnonymously,
    Promote,
    SignUp,
    SignUpAnonymously,
)
from ._state import SessionState
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
        configuration: MimiConfiguration,
        logger: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._backend = backend
        self._configuration = configuration
        self._log = logger
        self._stream = StateStream(
            SessionState(),
            logger=logger,
            detach_failing_subscribers=configuration.detach_failing_subscribers,
        )
        self._session: BackendSession | None = None
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._worker = self._loop.create_task(self._work(), name="mimi_reactive.session_store")

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
        context = GuardContext(self.state, command, self._configuration, self._backend.capabilities)
        decision = decide(context)
        self._log.debug(
            "session.command",
            command=type(command).__name__,
            decision=type(decision).__name__,
            reason=None if isinstance(decision, Proceed) else decision.reason.value,
        )
        match decision:
            case Refuse(reason=reason):
                refused = (
                    UnsupportedRouteError(reason)
                    if reason is Reason.BACKEND_CANNOT
                    else RouteRefusedError(reason)
                )
                return Outcome(decision, self.state, refused)
            case Skip(reason=reason):
                return Outcome(decision, self.state, InvalidRouteError(reason))
            case Proceed(effects=effects):
                for effect in effects:
                    event = await self._run(effect)
                    self._apply(event)
                    if isinstance(event, CommandFailed):
                        return Outcome(decision, self.state, event.error)
                return Outcome(decision, self.state)
            case _:
                return Outcome(decision, self.state)

    async def _run(self, effect: EndSession | Authenticate) -> Event:
        match effect:
            case EndSession():
                await self._revoke(self._session)
                self._session = None
                return SignedOut()
            case Authenticate(route=route, replacing=replacing):
                try:
                    session = await self._authenticate(route)
                except MimiCoreError as error:
                    return CommandFailed(error)
                except Exception as error:  # a backend's bug must not break the stream
                    wrapped = MimiCoreError(f"the backend raised {type(error).__name__}")
                    wrapped.__cause__ = error
                    return CommandFailed(wrapped)
                self._session = session
                return SignedIn(session.user, route, replacing)

    async def _authenticate(self, route: AuthRoute) -> BackendSession:
        backend = self._backend
        match route:
            case SignUpAnonymously():
                return await backend.sign_up_anonymously()
            case LogInAnonymously(anonymous_id=anonymous_id):
                assert anonymous_id is not None  # skip_blank_anonymous_id ran first
                return await backend.log_in_anonymously(anonymous_id)
            case LogIn(email=email, password=password):
                return await backend.log_in(email, password)
            case SignUp(email=email, password=password):
                return await backend.sign_up(email, password)
            case Promote(email=email, password=password):
                assert self._session is not None  # the guards require a logged-in user
                return await backend.promote(self._session, email, password)
        raise UnsupportedRouteError(Reason.BACKEND_CANNOT)

    async def _revoke(self, session: BackendSession | None) -> None:
        """Revoke at the service; a failure never keeps the user logged in."""
        if session is None:
            return
        try:
            await self._backend.log_out(session)
        except MimiCoreError as error:
            self._log.warning("session.revoke_failed", error=type(error).__name__)

    def _apply(self, event: Event) -> None:
        state = reduce(self.state, event)
        self._log.debug("session.state", transition=state.transition.value)
        self._stream.publish(state)
