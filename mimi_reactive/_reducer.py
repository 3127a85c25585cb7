"""The pure reducer: what happened, applied to the current state, gives the next state.

It is a small state machine over two phases, logged out and logged in: the current state
decides which events are legal. An illegal event is a bug in the shell, never a user error,
and raises ``IllegalTransitionError``. An event that changes nothing returns the very same
state object, so the store publishes only real changes without comparing states.
"""

from __future__ import annotations

import attrs

from ._exceptions import MimiCoreError, SessionStorageError
from ._made import new_state
from ._messages import (
    AccountDeleted,
    AuthRoute,
    CommandFailed,
    Event,
    LogIn,
    LogInAnonymously,
    Promote,
    RefreshFailed,
    SessionAdopted,
    SessionExpired,
    SignedIn,
    SignedOut,
    SignUp,
    SignUpAnonymously,
    TokensRefreshed,
)
from ._state import SessionState, Transition
from ._user import MimiUser

__all__ = ["IllegalTransitionError", "reduce"]


class IllegalTransitionError(RuntimeError):
    """The shell fed the reducer an event the current state does not allow."""


def reduce(state: SessionState, event: Event) -> SessionState:
    """Return the state after ``event``."""
    match event:
        case CommandFailed(error=error):
            return attrs.evolve(
                state, previous_user=state.user, transition=Transition.FAILED, error=error
            )
        case SignedOut(error=error):
            return new_state(None, _logged_in(state, event), Transition.LOGGED_OUT, error)
        case SignedIn(user=user, route=route, replaced=replaced, error=error):
            return _signed_in(state, user, route, replaced, error)
        case TokensRefreshed(user=user):
            old = _logged_in(state, event)
            if state.degraded:
                return new_state(user, old, Transition.RECOVERED)
            if user != old:
                return new_state(user, old, _changed_elsewhere(old, user))
            return state
        case RefreshFailed(error=error):
            return _degraded(state, event, error)
        case SessionExpired(error=error):
            return new_state(None, _logged_in(state, event), Transition.SESSION_EXPIRED, error)
        case SessionAdopted(error=MimiCoreError() as error):  # the storage lost the session
            return _degraded(state, event, error)
        case SessionAdopted(user=user, kept=True) if _storage_alone(state):  # written back
            return new_state(user, _logged_in(state, event), Transition.RECOVERED)
        case SessionAdopted(user=user):
            return _adopted(state, user)
        case AccountDeleted(error=error):
            return new_state(None, _logged_in(state, event), Transition.DELETED, error)


def _logged_in(state: SessionState, event: Event) -> MimiUser:
    if state.user is None:
        raise IllegalTransitionError(f"{type(event).__name__} while nobody was logged in")
    return state.user


def _degraded(state: SessionState, event: Event, error: MimiCoreError) -> SessionState:
    """The user stays, the session is not kept for now (a renewal failed, or the storage did
    not keep it): ``DEGRADED`` once, until a kept renewal (or write-back) recovers it. Once
    more only when the cause changes between the storage and the renewal (a renewal fails
    while a failed save degraded it, or one works but its save fails): ``error`` says which,
    as only a storage's degradation ends with a write-back."""
    old = _logged_in(state, event)
    if state.degraded and _storage_alone(state) == isinstance(error, SessionStorageError):
        return state  # still degraded, for the same cause: nothing new to tell
    return new_state(old, old, Transition.DEGRADED, error, True)


def _storage_alone(state: SessionState) -> bool:
    """Whether the state is degraded by the storage alone (it did not keep the session),
    so a write-back that keeps it ends that: not by a renewal that failed (the tokens it
    would write back may be expired), which only a kept renewal ends."""
    return state.degraded and isinstance(state.error, SessionStorageError)


def _changed_elsewhere(old: MimiUser, new: MimiUser) -> Transition:
    """The same user changed under us (promoted by another process, say)."""
    return (
        Transition.PROMOTED if old.is_anonymous and not new.is_anonymous else Transition.LOGGED_IN
    )


def _adopted(state: SessionState, user: MimiUser | None) -> SessionState:
    old = state.user
    if user is None:
        return state if old is None else new_state(None, old, Transition.LOGGED_OUT)
    if old is None:
        return new_state(user, None, Transition.LOGGED_IN)
    if old.id != user.id:
        return new_state(user, old, Transition.SWITCHED_USER)
    if old != user:
        return new_state(user, old, _changed_elsewhere(old, user))
    return state


def _signed_in(
    state: SessionState,
    user: MimiUser,
    route: AuthRoute,
    replaced: MimiUser | None,
    error: MimiCoreError | None,
) -> SessionState:
    # A session the storage could not keep (error set) is degraded until a renewal is kept.
    unsaved = error is not None
    if isinstance(route, Promote):
        if state.user is None:
            raise IllegalTransitionError("promoted while nobody was logged in")
        return new_state(user, state.user, Transition.PROMOTED, error, unsaved)
    if state.user is not None:
        raise IllegalTransitionError("signed in over a logged-in user without logging out")
    if replaced is not None:
        return new_state(user, replaced, Transition.SWITCHED_USER, error, unsaved)
    return new_state(user, None, _SIGN_IN_TRANSITIONS[type(route)], error, unsaved)


_SIGN_IN_TRANSITIONS: dict[type[AuthRoute], Transition] = {
    SignUpAnonymously: Transition.ANONYMOUS_CREATED,
    LogInAnonymously: Transition.LOGGED_IN,
    LogIn: Transition.LOGGED_IN,
    SignUp: Transition.SIGNED_UP,
}
