"""``core.auth``: the session as the app sees it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Protocol

import attrs
import reactivex
from reactivex import operators as ops
from typing_extensions import TypeVar  # a TypeVar with a default (PEP 696) before 3.13

from ._exceptions import CoreClosedError, NotLoggedInError
from ._future import CommandFuture
from ._lifetime import CoreLifetime
from ._messages import AuthRoute, DeleteAccount, LogOut, Outcome, RefreshSession
from ._reasons import Reason
from ._state import SessionState
from ._store import SessionStore
from ._user import MimiUser
from ._values import value_repr

__all__ = ["AuthController", "AuthObserver", "ObserverHandle"]


@attrs.define
class ObserverHandle:
    """Returned by ``add_observer``; ``remove()`` stops the notifications."""

    __repr__ = value_repr

    _subscription: reactivex.abc.DisposableBase

    def remove(self) -> None:
        """Stop notifying the observer. Idempotent."""
        self._subscription.dispose()


class AuthController:
    """Authenticates, logs out, and publishes the session."""

    def __init__(self, store: SessionStore, lifetime: CoreLifetime) -> None:
        self._store = store
        # Its core's: an app may keep only ``core.auth``, and the core must not be released
        # under it, only once both are dropped.
        self._lifetime = lifetime
        self.states: reactivex.Observable[SessionState] = store.stream.observable
        """Every published state; replays the current one on subscribe."""
        self.mimi_user: reactivex.Observable[MimiUser | None] = self.states.pipe(
            ops.map(_user_of), ops.distinct_until_changed()
        )
        """The logged-in user (None when nobody); replays, and only emits changes."""
        self.access_tokens: reactivex.Observable[str | None] = store.tokens.observable
        """The current access token (None when nobody is logged in); replays, then emits each
        new one after a sign-in or refresh, with the same ordering and isolation as
        ``states``. For apps holding a WebSocket or gRPC channel that must re-authenticate."""

    @property
    def state(self) -> SessionState:
        """The current state."""
        return self._store.state

    @property
    def current_user(self) -> MimiUser | None:
        """The logged-in user; None on a clean start or after logging out."""
        return self._store.state.user

    @property
    def access_token_expires_at(self) -> float | None:
        """When the current access token expires, as a ``time.time()`` timestamp (the
        service's lifetime counted from when the token arrived, so clock skew does not
        matter); None when nobody is logged in or the token has no lifetime. The core renews
        it before then if the backend can refresh, and ``access_token()`` stops handing it out
        a little earlier."""
        session = self._store.session
        return None if session is None else session.expires_at(self._store.clock())

    async def authenticate(self, route: AuthRoute) -> MimiUser:
        """Run ``route`` and return the user it logged in.

        Raises ``RouteRefusedError`` if the configuration or backend forbids the route,
        ``InvalidRouteError`` for a blank anonymous id, and the backend's
        ``MimiCoreError`` if the service fails (the state then shows ``FAILED``), and
        ``TypeError`` for anything but an ``AuthRoute``. ``SessionStorageError`` means the
        user is logged in but the storage could not keep the session (the state is
        degraded, and the core renews it until it is kept).
        """
        if not isinstance(route, AuthRoute):
            raise TypeError(
                "route must be an AuthRoute, e.g. AuthRoute.sign_up_anonymously(), "
                f"not {type(route).__name__}"
            )
        outcome = await self.run(route)
        if outcome.error is not None:
            raise outcome.error
        user = outcome.state.user
        assert user is not None  # a route that succeeded leaves a user logged in
        return user

    async def log_out(self, *, everywhere: bool = False) -> None:
        """Log the current user out; does nothing when nobody is logged in.

        The local session always ends at once, even if the service cannot be told (it is
        told in the background). If the storage could not forget it, ``SessionStorageError``
        is raised (the session has ended here all the same, but a restart would restore it).
        With ``everywhere`` every session of the user ends, on every device: that call is
        made before this returns, and if the service could not be reached its error is
        raised (the local session has ended all the same, and the call is retried in the
        background). A backend that cannot do it raises ``UnsupportedRouteError`` before
        anything happens.
        """
        outcome = await self.run(LogOut(everywhere=everywhere))
        if outcome.error is not None:
            raise outcome.error

    async def delete_account(self) -> None:
        """Delete the logged-in user's account at the service, then forget the session.

        Raises ``UnsupportedRouteError`` (before any call) if the backend cannot delete,
        ``NotLoggedInError`` with nobody logged in, the backend's error if the service
        refuses (the user then stays logged in), and ``SessionStorageError`` if the account
        was deleted but the storage could not forget the session.
        """
        outcome = await self.run(DeleteAccount())
        if outcome.error is not None:
            raise outcome.error

    async def run(self, command: AuthRoute | LogOut | DeleteAccount) -> Outcome:
        """Run a command and return its full outcome instead of raising (a command of
        another type raises ``TypeError``)."""
        return await self._store.run(_checked(command))

    async def access_token(self) -> str:
        """A valid access token for the app's own API calls, renewed first if needed.

        Any number of concurrent callers share one renewal. Raises ``NotLoggedInError`` when
        nobody is logged in, ``SessionRevokedError`` when the service ended the session,
        ``TransportError`` when it is expired and cannot be renewed now, and
        ``SessionStorageError`` when the renewed tokens could not be saved (they work; the
        core saves them again until they are kept).
        """
        store = self._store
        if asyncio.get_running_loop() is not store.loop:  # inline: a hot path
            raise store.other_loop_error()
        session = store.session
        if (
            session is not None
            and not store.closed  # a closed core hands out nothing: store.run raises
            and store.configuration.refresh.is_usable(session, store.clock())
        ):
            return session.tokens.access_token
        outcome = await store.run(RefreshSession())
        if outcome.error is not None:
            raise outcome.error
        # The refresh's own token: a log-out or a switch of user queued behind it may have
        # run before this resumes, and the store then holds another session, or none.
        token = outcome._access_token
        if token is None:
            raise NotLoggedInError(Reason.NO_USER_LOGGED_IN)
        return token

    async def refresh(self) -> None:
        """Renew the session's tokens now, whether or not they are due."""
        outcome = await self._store.run(RefreshSession(force=True))
        if outcome.error is not None:
            raise outcome.error

    def dispatch(self, command: AuthRoute | LogOut | DeleteAccount) -> CommandFuture:
        """Queue a command without waiting; safe from any thread and from inside callbacks.

        It runs after every command queued before it. ``await`` the returned future on any
        event loop, or call its ``result()`` from another thread, for the ``Outcome``. A
        command of another type raises ``TypeError`` at once.
        """
        return self._store.dispatch(_checked(command))

    async def updates(self) -> AsyncGenerator[SessionState, None]:
        """Iterate the states on the core's event loop: the current one first, then changes.

        Ends when the core closes (at once on a closed core, as the streams complete). A slow
        consumer never makes states pile up: it gets the latest state when it asks for the
        next one, skipping any it was too slow to see.
        """
        if not self._store.closed:  # closed, the stream completes at once on any loop
            self._store.refuse_other_loop()  # its wake-up event belongs to the core's loop
        latest: list[SessionState] = []  # at most one: the newest state not yet taken
        ready = asyncio.Event()
        completed = False

        def keep(state: SessionState) -> None:
            latest[:] = [state]
            ready.set()

        def complete() -> None:
            nonlocal completed
            completed = True
            ready.set()

        subscription = self.states.subscribe(keep, on_completed=complete)
        try:
            while True:
                await ready.wait()
                ready.clear()
                if latest:
                    yield latest.pop()
                if completed and not latest:
                    return
        finally:
            subscription.dispose()

    def add_observer(self, observer: AuthObserver[AuthController]) -> ObserverHandle:
        """Tell ``observer`` of every later state change as (this controller, current user,
        old user, error).

        Raises ``TypeError`` at once for an object without ``auth_controller_did_update``,
        and ``CoreClosedError`` once the core is closed (it would never be told of anything).
        """
        return self._observe(observer, self)

    def _observe(self, observer: AuthObserver[_C], controller: _C) -> ObserverHandle:
        """``add_observer`` for this controller or the blocking one that wraps it:
        ``controller`` is the one the observer is given."""
        self._refuse_if_closed()
        if not callable(getattr(observer, "auth_controller_did_update", None)):
            raise TypeError(
                "an observer needs an auth_controller_did_update(controller, current_user, "
                f"old_user, error) method; got {type(observer).__name__}"
            )
        subscription = self.states.pipe(ops.skip(1)).subscribe(
            lambda state: observer.auth_controller_did_update(
                controller, state.user, state.previous_user, state.error
            )
        )
        return ObserverHandle(subscription)

    def _refuse_if_closed(self) -> None:
        if self._store.closed or self._store.loop.is_closed():
            raise CoreClosedError("the core is closed")


