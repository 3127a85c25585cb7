"""Pure guards: given the session and a command, decide what may happen.

Each guard is a named function that looks at a ``GuardContext`` and either returns a
verdict with its ``Reason`` or ``None`` to let the next guard look. ``decide`` runs them in
order and, when none objects, plans the effects the shell must run. No I/O happens here.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from ._backend import BackendCapabilities
from ._config import MimiConfiguration
from ._reasons import Reason
from ._routes import AuthRoute, Command, LogInAnonymously, LogOut, Promote
from ._state import SessionState
from ._user import MimiUser

__all__ = [
    "GUARDS",
    "Authenticate",
    "Decision",
    "Effect",
    "EndSession",
    "GuardContext",
    "Proceed",
    "Refuse",
    "Satisfied",
    "Skip",
    "decide",
    "is_blank_anonymous_id",
]


@attrs.frozen
class GuardContext:
    """Everything a guard may look at."""

    state: SessionState
    command: Command
    configuration: MimiConfiguration
    capabilities: BackendCapabilities


# Effects: data describing what the shell must do, in order.


@attrs.frozen
class EndSession:
    """Log ``user`` out: revoke the session at the service (best effort), then forget it."""

    user: MimiUser


@attrs.frozen
class Authenticate:
    """Run ``route`` at the service; ``replacing`` is the user logged out to make room."""

    route: AuthRoute
    replacing: MimiUser | None = None


Effect = EndSession | Authenticate


# Verdicts.


@attrs.frozen
class Proceed:
    """Run these effects in order."""

    effects: tuple[Effect, ...]


@attrs.frozen
class Skip:
    """Do nothing: there is nothing to act on."""

    reason: Reason


@attrs.frozen
class Satisfied:
    """Do nothing: what the command wants already holds."""

    reason: Reason


@attrs.frozen
class Refuse:
    """Do nothing and tell the caller no."""

    reason: Reason


Decision = Proceed | Skip | Satisfied | Refuse
Guard = Callable[[GuardContext], Skip | Satisfied | Refuse | None]


def is_blank_anonymous_id(anonymous_id: str | None) -> bool:
    """Whether an anonymous id is missing: None, empty or only whitespace."""
    return anonymous_id is None or not anonymous_id.strip()


def refuse_anonymous_login_without_anonymous_only(context: GuardContext) -> Refuse | None:
    """Logging in by anonymous id is only for apps that allow anonymous users only."""
    if (
        isinstance(context.command, LogInAnonymously)
        and not context.configuration.allow_anonymous_user_only
    ):
        return Refuse(Reason.ANONYMOUS_LOGIN_NEEDS_ANONYMOUS_ONLY)
    return None


def refuse_credentials_in_anonymous_only(context: GuardContext) -> Refuse | None:
    """In anonymous-only mode no route may make a user non-anonymous."""
    command = context.command
    if (
        context.configuration.allow_anonymous_user_only
        and isinstance(command, AuthRoute)
        and not command.is_anonymous
    ):
        return Refuse(Reason.ANONYMOUS_ONLY_FORBIDS_CREDENTIALS)
    return None


def refuse_unsupported_route(context: GuardContext) -> Refuse | None:
    """A route the backend declared it cannot perform is refused before any call."""
    command = context.command
    if isinstance(command, AuthRoute) and not context.capabilities.supports(command):
        return Refuse(Reason.BACKEND_CANNOT)
    return None


def skip_blank_anonymous_id(context: GuardContext) -> Skip | None:
    """A blank anonymous id means there is no user to log in."""
    command = context.command
    if isinstance(command, LogInAnonymously) and is_blank_anonymous_id(command.anonymous_id):
        return Skip(Reason.BLANK_ANONYMOUS_ID)
    return None


def accept_same_anonymous_user(context: GuardContext) -> Satisfied | None:
    """The anonymous id asked for is the one logged in already."""
    command, user = context.command, context.state.user
    if (
        isinstance(command, LogInAnonymously)
        and user is not None
        and user.anonymous_id == command.anonymous_id
    ):
        return Satisfied(Reason.ALREADY_LOGGED_IN)
    return None


def accept_log_out_without_user(context: GuardContext) -> Satisfied | None:
    """Logging out with nobody logged in has nothing to do."""
    if isinstance(context.command, LogOut) and context.state.user is None:
        return Satisfied(Reason.NO_USER_LOGGED_IN)
    return None


def refuse_promote_without_anonymous_user(context: GuardContext) -> Refuse | None:
    """Only a logged-in anonymous user can be promoted."""
    user = context.state.user
    if isinstance(context.command, Promote) and (user is None or not user.is_anonymous):
        return Refuse(Reason.PROMOTE_NEEDS_ANONYMOUS_USER)
    return None


GUARDS: tuple[Guard, ...] = (
    refuse_anonymous_login_without_anonymous_only,
    refuse_credentials_in_anonymous_only,
    refuse_unsupported_route,
    skip_blank_anonymous_id,
    accept_same_anonymous_user,
    accept_log_out_without_user,
    refuse_promote_without_anonymous_user,
)


def decide(context: GuardContext) -> Decision:
    """Run the guards in order; when none objects, plan the effects."""
    for guard in GUARDS:
        verdict = guard(context)
        if verdict is not None:
            return verdict
    return Proceed(_plan(context.command, context.state.user))


def _plan(command: Command, user: MimiUser | None) -> tuple[Effect, ...]:
    match command:
        case LogOut():
            assert user is not None  # accept_log_out_without_user ran first
            return (EndSession(user),)
        case Promote():
            return (Authenticate(command),)
        case _ if user is not None:
            # A different user is logged in: log them out first, then sign the new one in.
            return (EndSession(user), Authenticate(command, replacing=user))
        case _:
            return (Authenticate(command),)
