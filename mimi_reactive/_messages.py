"""Every message the session passes, in the order it flows: read this module first.

    command ──guards──▶ decision ──(Proceed)──▶ effects ──runner──▶ events ──reducer──▶ state

- **Commands** are what callers ask for: the auth routes, ``LogOut``, ``DeleteAccount``, and
  the keeper's
  ``RefreshSession`` and ``SyncSession``.
- **Decisions** are what the pure guards (``_guards.py``) answer: ``Proceed`` with effects,
  or ``Skipped``, ``Satisfied`` or ``Refused`` with a ``Reason``.
- **Effects** are data for the effect runner (``_effect_runner.py``): each carries what it
  needs, so running one never depends on another having run first.
- **Events** are what the effects report; the pure reducer (``_reducer.py``) turns each into
  the next state.
- **Outcome** is what the caller of a command gets back.

Build routes with the ``AuthRoute`` constructors; each is a frozen value that ``match``
can take apart:

```python
from mimi_reactive import AuthRoute, LogInAnonymously

route = AuthRoute.log_in_anonymously("the-id-the-app-stored")
match route:
    case LogInAnonymously(anonymous_id=anonymous_id):
        print("logging in with an id of", len(anonymous_id), "characters")
```
"""

from __future__ import annotations

import attrs

from ._checks import flag, text
from ._credential_rules import possible_anonymous_id
from ._exceptions import MimiCoreError
from ._reasons import Reason
from ._redaction import mask, mask_email
from ._session import Session
from ._state import SessionState
from ._user import MimiUser
from ._values import value_eq, value_hash, value_repr

__all__ = [
    "AccountDeleted",
    "AdoptSession",
    "AuthRoute",
    "Authenticate",
    "Command",
    "CommandFailed",
    "Decision",
    "DeleteAccount",
    "DeleteUser",
    "Effect",
    "EndSession",
    "Event",
    "LogIn",
    "LogInAnonymously",
    "LogOut",
    "Outcome",
    "Proceed",
    "Promote",
    "RefreshFailed",
    "RefreshSession",
    "RefreshTokens",
    "Refused",
    "Satisfied",
    "SessionAdopted",
    "SessionExpired",
    "SignUp",
    "SignUpAnonymously",
    "SignedIn",
    "SignedOut",
    "Skipped",
    "SyncSession",
    "TokensRefreshed",
]


# Commands: what callers ask for.


@attrs.frozen
class AuthRoute:
    """A way to authenticate. Use the constructors below."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    @staticmethod
    def sign_up_anonymously() -> SignUpAnonymously:
        """Create a new anonymous user and log it in."""
        return SignUpAnonymously()

    @staticmethod
    def log_in_anonymously(anonymous_id: str | None) -> LogInAnonymously:
        """Log in the anonymous user that ``anonymous_id`` belongs to.

        A blank id (None, empty, whitespace) is accepted here and skipped by the guards:
        it usually comes from an app's storage that holds no id yet. One no service issues
        (see ``anonymous_id_problem``) raises ``InvalidRouteError`` before anything changes.
        """
        return LogInAnonymously(anonymous_id)

    @staticmethod
    def log_in(*, email: str, password: str) -> LogIn:
        """Log in a non-anonymous user with email and password."""
        return LogIn(email=email, password=password)

    @staticmethod
    def sign_up(*, email: str, password: str) -> SignUp:
        """Create a non-anonymous user with email and password and log it in."""
        return SignUp(email=email, password=password)

    @staticmethod
    def promote(*, email: str, password: str) -> Promote:
        """Give the logged-in anonymous user an email and password; its id stays the same."""
        return Promote(email=email, password=password)

    @property
    def is_anonymous(self) -> bool:
        """Whether the route keeps the user anonymous."""
        return isinstance(self, SignUpAnonymously | LogInAnonymously)


@attrs.frozen
class SignUpAnonymously(AuthRoute):
    """Create a new anonymous user."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash


@attrs.frozen
class LogInAnonymously(AuthRoute):
    """Log in by anonymous id (None, empty or whitespace: skipped; malformed: refused)."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    anonymous_id: str | None = attrs.field(repr=mask, validator=possible_anonymous_id)


@attrs.frozen(kw_only=True)
class LogIn(AuthRoute):
    """Log in with email and password."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    email: str = attrs.field(repr=mask_email, validator=text)
    password: str = attrs.field(repr=False, validator=text)


@attrs.frozen(kw_only=True)
class SignUp(AuthRoute):
    """Sign up with email and password."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    email: str = attrs.field(repr=mask_email, validator=text)
    password: str = attrs.field(repr=False, validator=text)


@attrs.frozen(kw_only=True)
class Promote(AuthRoute):
    """Turn the logged-in anonymous user into a credential user."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    email: str = attrs.field(repr=mask_email, validator=text)
    password: str = attrs.field(repr=False, validator=text)


