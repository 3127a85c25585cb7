"""Pure guards: given the session and a command, decide what may happen.

Each guard is a named function that looks at a ``GuardContext`` and either returns a
verdict with its ``Reason`` or ``None`` to let the next guard look. ``decide`` runs them in
order and, when none objects, plans the effects the shell must run. No I/O happens here.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from ._backend import BackendCapabilities
from ._commands import Command, RefreshSession, SyncSession
from ._config import MimiConfiguration
from ._reasons import Reason
from ._routes import AuthRoute, LogInAnonymously, LogOut, Promote
from ._state import SessionState
from ._storage import StoredSession
from ._user import MimiUser

__all__ = [
    "GUARDS",
    "AdoptSession",
    "Authenticate",
    "Decision",
    "Effect",
    "EndSession",
    "GuardContext",
    "Proceed",
    "Refuse",
    "RenewTokens",
    "Satisfied",
    "Skip",
    "decide",
    "is_blank_anonymous_id",
]


@attrs.frozen
class GuardContext:
    """Everything a guard may look at. ``session`` is the stored session behind ``state``
    and ``now`` the local wall clock, for deciding whether tokens are due for renewal."""

    state: SessionState
    command: Command
    configuration: MimiConfiguration
    capabilities: BackendCapabilities
    session: StoredSession | None = None
    now: float = 0.0


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


@attrs.frozen
class RenewTokens:
    """Exchange the refresh token for new tokens (or take ones another process got)."""


@attrs.frozen
class AdoptSession:
    """Read the shared storage and take on the session stored there (none: logged out)."""


Effect = EndSession | Authenticate | RenewTokens | AdoptSession


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


def refuse_refresh_without_user(context: GuardContext) -> Refuse | None:
    """There is nothing to renew when nobody is logged in."""
    if isinstance(context.command, RefreshSession) and context.session is None:
        return Refuse(Reason.NO_USER_LOGGED_IN)
    return None


def refuse_refresh_the_backend_cannot_do(context: GuardContext) -> Refuse | None:
    """A backend without refresh cannot renew a session."""
    if isinstance(context.command, RefreshSession) and not context.capabilities.refresh:
        return Refuse(Reason.BACKEND_CANNOT)
    return None


def accept_fresh_tokens(context: GuardContext) -> Satisfied | None:
    """Tokens not yet due for renewal are kept; this makes concurrent renewals one. A
    degraded session is always retried."""
    command, session = context.command, context.session
    if not isinstance(command, RefreshSession) or command.force or session is None:
        return None
    if context.state.degraded:
        return None
    due = session.refresh_due_at(context.configuration.refresh_ahead)
    if due is None or context.now < due:
        return Satisfied(Reason.TOKENS_FRESH)
    return None


GUARDS: tuple[Guard, ...] = (
    refuse_anonymous_login_without_anonymous_only,
    refuse_credentials_in_anonymous_only,
    refuse_unsupported_route,
    skip_blank_anonymous_id,
    accept_same_anonymous_user,
    accept_log_out_without_user,
    refuse_promote_without_anonymous_user,
    refuse_refresh_without_user,
    refuse_refresh_the_backend_cannot_do,
    accept_fresh_tokens,
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
        case RefreshSession():
            return (RenewTokens(),)
        case SyncSession():
            return (AdoptSession(),)
        case _ if user is not None:
            # A different user is logged in: log them out first, then sign the new one in.
            return (EndSession(user), Authenticate(command, replacing=user))
        case _:
            return (Authenticate(command),)
