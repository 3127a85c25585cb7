"""The port through which the core talks to an identity service.

A backend implements ``AuthBackend`` and declares in ``capabilities`` which routes it can
perform; the guards refuse the others before any call, so the core never changes when a
service lacks a route (the Firebase Auth REST API, say, cannot log in by anonymous id).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs

from ._routes import AuthRoute, LogIn, LogInAnonymously, Promote, SignUp, SignUpAnonymously
from ._user import MimiUser

__all__ = [
    "AuthBackend",
    "AuthTokens",
    "BackendCapabilities",
    "BackendSession",
    "ClientCredentials",
]


@attrs.frozen
class ClientCredentials:
    """The app's identity at the identity service."""

    client_id: str
    client_secret: str = attrs.field(repr=False)


@attrs.frozen
class AuthTokens:
    """The tokens of one session. ``expires_in`` is the service's lifetime, in seconds."""

    access_token: str = attrs.field(repr=False)
    refresh_token: str | None = attrs.field(default=None, repr=False)
    expires_in: float | None = None


@attrs.frozen
class BackendSession:
    """A logged-in user and the tokens the service issued for them."""

    user: MimiUser
    tokens: AuthTokens


@attrs.frozen
class BackendCapabilities:
    """Which auth routes a backend can perform."""

    sign_up_anonymously: bool = True
    log_in_anonymously: bool = True
    log_in: bool = True
    sign_up: bool = True
    promote: bool = True
    refresh: bool = True
    """Whether sessions can be refreshed; without it a session ends when its token expires."""

    def supports(self, route: AuthRoute) -> bool:
        """Whether the backend can perform ``route``."""
        match route:
            case SignUpAnonymously():
                return self.sign_up_anonymously
            case LogInAnonymously():
                return self.log_in_anonymously
            case LogIn():
                return self.log_in
            case SignUp():
                return self.sign_up
            case Promote():
                return self.promote
        return False


@runtime_checkable
class AuthBackend(Protocol):
    """An identity service, as the core needs it.

    Errors are raised as ``MimiCoreError`` subclasses: ``TransportError`` when the service
    cannot be reached, ``BackendError`` subclasses when it answers with an error. A method
    for a route the backend does not support raises ``UnsupportedRouteError``.
    """

    @property
    def capabilities(self) -> BackendCapabilities:
        """The routes this backend can perform."""
        ...

    async def open(self, client: ClientCredentials) -> None:
        """Get ready to serve calls for this app (called once, on the running loop)."""
        ...

    async def close(self) -> None:
        """Release connections. Idempotent."""
        ...

    async def sign_up_anonymously(self) -> BackendSession:
        """Create an anonymous user; the returned user carries its new ``anonymous_id``."""
        ...

    async def log_in_anonymously(self, anonymous_id: str) -> BackendSession:
        """Log in the anonymous user ``anonymous_id`` belongs to."""
        ...

    async def log_in(self, email: str, password: str) -> BackendSession:
        """Log in a credential user."""
        ...

    async def sign_up(self, email: str, password: str) -> BackendSession:
        """Create a credential user and log it in."""
        ...

    async def promote(self, session: BackendSession, email: str, password: str) -> BackendSession:
        """Give the anonymous user of ``session`` credentials."""
        ...

    async def refresh(self, session: BackendSession) -> BackendSession:
        """Exchange the session's refresh token for new tokens.

        Raises ``SessionRevokedError`` when the service refuses (revoked, expired, reused,
        user deleted): the session is over.
        """
        ...

    async def log_out(self, session: BackendSession) -> None:
        """Revoke ``session`` at the service."""
        ...
