"""The store that owns the session state: it decides commands, runs them, and publishes states.

Its ``CommandQueue`` runs commands one at a time. For each, the store asks the guards for a
decision, has the effect runner perform the planned effects, feeds each result to the
reducer, and publishes every new state before the queue takes the next command. So commands
never interleave, and every subscriber sees every state in the same order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ._backend import AuthBackend
from ._command_queue import CommandQueue
from ._config import MimiConfiguration
from ._effect_runner import EffectResult, EffectRunner
from ._exceptions import (
    ConfigurationError,
    InvalidRouteError,
    NotLoggedInError,
    RouteRefusedError,
    UnsupportedRouteError,
)
from ._guards import GuardContext, decide
from ._log import Log
from ._made import new_outcome
from ._messages import (
    AccountDeleted,
    Command,
    CommandFailed,
    Decision,
    Outcome,
    Proceed,
    RefreshFailed,
    Refused,
    Satisfied,
    SessionExpired,
    SignedIn,
    SignedOut,
    Skipped,
)
from ._reasons import Reason
from ._reducer import reduce
from ._session import Session
from ._state import SessionState, Transition
from ._storage import SessionStorage
from ._stream import Stream

__all__ = ["SessionStore"]

_log = Log("mimi_reactive.session")


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
        clock: Callable[[], float],
        restored: Session | None = None,
    ) -> None:
        self.clock = clock
        """The local wall clock every expiry is measured on."""
        self.configuration = configuration
        self._capabilities = backend.capabilities
        self._backend = backend
        self._backend_closing: asyncio.Future[None] | None = None  # ``close_backend``'s
        self._effects = EffectRunner(
            backend=backend, storage=storage, configuration=configuration, clock=clock
        )
        initial = (
            SessionState(restored.user, transition=Transition.RESTORED)
            if restored is not None
            else SessionState()
        )
        # Logged as every later state is: at DEBUG a restore shows, not only what follows it.
        if _log.enabled_for(logging.DEBUG):
            _log.debug("session.state", transition=initial.transition.value)
        detach = configuration.detach_failing_subscribers
        self.state = initial
        """The state last published (an attribute, not a property: every command reads it)."""
        self._stream = Stream[SessionState](initial, detach_failing_subscribers=detach)
        self._tokens = Stream[str | None](
            self._usable_token(restored), detach_failing_subscribers=detach
        )
        self.session = restored
        """The session behind the current state, tokens included (set only by the store)."""
        self._session_listeners: list[Callable[[], None]] = []
        self._queue = CommandQueue(self, self._effects)
        # The queue's own methods, not wrappers: every command passes through them.
        self.dispatch = self._queue.dispatch
        """Queue a command from any thread (or from inside a subscriber); never blocks:
        ``CommandQueue.dispatch``."""
        self.run = self._queue.run
        """Run a command after the ones already queued: ``CommandQueue.run``."""
        self.refuse_other_loop = self._queue.refuse_other_loop
        """Raise ``CommandQueue.other_loop_error()`` unless called on the store's own loop."""
        self.begin_close = self._queue.begin_close
        """Refuse commands from now on: ``CommandQueue.begin_close``."""
        self.other_loop_error = self._queue.other_loop_error
        """What a call awaited on another loop raises: ``CommandQueue.other_loop_error``."""

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called or the worker ended: commands get ``CoreClosedError``."""
        return self._queue.closed

    @property
    def forked(self) -> bool:
        """Whether this is a forked copy of a store that runs in the parent process."""
        return self._queue.forked

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the store runs on."""
        return self._queue.loop

    @property
    def can_refresh(self) -> bool:
        """Whether the backend can refresh sessions."""
        return self._capabilities.refresh

    def on_session_changed(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (on the loop) whenever the session, its tokens, or whether it
        is degraded change."""
        self._session_listeners.append(listener)

    @property
    def stream(self) -> Stream[SessionState]:
        """The published states."""
        return self._stream

    @property
    def tokens(self) -> Stream[str | None]:
        """The published access tokens (None: nobody logged in)."""
        return self._tokens

    async def close(self, *, grace_period: float) -> None:
        """Fail queued commands, give the running one ``grace_period`` seconds to finish
        (see ``CommandQueue.close``), complete the streams, and end the effects' work."""
        await self._queue.close(grace_period=grace_period)
        await self._effects.close(grace_period)

    async def close_backend(self) -> None:
        """Close the backend, once: a later call (``close()`` after the worker released it,
        a subscriber's ``SystemExit`` having stopped it, a close cancelled midway) waits for
        that close to end, and only the first caller hears its error. The close runs as a
        task of its own, so a caller cancelled meanwhile does not cut it short."""
        if self._backend_closing is not None:
            await asyncio.wait({self._backend_closing})
            return
        closing = self._backend_closing = asyncio.ensure_future(self._backend.close())
        # Its error is the first caller's; retrieved here too, in case that caller gave up.
        closing.add_done_callback(lambda done: done.cancelled() or done.exception())
        await asyncio.shield(closing)

    async def release(self) -> None:
        """Close the backend of a core nobody will close (its worker cancelled unclosed or
        stopped by a subscriber's ``SystemExit``, or its loop closed by hand), never raising:
        a backend that fails is logged (``session.release_failed``), as there is no caller
        left to tell."""
        try:
            await self.close_backend()
        except Exception as error:  # a backend that cannot close (off its loop, say)
            _log.warning("session.release_failed", error=type(error).__name__)

    def _usable_token(self, session: Session | None) -> str | None:
        """The access token to publish: None when nobody is logged in, and while the token
        is no longer usable (a stored one restored expired, one a failed renewal left)."""
        if session is None or not self.configuration.refresh.is_usable(session, self.clock()):
            return None
        return session.tokens.access_token

    def recheck_token(self) -> None:
        """Publish the held token again if it is still usable, else None: the keeper calls
        this when the token stops being usable, as nothing else publishes while renewals
        fail (the service unreachable) or none is tried (a backend that cannot refresh)."""
        self._tokens.publish(self._usable_token(self.session))

    def apply_committed(self) -> None:
        """Publish what a command stopped midway had already stored (its caller gets
        ``CoreClosedError``, the state says what the storage holds)."""
        if (committed := self._effects.committed) is not None:
            self._apply(committed)

    def end(self) -> None:
        """Complete the streams: the queue's worker has ended."""
        self._stream.complete()
        self._tokens.complete()

    def decide(self, command: Command) -> Decision:
        """The guards' decision on ``command`` in the state now."""
        context = GuardContext(
            self.state,
            command,
            self.configuration,
            self._capabilities,
            session=self.session,
            now=self.clock(),
        )
        decision = decide(context)
        if _log.enabled_for(logging.DEBUG):
            _log.debug(
                "session.command",
                command=type(command).__name__,
                decision=type(decision).__name__,
                reason=None if isinstance(decision, Proceed) else decision.reason.value,
            )
        return decision

    def settle(self, decision: Skipped | Satisfied | Refused) -> Outcome:
        """The outcome of a command the guards answered without effects."""
        match decision:
            case Refused(reason=reason):
                refusal = _REFUSALS.get(reason, RouteRefusedError)
                return new_outcome(self.state, refusal(reason), reason)
            case Skipped(reason=reason):
                return new_outcome(self.state, InvalidRouteError(reason), reason, skipped=True)
            case Satisfied(reason=reason):
                return new_outcome(self.state, None, reason, access_token=self._held_token())

    async def perform(self, command: Command, decision: Decision | None) -> Outcome:
        """Run ``command`` (deciding it first when ``decision`` is None) to its outcome."""
        if decision is None:
            decision = self.decide(command)
        if not isinstance(decision, Proceed):
            return self.settle(decision)
        for effect in decision.effects:
            result = await self._effects.perform(effect)
            self._apply(result)
            event = result[0]
            if isinstance(event, _FAILING) and event.error is not None:
                return new_outcome(self.state, event.error)
        return new_outcome(self.state, access_token=self._held_token())

    def _held_token(self) -> str | None:
        """The access token of the session held now, for the outcome of a command that ends
        without error (read by ``access_token()`` from the outcome, not the store)."""
        session = self.session
        return None if session is None else session.tokens.access_token

    def _apply(self, result: EffectResult) -> None:
        before = self.state
        event, session = result
        state = reduce(before, event)
        held = self.session
        changed = (
            session is not held and (session is None or held is None or session != held)
        ) or state.degraded != before.degraded
        # The token to publish, read before anything changes. A clock gone wrong cannot undo
        # the change (the effect stored it already): the change stands, everyone hears of it
        # with no token handed out (its usability unknown), and then the clock's error is
        # raised. Raised halfway, the state would be new but the token stream stale (the
        # user before's token even) and the keeper never told of the session.
        token: str | None = None
        clock_error: ConfigurationError | None = None
        if changed:
            try:
                token = self._usable_token(session)
            except ConfigurationError as error:
                clock_error = error
        self.session = session
        if state is not before:
            if _log.enabled_for(logging.DEBUG):
                _log.debug("session.state", transition=state.transition.value)
            self.state = state  # before delivery: subscribers that read it see this one
            if not self._stream.publish(state):  # an equal state, or the stream is complete
                self.state = before
            elif state.transition is Transition.SESSION_EXPIRED:
                # The user is gone from this core (an anonymous one with its id): worth a
                # line at INFO, where every other state is DEBUG.
                _log.info("session.expired", error=type(state.error).__name__)
        if changed:
            self._tokens.publish(token)
            for listener in self._session_listeners:
                listener()
        if clock_error is not None:
            raise clock_error


# The events that carry the command's error (a log-out's only when the service was not told
# or the storage failed, a sign-in's and a deletion's only when the storage failed).
_FAILING = CommandFailed | RefreshFailed | SessionExpired | SignedOut | SignedIn | AccountDeleted

_REFUSALS: dict[Reason, type[RouteRefusedError]] = {
    Reason.BACKEND_CANNOT: UnsupportedRouteError,
    Reason.BACKEND_CANNOT_LOG_OUT_EVERYWHERE: UnsupportedRouteError,
    Reason.BACKEND_CANNOT_DELETE_ACCOUNTS: UnsupportedRouteError,
    Reason.BACKEND_CANNOT_REFRESH: UnsupportedRouteError,
    Reason.NO_USER_LOGGED_IN: NotLoggedInError,
}
