"""The pure reducer: what happened, applied to the current state, gives the next state.

It is a small state machine over two phases, logged out and logged in: the current state
decides which events are legal. An illegal event is a bug in the shell, never a user error,
and raises ``IllegalTransitionError``.
"""

from __future__ import annotations

import attrs

from ._exceptions import MimiCoreError
from ._routes import AuthRoute, LogIn, LogInAnonymously, Promote, SignUp, SignUpAnonymously
from ._state import SessionState, Transition
from ._user import MimiUser

__all__ = ["CommandFailed", "Event", "IllegalTransitionError", "SignedIn", "SignedOut", "reduce"]


@attrs.frozen
class SignedIn:
    """The service authenticated ``user`` by ``route``, replacing ``replaced`` if set."""

    user: MimiUser
    route: AuthRoute
    replaced: MimiUser | None = None


@attrs.frozen
class SignedOut:
    """The user's session ended."""


@attrs.frozen
class CommandFailed:
    """A command failed with ``error``."""

    error: MimiCoreError


Event = SignedIn | SignedOut | CommandFailed


class IllegalTransitionError(RuntimeError):
    """The shell fed the reducer an event the current state does not allow."""


def reduce(state: SessionState, event: Event) -> SessionState:
    """Return the state after ``event``."""
    match event:
        case CommandFailed(error=error):
            return SessionState(state.user, state.user, Transition.FAILED, error)
        case SignedOut():
            if state.user is None:
                raise IllegalTransitionError("logged out while nobody was logged in")
            return SessionState(None, state.user, Transition.LOGGED_OUT)
        case SignedIn(user=user, route=route, replaced=replaced):
            return _signed_in(state, user, route, replaced)


def _signed_in(
    state: SessionState, user: MimiUser, route: AuthRoute, replaced: MimiUser | None
) -> SessionState:
    if isinstance(route, Promote):
        if state.user is None:
            raise IllegalTransitionError("promoted while nobody was logged in")
        return SessionState(user, state.user, Transition.PROMOTED)
    if state.user is not None:
        raise IllegalTransitionError("signed in over a logged-in user without logging out")
    if replaced is not None:
        return SessionState(user, replaced, Transition.SWITCHED_USER)
    return SessionState(user, None, _SIGN_IN_TRANSITIONS[type(route)])


_SIGN_IN_TRANSITIONS: dict[type[AuthRoute], Transition] = {
    SignUpAnonymously: Transition.ANONYMOUS_CREATED,
    LogInAnonymously: Transition.LOGGED_IN,
    LogIn: Transition.LOGGED_IN,
    SignUp: Transition.SIGNED_UP,
}
