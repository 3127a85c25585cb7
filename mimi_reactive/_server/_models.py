"""The shape of every request body and answer, declared once with pydantic.

The server validates each body against its model at one edge (``_edge.py``) and the OpenAPI
document is generated from the same models (``_openapi.py``), so what the document says is
refused is exactly what the server refuses. Patterns use Python's ``re`` (``regex_engine``)
and end at ``\\Z``, the true end (Python's ``$`` also matches before a final newline, which
let ``"a@example.test\\n"`` in as a second account). The document writes ``\\Z`` as ``$``,
the true end in ECMA-262, the dialect of JSON Schema, as schemathesis reads it too.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from .._credential_rules import (
    ANONYMOUS_ID_CHARACTERS,
    ANONYMOUS_ID_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    EMAIL_PATTERN,
    MIN_PASSWORD_LENGTH,
    PASSWORD_MAX_LENGTH,
)

__all__ = [
    "AnonymousLogIn",
    "AnonymousSignUp",
    "Credentials",
    "Deletion",
    "Document",
    "Empty",
    "ErrorAnswer",
    "Health",
    "Introspection",
    "Jwks",
    "LogIn",
    "Promoted",
    "Promotion",
    "RefreshGrant",
    "Revocation",
    "RevocationEverywhere",
    "RevokedEverywhere",
    "SignedIn",
    "TokenQuery",
]

_REQUEST = ConfigDict(strict=True, regex_engine="python-re", extra="ignore")

# Anonymous ids and refresh tokens are 32 random bytes in URL-safe base64 (43 characters);
# access tokens are JWTs (three such parts joined by dots, under 1 KiB).
# The client refuses an anonymous id by the same rule before it sends one (``_checks``).
Secret = Annotated[
    str,
    Field(
        min_length=1,
        max_length=ANONYMOUS_ID_MAX_LENGTH,
        pattern=rf"^[{ANONYMOUS_ID_CHARACTERS}]+\Z",
    ),
]
Email = Annotated[
    str,
    Field(
        max_length=EMAIL_MAX_LENGTH,
        pattern=rf"^{EMAIL_PATTERN}\Z",
        description="compared without regard to case",
    ),
]
Password = Annotated[str, Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)]
NewPassword = Annotated[
    str,
    Field(
        min_length=MIN_PASSWORD_LENGTH,
        max_length=PASSWORD_MAX_LENGTH,
        description=f"at least {MIN_PASSWORD_LENGTH} characters (else 400 weak_password)",
    ),
]


class AnonymousSignUp(BaseModel):
    """``POST /v1/anonymous-users``: an empty JSON object."""

    model_config = _REQUEST


class AnonymousLogIn(BaseModel):
    """``POST /v1/sessions/anonymous``: log in with the id the app stored."""

    model_config = _REQUEST
    anonymous_id: Secret


class Credentials(BaseModel):
    """``POST /v1/users``: sign up with an email and a new password."""

    model_config = _REQUEST
    email: Email
    password: NewPassword


class LogIn(BaseModel):
    """``POST /v1/sessions``: log in with an email and password."""

    model_config = _REQUEST
    email: Email
    password: Password


class Promotion(BaseModel):
    """``POST /v1/users/promote``: give the logged-in anonymous user credentials."""

    model_config = _REQUEST
    access_token: Secret
    email: Email
    password: NewPassword


class Revocation(BaseModel):
    """``POST /v1/sessions/revoke``: end the session holding this access or refresh token."""

    model_config = _REQUEST
    token: Secret


class Deletion(BaseModel):
    """``POST /v1/users/delete``: delete the logged-in user, with every session."""

    model_config = _REQUEST
    access_token: Secret


class RevocationEverywhere(BaseModel):
    """``POST /v1/sessions/revoke-all``: end every session of the logged-in user."""

    model_config = _REQUEST
    access_token: Secret


class RefreshGrant(BaseModel):
    """``POST /v1/token``: exchange a refresh token (any other grant type is refused)."""

    model_config = _REQUEST
    grant_type: Literal["refresh_token"]
    refresh_token: Secret


class TokenQuery(BaseModel):
    """``POST /v1/token/introspect``: is this access token valid now."""

    model_config = _REQUEST
    token: Secret


# Answers: documented from these models; schemathesis checks each answer against them.


class User(BaseModel):
    """A user as the server shows it."""

    id: str
    is_anonymous: bool
    email: str | None
    anonymous_id: str | None = Field(
        default=None, description="only in the answer that created the anonymous user"
    )


class Session(BaseModel):
    """A token pair."""

    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"]
    expires_in: float = Field(description="seconds the access token is valid")


class SignedIn(BaseModel):
    """A user and a new session."""

    user: User
    session: Session


class AccessGrant(BaseModel):
    """A new access token of the same session: its refresh token goes on."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: float = Field(description="seconds the access token is valid")


class Promoted(BaseModel):
    """The promoted user, and an access token that says it is no longer anonymous (the
    session and its refresh token go on; tokens issued before still say it was)."""

    user: User
    session: AccessGrant


class Introspection(BaseModel):
    """Whether an access token is valid now (RFC 7662)."""

    active: bool
    user_id: str | None = None
    expires_in: float | None = None


class RevokedEverywhere(BaseModel):
    """Every session of the user is revoked."""

    revoked_sessions: int = Field(description="how many live sessions were ended")


class Jwks(BaseModel):
    """The public keys that verify access tokens (RFC 7517), the signing one first."""

    keys: list[dict[str, str]]


class Empty(BaseModel):
    """An empty JSON object."""


class Document(BaseModel):
    """This OpenAPI document."""

    openapi: str
    paths: dict[str, object]


class Health(BaseModel):
    """The server is up."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """The server can serve: its database answers and is the one it opened."""

    status: Literal["ready"]


ErrorCode = Literal[
    "invalid_request",
    "weak_password",
    "invalid_client",
    "invalid_token",
    "email_taken",
    "not_anonymous",
    "route_not_allowed",
    "rate_limited",
    "server_busy",
    "temporarily_unavailable",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "not_found",
    "method_not_allowed",
    "expectation_failed",
    "request_too_large",
    "request_timeout",
    "unsupported_media_type",
    "internal_error",
]


RefusalReason = Literal[
    "unknown", "revoked", "reused", "idle", "anonymous_only_client", "anonymous_only_user"
]


class ErrorDetail(BaseModel):
    """A stable code and a message that never holds a secret; where the code alone does not
    say why, ``reason`` does. A refused refresh: a session ended on purpose (``revoked``,
    ``reused``) stays ended, one that expired unused (``idle``) or is not known (``unknown``)
    may log back in by anonymous id. A ``route_not_allowed``: the calling client is
    anonymous-only (``anonymous_only_client``), or the user to promote belongs to an
    anonymous-only client (``anonymous_only_user``), whichever client asks."""

    code: ErrorCode
    message: str
    reason: RefusalReason | None = None


class ErrorAnswer(BaseModel):
    """Every error answer."""

    error: ErrorDetail
