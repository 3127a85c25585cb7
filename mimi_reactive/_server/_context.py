"""The state every handler shares (one app key holds it all); the settings are in ``_settings``."""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import structlog
from aiohttp import web

from ._database import IdentityDatabase
from ._limits import RateLimiter
from ._readiness import Readiness
from ._secrets import PasswordHasher
from ._settings import ServerSettings
from ._tokens import AccessTokens

__all__ = ["STATE", "RegisteredClient", "ServerSettings", "ServerState", "client_of"]


@attrs.frozen
class RegisteredClient:
    """A client as the server keeps it: the digests of its secrets (its secret, and during a
    roll-over the previous one), and its policy."""

    id: str
    secret_digests: tuple[str, ...] = attrs.field(repr=False)
    anonymous_only: bool = False


@attrs.define
class ServerState:
    """Everything the handlers share."""

    database: IdentityDatabase
    settings: ServerSettings
    clients: Mapping[str, RegisteredClient]
    passwords: PasswordHasher
    limiter: RateLimiter
    tokens: AccessTokens
    log: structlog.typing.FilteringBoundLogger
    openapi: bytes = b""
    dummy_hash: str = attrs.field(default="", repr=False)
    """A real Argon2 hash to verify against when an email is unknown (same time, same answer)."""
    readiness: Readiness = attrs.field(factory=Readiness, repr=False)
    """``GET /ready``'s last answer in this process."""


STATE = web.AppKey("state", ServerState)
_CLIENT = web.RequestKey("client", RegisteredClient)


def client_of(request: web.Request) -> RegisteredClient:
    """The authenticated client of the request (set by the authentication middleware)."""
    return request[_CLIENT]


def set_client(request: web.Request, client: RegisteredClient) -> None:
    request[_CLIENT] = client
