"""What an access token of the identity service says, and the checks any reader of one makes:
the resource servers' verifier and the service's own introspection, so both say the same of
a token."""

from __future__ import annotations

import math
from typing import Any

import attrs
import jwt

from ._exceptions import MimiCoreError
from ._values import value_eq, value_hash, value_repr

__all__ = ["ALGORITHMS", "LONGEST_TOKEN", "InvalidTokenError", "VerifiedToken", "decoded", "kid_of"]

ALGORITHMS = ("ES256",)
"""The signing algorithms an access token may use."""
_TYPES = ("at+jwt", "application/at+jwt")


class InvalidTokenError(MimiCoreError):
    """The token is not a valid access token of this service; ``reason`` says why.

    Neither the message nor the reason ever holds the token.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@attrs.frozen
class VerifiedToken:
    """What a valid access token says about its caller."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    user_id: str
    is_anonymous: bool
    client_id: str
    expires_at: float
    """Unix time the token expires."""
    issued_at: float
    session_id: str | None = None


LONGEST_TOKEN = 8192
"""Characters an access token may have. The service's are under a kilobyte; a longer one
is refused before it costs a decode and a signature check (a 10 MB token took a second)."""


def kid_of(token: str) -> str:
    """The ``kid`` of the key the token says signed it, if it is an access token JWT (``typ``
    ``at+jwt``) of an allowed algorithm."""
    if len(token) > LONGEST_TOKEN:
        raise InvalidTokenError("malformed", "the token is too long to be an access token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidTokenError("malformed", "not a signed JWT") from None
    if header.get("alg") not in ALGORITHMS:
        raise InvalidTokenError("algorithm_not_allowed", "the token's algorithm is refused")
    typ = header.get("typ")
    # RFC 9068: an access token says so, so that an id token or another JWT signed with the
    # same key cannot pass for one; the media type's "application/" may be left out.
    if not isinstance(typ, str) or typ.lower() not in _TYPES:
        raise InvalidTokenError("wrong_type", "the token's typ is not at+jwt")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise InvalidTokenError("unknown_key", "the token names no key")
    return kid


def decoded(token: str, key: jwt.PyJWK, *, issuer: str, leeway: float, now: float) -> VerifiedToken:
    """The claims of ``token`` if ``key`` signed it for ``issuer`` and it is valid at ``now``
    (Unix time, give or take ``leeway`` seconds). The identity service's introspection checks
    its tokens with this too, against its own clock, so both say the same of a token."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=list(ALGORITHMS),
            issuer=issuer,
            options={
                "require": ["exp", "iat", "iss", "sub"],
                # Checked below against ``now``, not this machine's clock, with ``leeway``.
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidIssuerError:
        raise InvalidTokenError("wrong_issuer", "the token is from another issuer") from None
    except jwt.InvalidSignatureError:
        raise InvalidTokenError("bad_signature", "the signature does not verify") from None
    except jwt.PyJWTError as error:
        raise InvalidTokenError("invalid", type(error).__name__) from None
    user_id = claims["sub"]
    if not isinstance(user_id, str) or not user_id:
        raise InvalidTokenError("missing_claim", "the token's sub is not a user id")
    client_id, is_anonymous = claims.get("client_id"), claims.get("is_anonymous")
    if not isinstance(client_id, str) or not isinstance(is_anonymous, bool):
        raise InvalidTokenError("missing_claim", "the token lacks client_id or is_anonymous")
    expires_at, issued_at = _unix_time(claims, "exp"), _unix_time(claims, "iat")
    if expires_at <= now - leeway:
        raise InvalidTokenError("expired", "the token has expired")
    if issued_at > now + leeway:
        raise InvalidTokenError("invalid", "the token is issued in the future")
    if "nbf" in claims and _unix_time(claims, "nbf") > now + leeway:
        raise InvalidTokenError("invalid", "the token is not valid yet (nbf)")
    session_id = claims.get("sid")
    return VerifiedToken(
        user_id=user_id,
        is_anonymous=is_anonymous,
        client_id=client_id,
        expires_at=expires_at,
        issued_at=issued_at,
        session_id=session_id if isinstance(session_id, str) else None,
    )


def _unix_time(claims: dict[str, Any], name: str) -> float:
    """Claim ``name`` as Unix time; ``InvalidTokenError`` unless it is a finite number."""
    value = claims[name]
    # A bool is an int in Python: "iat": true would read as one second past 1970.
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an int past any float
            pass
        else:
            if math.isfinite(seconds):  # JSON as Python reads it allows NaN and Infinity
                return seconds
    raise InvalidTokenError("invalid", f"{name} must be a number of seconds")
