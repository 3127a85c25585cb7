"""The values a command makes on its way, made through their slots' setters.

attrs' ``__init__`` for a frozen slotted class sets each field through ``object.__setattr__``,
about 1k instructions a field here; ``field_setters`` gives each slot's own setter, which
takes half. A user switch makes a decision and two effects (the guards), an event for each
effect (the effect runner), a state for each (the reducer) and the command's outcome (the
store): one of these functions makes each, from every field in order, for a class with no
checks, converters or defaults for its ``__init__`` to apply. ``test_values.py`` checks that
each builds what its class's constructor builds.
"""

from __future__ import annotations

from ._exceptions import MimiCoreError
from ._messages import (
    Authenticate,
    AuthRoute,
    Effect,
    EndSession,
    Outcome,
    Proceed,
    SignedIn,
    SignedOut,
)
from ._reasons import Reason
from ._session import Session
from ._state import SessionState, Transition
from ._user import MimiUser
from ._values import field_setters

__all__ = [
    "new_authenticate",
    "new_end_session",
    "new_outcome",
    "new_proceed",
    "new_signed_in",
    "new_signed_out",
    "new_state",
]

_new = object.__new__

(_set_effects,) = field_setters(Proceed)
_set_ended, _set_everywhere = field_setters(EndSession)
_set_route, _set_acting_on, _set_replacing = field_setters(Authenticate)
(_set_not_forgotten,) = field_setters(SignedOut)
_set_signed_in, _set_by, _set_replaced, _set_not_kept = field_setters(SignedIn)
_set_user, _set_previous_user, _set_transition, _set_error, _set_degraded = field_setters(
    SessionState
)
_set_state, _set_failure, _set_reason, _set_skipped, _set_access_token = field_setters(Outcome)


def new_proceed(effects: tuple[Effect, ...]) -> Proceed:
    """``Proceed(effects)``."""
    proceed: Proceed = _new(Proceed)
    _set_effects(proceed, effects)
    return proceed


def new_end_session(session: Session, everywhere: bool) -> EndSession:
    """``EndSession(session, everywhere)``."""
    effect: EndSession = _new(EndSession)
    _set_ended(effect, session)
    _set_everywhere(effect, everywhere)
    return effect


def new_authenticate(
    route: AuthRoute, session: Session | None, replacing: MimiUser | None
) -> Authenticate:
    """``Authenticate(route, session, replacing)``."""
    effect: Authenticate = _new(Authenticate)
    _set_route(effect, route)
    _set_acting_on(effect, session)
    _set_replacing(effect, replacing)
    return effect


def new_signed_out(error: MimiCoreError | None) -> SignedOut:
    """``SignedOut(error)``."""
    event: SignedOut = _new(SignedOut)
    _set_not_forgotten(event, error)
    return event


def new_signed_in(
    user: MimiUser, route: AuthRoute, replaced: MimiUser | None, error: MimiCoreError | None
) -> SignedIn:
    """``SignedIn(user, route, replaced, error)``."""
    event: SignedIn = _new(SignedIn)
    _set_signed_in(event, user)
    _set_by(event, route)
    _set_replaced(event, replaced)
    _set_not_kept(event, error)
    return event


def new_state(
    user: MimiUser | None,
    previous_user: MimiUser | None,
    transition: Transition,
    error: MimiCoreError | None = None,
    degraded: bool = False,
) -> SessionState:
    """``SessionState(user, previous_user, transition, error, degraded)``: the reducer makes
    one for every change."""
    state: SessionState = _new(SessionState)
    _set_user(state, user)
    _set_previous_user(state, previous_user)
    _set_transition(state, transition)
    _set_error(state, error)
    _set_degraded(state, degraded)
    return state


def new_outcome(
    state: SessionState,
    error: MimiCoreError | None = None,
    reason: Reason | None = None,
    skipped: bool = False,
    access_token: str | None = None,
) -> Outcome:
    """``Outcome(state, error, reason, skipped, access_token=access_token)``: every command
    ends with one."""
    outcome: Outcome = _new(Outcome)
    _set_state(outcome, state)
    _set_failure(outcome, error)
    _set_reason(outcome, reason)
    _set_skipped(outcome, skipped)
    _set_access_token(outcome, access_token)
    return outcome
