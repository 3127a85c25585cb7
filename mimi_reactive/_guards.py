"""Pure guards: given the session and a command, decide what may happen.

Each guard is a named function that looks at a ``GuardContext`` and either returns a
decision with its ``Reason`` or ``None`` to let the next guard look. ``decide`` runs them in
order and, when none objects, plans the effects the runner must perform. No I/O happens here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, get_args

from ._backend import ALL_ROUTES, BackendCapabilities
from ._config import MimiConfiguration
from ._credential_rules import credentials_problem, is_blank_anonymous_id
from ._made import new_authenticate, new_end_session, new_proceed
from ._messages import (
    AdoptSession,
    AuthRoute,
    Command,
    Decision,
    DeleteAccount,
    DeleteUser,
    Effect,
    LogIn,
    LogInAnonymously,
    LogOut,
    Promote,
    RefreshSession,
    RefreshTokens,
    Refused,
    Satisfied,
    SignUp,
    SignUpAnonymously,
    Skipped,
    SyncSession,
)
from ._reasons import Reason
from ._session import Session
from ._state import SessionState
from ._user import MimiUser

__all__ = ["GUARDS", "GuardContext", "decide", "is_blank_anonymous_id"]


class GuardContext:
    """Everything a guard may look at. ``session`` is the session behind ``state`` (its
    user is the one logged in) and ``now`` the local wall clock, for refresh decisions.

    A plain class, made for every command: a frozen attrs one cost 9k instructions to make
    (its fields set through ``object.__setattr__``), a tenth of a switch of user's own work.
    The guards only read it."""

    __slots__ = ("capabilities", "command", "configuration", "now", "session", "state")

    def __init__(
        self,
        state: SessionState,
        command: Command,
        configuration: MimiConfiguration,
        capabilities: BackendCapabilities,
        session: Session | None = None,
        now: float = 0.0,
    ) -> None:
        self.state = state
        self.command = command
        self.configuration = configuration
        self.capabilities = capabilities
        self.session = session
        self.now = now

    @property
    def user(self) -> MimiUser | None:
        """The logged-in user: the session's."""
        return None if self.session is None else self.session.user


Guard = Callable[[GuardContext], Skipped | Satisfied | Refused | None]

# The command types each guard can object to: it returns None for any other command.
_LOOKS_AT: dict[Guard, tuple[type, ...]] = {}


_G = TypeVar("_G", bound=Guard)


def looks_at(*commands: type) -> Callable[[_G], _G]:
    """Declare that a guard can object only to commands of these types, so ``decide`` asks
    it about no other (the guard still checks the type itself: it is pure on its own)."""

    def declare(guard: _G) -> _G:
        _LOOKS_AT[guard] = commands
        return guard

    return declare


@looks_at(LogInAnonymously)
def refuse_anonymous_log_in_without_anonymous_only(context: GuardContext) -> Refused | None:
    """Logging in by anonymous id is only for apps that allow anonymous users only."""
    if (
        isinstance(context.command, LogInAnonymously)
        and not context.configuration.allow_anonymous_user_only
    ):
        return Refused(Reason.ANONYMOUS_LOG_IN_NEEDS_ANONYMOUS_ONLY)
    return None


@looks_at(AuthRoute)
def refuse_credentials_in_anonymous_only(context: GuardContext) -> Refused | None:
    """In anonymous-only mode no route may make a user non-anonymous."""
    command = context.command
    if (
        context.configuration.allow_anonymous_user_only
        and isinstance(command, AuthRoute)
        and not command.is_anonymous
    ):
        return Refused(Reason.ANONYMOUS_ONLY_FORBIDS_CREDENTIALS)
    return None


@looks_at(AuthRoute)
def refuse_unsupported_route(context: GuardContext) -> Refused | None:
    """A route the backend declared it cannot perform is refused before any call."""
    command = context.command
    if isinstance(command, AuthRoute) and not context.capabilities.supports(command):
        return Refused(Reason.BACKEND_CANNOT)
    return None


@looks_at(LogInAnonymously)
def skip_blank_anonymous_id(context: GuardContext) -> Skipped | None:
    """A blank anonymous id means there is no user to log in."""
    command = context.command
    if isinstance(command, LogInAnonymously) and is_blank_anonymous_id(command.anonymous_id):
        return Skipped(Reason.BLANK_ANONYMOUS_ID)
    return None


@looks_at(LogIn, SignUp, Promote)
def skip_malformed_credentials(context: GuardContext) -> Skipped | None:
    """An email no service takes (the reference server's rule) or an empty password could
    only fail at the service: skipped before anything changes, as a blank anonymous id is,
    so it never logs the current user out first."""
    command = context.command
    if isinstance(command, LogIn | SignUp | Promote):
        reason = credentials_problem(command.email, command.password)
        if reason is not None:
            return Skipped(reason)
    return None


@looks_at(LogInAnonymously)
def satisfied_same_anonymous_user(context: GuardContext) -> Satisfied | None:
    """The anonymous id asked for is the one logged in already."""
    command, user = context.command, context.user
    if (
        isinstance(command, LogInAnonymously)
        and user is not None
        and user.anonymous_id == command.anonymous_id
    ):
        return Satisfied(Reason.ALREADY_LOGGED_IN)
    return None


@looks_at(SignUpAnonymously)
def satisfied_anonymous_user_signed_up(context: GuardContext) -> Satisfied | None:
    """An anonymous user is logged in already: signing up anonymously again keeps them, as
    Firebase's ``signInAnonymously()`` does, instead of leaving them behind for good (a user
    with no credential cannot be logged in again). Log out first to sign up another."""
    user = context.user
    if isinstance(context.command, SignUpAnonymously) and user is not None and user.is_anonymous:
        return Satisfied(Reason.ALREADY_LOGGED_IN)
    return None


