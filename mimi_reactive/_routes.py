"""Commands the session accepts: the auth routes, and logging out.

Build routes with the ``AuthRoute`` constructors; each is a frozen value that ``match``
can take apart::

    match route:
        case LogInAnonymously(anonymous_id=anonymous_id): ...
"""

from __future__ import annotations

import attrs

from ._redaction import mask, mask_email

__all__ = [
    "AuthRoute",
    "LogIn",
    "LogInAnonymously",
    "LogOut",
    "Promote",
    "SignUp",
    "SignUpAnonymously",
]


@attrs.frozen
class AuthRoute:
    """A way to authenticate. Use the constructors below."""

    @staticmethod
    def sign_up_anonymously() -> SignUpAnonymously:
        """Create a new anonymous user and log it in."""
        return SignUpAnonymously()

    @staticmethod
    def log_in_anonymously(anonymous_id: str | None) -> LogInAnonymously:
        """Log in the anonymous user that ``anonymous_id`` belongs to.

        A blank id (None, empty, whitespace) is accepted here and skipped by the guards:
        it usually comes from an app's storage that holds no id yet.
        """
        return LogInAnonymously(anonymous_id)

    @staticmethod
    def log_in(*, email: str, password: str) -> LogIn:
        """Log in a non-anonymous user with email and password."""
        return LogIn(email, password)

    @staticmethod
    def sign_up(*, email: str, password: str) -> SignUp:
        """Create a non-anonymous user with email and password and log it in."""
        return SignUp(email, password)

    @staticmethod
    def promote(*, email: str, password: str) -> Promote:
        """Give the logged-in anonymous user an email and password; its id stays the same."""
        return Promote(email, password)

    @property
    def is_anonymous(self) -> bool:
        """Whether the route keeps the user anonymous."""
        return isinstance(self, SignUpAnonymously | LogInAnonymously)


@attrs.frozen
class SignUpAnonymously(AuthRoute):
    """Create a new anonymous user."""


@attrs.frozen
class LogInAnonymously(AuthRoute):
    """Log in by anonymous id."""

    anonymous_id: str | None = attrs.field(repr=mask)


@attrs.frozen
class LogIn(AuthRoute):
    """Log in with email and password."""

    email: str = attrs.field(repr=mask_email)
    password: str = attrs.field(repr=False)


@attrs.frozen
class SignUp(AuthRoute):
    """Sign up with email and password."""

    email: str = attrs.field(repr=mask_email)
    password: str = attrs.field(repr=False)


@attrs.frozen
class Promote(AuthRoute):
    """Turn the logged-in anonymous user into a credential user."""

    email: str = attrs.field(repr=mask_email)
    password: str = attrs.field(repr=False)


@attrs.frozen
class LogOut:
    """End the current session."""