# The controller an observer is given: this one, or the BlockingAuthController that wraps it
# (whose calls block: an observer of a blocking core must get that one, not coroutines).
_ControllerT_contra = TypeVar("_ControllerT_contra", contravariant=True, default=AuthController)
_C = TypeVar("_C")


class AuthObserver(Protocol[_ControllerT_contra]):
    """Told of every state change after it is added (not of the state it was added in).

    ``controller`` is the one it was added to: an ``AuthController``, or for a
    ``BlockingMimiCore`` its ``BlockingAuthController`` (``AuthObserver[BlockingAuthController]``).
    """

    def auth_controller_did_update(
        self,
        controller: _ControllerT_contra,
        current_user: MimiUser | None,
        old_user: MimiUser | None,
        error: Exception | None,
    ) -> None:
        """Called after each state change with the users before and after it and the error
        the change carries, if any; on the core's event-loop thread (a ``BlockingMimiCore``'s
        own thread). What it raises is logged and kept from the core and other observers."""
        ...


_COMMANDS = (AuthRoute, LogOut, DeleteAccount)


def _checked(command: AuthRoute | LogOut | DeleteAccount) -> AuthRoute | LogOut | DeleteAccount:
    """``command`` if the app may run it; a ``TypeError`` otherwise."""
    if not isinstance(command, _COMMANDS):
        raise TypeError(
            f"command must be an AuthRoute, LogOut or DeleteAccount, not {type(command).__name__}"
        )
    return command


def _user_of(state: SessionState) -> MimiUser | None:
    return state.user
