"""The port through which the core talks to an identity service.

A backend is three calls (``authenticate``, ``refresh``, ``revoke``) and a declaration of
what it can do; one that can delete accounts also has ``delete`` (``DeletingBackend``). The
guards refuse what it cannot before any call, so the core never changes when a service lacks
a route (the Firebase Auth REST API cannot log in by anonymous id).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import attrs

from ._checks import basic_auth_id, client_credential, flag
from ._messages import (
    AuthRoute,
    LogIn,
    LogInAnonymously,
    Promote,
    SignUp,
    SignUpAnonymously,
)
from ._session import BackendSession, Session
from ._values import value_eq, value_hash, value_repr

__all__ = [
    "ALL_ROUTES",
    "AuthBackend",
    "BackendCapabilities",
    "ClientCredentials",
    "DeletingBackend",
    "OriginBackend",
]


@attrs.frozen
class ClientCredentials:
    """The app's identity at the identity service (None for a service that has none, such as
    Firebase Auth, where the backend holds the app's API key).

    A blank id or secret, or an id holding ``:`` (which HTTP Basic authentication cannot
    carry), raises ``ConfigurationError``; one that is not a str, ``TypeError``.
    """

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    client_id: str | None = attrs.field(default=None, validator=basic_auth_id)
    client_secret: str | None = attrs.field(default=None, repr=False, validator=client_credential)


ALL_ROUTES: frozenset[type[AuthRoute]] = frozenset(
    {SignUpAnonymously, LogInAnonymously, LogIn, SignUp, Promote}
)


def _route_types(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """The argument is a frozenset of route types, such as ``ALL_ROUTES - {LogIn}``."""
    if not isinstance(value, frozenset) or not all(route in ALL_ROUTES for route in value):
        raise TypeError(
            f"{attribute.name} must be a frozenset of route types such as "
            f"frozenset({{SignUpAnonymously, LogInAnonymously}}), not {type(value).__name__}"
        )


@attrs.frozen
class BackendCapabilities:
    """What a backend can do: which routes, and whether it can refresh and revoke sessions.

    ``routes`` is a frozenset of route types (``ALL_ROUTES`` minus some); anything else, or a
    flag that is not a ``bool`` (a truthy ``"no"``), raises ``TypeError``."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    routes: frozenset[type[AuthRoute]] = attrs.field(default=ALL_ROUTES, validator=_route_types)
    """The route types it can authenticate with."""
    refresh: bool = attrs.field(default=True, validator=flag)
    """Whether sessions can be refreshed; without it a session ends when its token expires."""
    revoke: bool = attrs.field(default=True, validator=flag)
    """Whether the service can be told a session ended; without it a log-out is local."""
    revoke_everywhere: bool = attrs.field(default=False, validator=flag)
    """Whether the service can end every session of the user at once (log out everywhere)."""
    delete: bool = attrs.field(default=False, validator=flag)
    """Whether the logged-in user can delete their account (the backend is a
    ``DeletingBackend``)."""

    def supports(self, route: AuthRoute) -> bool:
        """Whether the backend can perform ``route``."""
        return type(route) in self.routes


@runtime_checkable
class AuthBackend(Protocol):
    """An identity service, as the core needs it.

    Errors are raised as ``MimiCoreError`` subclasses: ``TransportError`` when the service
    cannot be reached, ``BackendError`` subclasses when it answers with an error. The core
    only calls what ``capabilities`` declares.
    """

    @property
    def capabilities(self) -> BackendCapabilities:
        """What this backend can do."""
        ...

    async def open(self, client: ClientCredentials) -> None:
        """Get ready to serve calls for this app (called once, on the running loop)."""
        ...

    async def close(self) -> None:
        """Release connections. Idempotent."""
        ...

    async def authenticate(self, route: AuthRoute, session: Session | None) -> BackendSession:
        """Run ``route``; ``session`` is the one logged in (a promotion acts on it).

        A log-in by anonymous id returns the user with that ``anonymous_id``; an anonymous
        sign-up, the new user with its new one. Blank anonymous ids never reach a backend.
        """
        ...

    async def refresh(self, session: Session) -> BackendSession:
        """Exchange the session's refresh token for new tokens.

        Raises ``SessionRevokedError`` when the service refuses (revoked, expired, reused,
        user deleted): the session is over.
        """
        ...

    async def revoke(self, session: Session, *, everywhere: bool = False) -> None:
        """End ``session`` at the service; with ``everywhere``, every session of its user
        (only asked of a backend whose capabilities declare ``revoke_everywhere``)."""
        ...


class DeletingBackend(AuthBackend, Protocol):
    """A backend that can also delete the logged-in user's account."""

    async def delete(self, session: Session) -> None:
        """Delete the account ``session`` belongs to; its sessions end with it."""
        ...


@runtime_checkable
class OriginBackend(AuthBackend, Protocol):
    """A backend that names the service and client its sessions come from (their origin),
    so a ``FileSessionStorage`` records whose session it holds and a core configured for
    another service or client never takes it in (see ``OtherOriginSessionError``)."""

    def origin(self, client: ClientCredentials) -> str:
        """A stable identity of the service and ``client``: never a secret (it is stored)."""
        ...
