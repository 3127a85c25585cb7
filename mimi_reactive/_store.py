"""The asyncio shell around the pure core: runs commands one at a time and publishes states.

A command is queued; a single worker task takes commands in order, asks the guards for a
decision, runs the planned effects against the backend, feeds each outcome to the reducer,
and publishes every new state before it takes the next command. So commands never
interleave, and every subscriber sees every state in the same order.
"""

from __future__ import annotations

import asyncio

import attrs
import structlog

from ._backend import AuthBackend, BackendSession
from ._config import MimiConfiguration
from ._exceptions import (
    CoreClosedError,
    InvalidRouteError,
    MimiCoreError,
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

__all__ = ["Outcome", "SessionStore"]


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


_Job = tuple[Command, "asyncio.Future[Outcome]"]


class SessionStore:
    """Owns the session state; the only place that changes it."""

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
        self._stream = StateStream(SessionState(), logger=logger)
        self._session: BackendSession | None = None
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._closed = False
        self._worker = asyncio.get_running_loop().create_task(
            self._work(), name="mimi_reactive.session_store"
        )

    @property
    def state(self) -> SessionState:
        """The state last published."""
        return self._stream.value

    @property
    def stream(self) -> StateStream:
        """The published states."""
        return self._stream

    async def execute(self, command: Command) -> Outcome:
        """Queue ``command`` behind the ones already queued and wait for its outcome."""
        if self._closed:
            raise CoreClosedError("the core is closed")
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((command, future))
        return await future

    async def close(self) -> None:
        """Fail queued commands, let the running one finish, and complete the stream."""
        if self._closed:
            return
        self._closed = True
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job is not None and not job[1].done():
                job[1].set_exception(CoreClosedError("the core was closed before this ran"))
        self._queue.put_nowait(None)
        await self._worker
        self._stream.complete()

    async def _work(self) -> None:
        while (job := await self._queue.get()) is not None:
            command, future = job
            if future.done():  # the caller stopped waiting before it started
                continue
            outcome = await self._perform(command)
            if not future.done():
                future.set_result(outcome)

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