@attrs.frozen
class LogOut:
    """End the current session; with ``everywhere``, every session of the user."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    everywhere: bool = attrs.field(default=False, kw_only=True, validator=flag)


@attrs.frozen
class DeleteAccount:
    """Delete the logged-in user's account at the service, then forget the session."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash


@attrs.frozen
class RefreshSession:
    """Refresh the session's tokens if they are due (or now, with ``force``)."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    force: bool = False


@attrs.frozen
class SyncSession:
    """Read the shared storage and adopt the session another process stored there."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash


Command = AuthRoute | LogOut | DeleteAccount | RefreshSession | SyncSession


# Decisions: what the guards answer.


@attrs.frozen
class Proceed:
    """Run these effects in order."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    effects: tuple[Effect, ...]


@attrs.frozen
class Skipped:
    """Nothing was done: there was nothing a service would act on (no anonymous id to log
    in, an email not of the reference server's form, an empty password)."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    reason: Reason = attrs.field(default=Reason.BLANK_ANONYMOUS_ID, repr=False)


@attrs.frozen
class Satisfied:
    """Nothing was done: what the command wants already holds."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    reason: Reason


@attrs.frozen
class Refused:
    """Nothing was done, and the caller is told no."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    reason: Reason


Decision = Proceed | Skipped | Satisfied | Refused


# Effects: what the effect runner must do, each with the data it needs.


@attrs.frozen
class EndSession:
    """Forget ``session`` and revoke it at the service: in the background, retried; with
    ``everywhere``, every session of its user, before the command completes."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    session: Session
    everywhere: bool = False


@attrs.frozen
class Authenticate:
    """Run ``route`` at the service. ``session`` is the one it acts on (a promotion's),
    ``replacing`` the user logged out to make room."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    route: AuthRoute
    session: Session | None = None
    replacing: MimiUser | None = None


@attrs.frozen
class RefreshTokens:
    """Exchange ``session``'s refresh token for new tokens (or take ones another process
    sharing the storage got first)."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    session: Session


@attrs.frozen
class AdoptSession:
    """Read the shared storage and take on the session stored there (none: logged out)."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    current: Session | None


@attrs.frozen
class DeleteUser:
    """Delete ``session``'s user at the service and, once it did, forget the session."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    session: Session


Effect = EndSession | Authenticate | RefreshTokens | AdoptSession | DeleteUser


# Events: what happened, for the reducer.


@attrs.frozen
class SignedIn:
    """The service authenticated ``user`` by ``route``, replacing ``replaced`` if set;
    ``error`` if the storage could not keep the session (it works in memory)."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    user: MimiUser
    route: AuthRoute
    replaced: MimiUser | None = None
    error: MimiCoreError | None = None


@attrs.frozen
class SignedOut:
    """The user's session ended; ``error`` if the storage could not forget it, or if the
    service could not be told to end the user's other sessions (retried in the background)."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    error: MimiCoreError | None = None


@attrs.frozen
class CommandFailed:
    """A command failed with ``error``."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    error: MimiCoreError


@attrs.frozen
class TokensRefreshed:
    """The session's tokens were refreshed; ``user`` is the user as the service sees it now."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    user: MimiUser


@attrs.frozen
class RefreshFailed:
    """Refreshing failed for a reason that may pass (network, service trouble, a storage
    that could not save the renewed tokens)."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    error: MimiCoreError


@attrs.frozen
class SessionExpired:
    """The service refused to refresh the session: it is over."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    error: MimiCoreError


@attrs.frozen
class SessionAdopted:
    """Another process stored this user's session (None: it logged out); with ``error``, the
    storage could not load it (its file lost) and the core keeps ``user``, the one it holds.
    ``kept``: the storage lost the session and the core wrote it back, after a save had
    failed, so the storage holds again what the core does."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    user: MimiUser | None
    error: MimiCoreError | None = None
    kept: bool = False


@attrs.frozen
class AccountDeleted:
    """The service deleted the logged-in user's account; ``error`` if the storage could not
    forget the session."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    error: MimiCoreError | None = None


Event = (
    SignedIn
    | SignedOut
    | CommandFailed
    | TokensRefreshed
    | RefreshFailed
    | SessionExpired
    | SessionAdopted
    | AccountDeleted
)


# What the caller gets back.


@attrs.frozen
class Outcome:
    """How a command ended: the state after it, its error if it failed or was refused, and
    the guard's ``reason`` if a guard stopped it (None when it ran)."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    state: SessionState
    error: MimiCoreError | None = None
    reason: Reason | None = None
    skipped: bool = False
    """Whether there was nothing a service would act on (a blank anonymous id, a malformed
    email, an empty password)."""
    _access_token: str | None = attrs.field(default=None, repr=False, eq=False, kw_only=True)
    # The access token held when the command ended without error (None: nobody logged in
    # then, or it failed), for
    # ``access_token()``: by the time its caller resumes, a command queued behind the
    # refresh (a log-out, a switch of user) may have changed the session the store holds.