@looks_at(LogOut)
def satisfied_log_out_without_user(context: GuardContext) -> Satisfied | None:
    """Logging out with nobody logged in has nothing to do."""
    if isinstance(context.command, LogOut) and context.user is None:
        return Satisfied(Reason.NO_USER_LOGGED_IN)
    return None


@looks_at(Promote)
def refuse_promote_without_anonymous_user(context: GuardContext) -> Refused | None:
    """Only a logged-in anonymous user can be promoted."""
    user = context.user
    if isinstance(context.command, Promote) and (user is None or not user.is_anonymous):
        return Refused(Reason.PROMOTE_NEEDS_ANONYMOUS_USER)
    return None


@looks_at(LogOut)
def refuse_log_out_everywhere_the_backend_cannot_do(context: GuardContext) -> Refused | None:
    """A backend that cannot end every session of a user is never asked to."""
    command = context.command
    if (
        isinstance(command, LogOut)
        and command.everywhere
        and not context.capabilities.revoke_everywhere
    ):
        return Refused(Reason.BACKEND_CANNOT_LOG_OUT_EVERYWHERE)
    return None


@looks_at(DeleteAccount)
def refuse_delete_without_user(context: GuardContext) -> Refused | None:
    """Only a logged-in user can delete their account."""
    if isinstance(context.command, DeleteAccount) and context.session is None:
        return Refused(Reason.NO_USER_LOGGED_IN)
    return None


@looks_at(DeleteAccount)
def refuse_delete_the_backend_cannot_do(context: GuardContext) -> Refused | None:
    """A backend that declares no account deletion is never asked to delete."""
    if isinstance(context.command, DeleteAccount) and not context.capabilities.delete:
        return Refused(Reason.BACKEND_CANNOT_DELETE_ACCOUNTS)
    return None


@looks_at(RefreshSession)
def refuse_refresh_without_user(context: GuardContext) -> Refused | None:
    """There is nothing to renew when nobody is logged in."""
    if isinstance(context.command, RefreshSession) and context.session is None:
        return Refused(Reason.NO_USER_LOGGED_IN)
    return None


@looks_at(RefreshSession)
def refuse_refresh_the_backend_cannot_do(context: GuardContext) -> Refused | None:
    """A backend without refresh cannot renew a session."""
    if isinstance(context.command, RefreshSession) and not context.capabilities.refresh:
        return Refused(Reason.BACKEND_CANNOT_REFRESH)
    return None


@looks_at(RefreshSession)
def satisfied_fresh_tokens(context: GuardContext) -> Satisfied | None:
    """Tokens not yet due for refresh are kept; this makes concurrent refreshes one. A
    degraded session is always retried."""
    command, session = context.command, context.session
    if not isinstance(command, RefreshSession) or command.force or session is None:
        return None
    if context.state.degraded:
        return None
    if not context.configuration.refresh.is_due(session, context.now):
        return Satisfied(Reason.TOKENS_FRESH)
    return None


GUARDS: tuple[Guard, ...] = (
    # First: a backend that cannot perform a route says so, whatever the configuration
    # (turning anonymous-only on would not make it able to).
    refuse_unsupported_route,
    refuse_anonymous_log_in_without_anonymous_only,
    refuse_credentials_in_anonymous_only,
    refuse_log_out_everywhere_the_backend_cannot_do,
    # Then input no service takes, before any guard that lets a switch log a user out.
    skip_blank_anonymous_id,
    skip_malformed_credentials,
    satisfied_same_anonymous_user,
    satisfied_anonymous_user_signed_up,
    satisfied_log_out_without_user,
    refuse_promote_without_anonymous_user,
    refuse_delete_the_backend_cannot_do,
    refuse_delete_without_user,
    refuse_refresh_without_user,
    refuse_refresh_the_backend_cannot_do,
    satisfied_fresh_tokens,
)


# Per command type, the guards that can object to it, in the order of GUARDS: a command is
# asked about by a third of them (decide is on every command's path).
_GUARDS_FOR: dict[type, tuple[Guard, ...]] = {
    command: tuple(guard for guard in GUARDS if issubclass(command, _LOOKS_AT[guard]))
    for command in (*ALL_ROUTES, *(other for other in get_args(Command) if other is not AuthRoute))
}


def decide(context: GuardContext) -> Decision:
    """Run the guards in order; when none objects, plan the effects."""
    for guard in _GUARDS_FOR.get(type(context.command), GUARDS):
        verdict = guard(context)
        if verdict is not None:
            return verdict
    return new_proceed(_plan(context))


def _plan(context: GuardContext) -> tuple[Effect, ...]:
    command, session = context.command, context.session
    match command:
        case LogOut(everywhere=everywhere) if session is not None:
            return (new_end_session(session, everywhere),)
        case DeleteAccount() if session is not None:
            return (DeleteUser(session),)
        case RefreshSession() if session is not None:
            return (RefreshTokens(session),)
        case SyncSession():
            return (AdoptSession(session),)
        case Promote():
            return (new_authenticate(command, session, None),)
        case AuthRoute() if session is not None:
            # A different user is logged in: log them out first, then sign the new one in.
            return (
                new_end_session(session, False),
                new_authenticate(command, None, session.user),
            )
        case AuthRoute():
            return (new_authenticate(command, None, None),)
    return ()  # unreachable: the guards refuse these without a session
