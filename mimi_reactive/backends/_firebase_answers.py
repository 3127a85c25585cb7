"""How Firebase's success answers become a user and tokens, each part checked."""

from __future__ import annotations

import base64
import binascii
import json
import unicodedata
from typing import Any

from .._checks import LONGEST_LIFETIME
from .._exceptions import BackendError
from .._session import AuthTokens, BackendSession, Session
from .._user import MimiUser

__all__ = ["LONGEST_UID", "issued"]

LONGEST_UID = 128
"""Firebase's limit on a uid's length."""


def issued(answer: dict[str, Any], session: Session | None = None) -> BackendSession:
    """The user and tokens of an answer carrying ``idToken``, ``refreshToken``, ``expiresIn``
    and ``localId``; ``BackendError("invalid_response")`` for one malformed, so nothing is
    stored: a session without a refresh token could never be renewed, and one whose
    ``localId`` is not its ID token's user is not Firebase's answer. An answer renewing
    ``session`` with no ``refreshToken`` at all keeps the session's (Firebase's refresh
    tokens do not rotate): dropping it would end the session at the next renewal."""
    id_token = answer.get("idToken")
    if not isinstance(id_token, str) or not id_token:
        raise BackendError("invalid_response", "the answer has no ID token")
    if "refreshToken" not in answer and session is not None:
        refresh_token = session.tokens.refresh_token
    else:
        refresh_token = answer.get("refreshToken")
        if not isinstance(refresh_token, str) or not refresh_token:
            raise BackendError("invalid_response", "the answer has no refresh token")
    tokens = AuthTokens(
        access_token=id_token,
        refresh_token=refresh_token,
        expires_in=_lifetime(answer.get("expiresIn")),
    )
    user = _user_from(id_token)
    if answer.get("localId") != user.id:  # absent, not a str, or another user's
        raise BackendError("invalid_response", "the answer's user is not its ID token's")
    return BackendSession(user, tokens)


def _lifetime(expires_in: object) -> float | None:
    """Seconds the tokens live, from Firebase's ``expiresIn`` ("3600"); None if it sent none.
    A bool, or anything but a positive number up to a century ("NaN", "-5", "1e400"), is
    refused as ``AuthTokens`` would refuse it, but as the malformed answer it is."""
    if expires_in is None:
        return None
    if isinstance(expires_in, bool) or not isinstance(expires_in, str | int | float):
        raise BackendError("invalid_response", "the token lifetime is not a number")
    try:
        lifetime = float(expires_in)
    except (ValueError, OverflowError) as error:  # OverflowError: an integer of 400 digits
        raise BackendError("invalid_response", "the token lifetime is not a number") from error
    if not 0 < lifetime <= LONGEST_LIFETIME:  # NaN is refused too: it compares false
        raise BackendError("invalid_response", "the token lifetime is out of range")
    return lifetime


def _user_from(id_token: str) -> MimiUser:
    """The user an ID token names. Read, not verified: it came straight from Firebase, and
    only says who is logged in; services that trust it verify it themselves."""
    try:
        payload = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        user_id = claims["user_id"]
        email = claims.get("email")
        firebase = claims.get("firebase", {})
        provider = firebase.get("sign_in_provider")
        # Every sign-in method linked since, by provider: {} while only anonymous.
        identities = firebase.get("identities")
        phone = claims.get("phone_number")
    except (IndexError, KeyError, TypeError, AttributeError, ValueError, binascii.Error) as error:
        raise BackendError("invalid_response", "the ID token cannot be read") from error
    if not _is_uid(user_id) or not (email is None or isinstance(email, str)):
        raise BackendError("invalid_response", "the ID token names no valid user")
    # The token keeps sign_in_provider "anonymous" after a phone or an IdP without email is
    # linked (elsewhere, or before a refresh): only a user with nothing linked is anonymous.
    is_anonymous = provider == "anonymous" and not identities and not email and not phone
    return MimiUser(id=user_id, anonymous_id=None, is_anonymous=is_anonymous, email=email)


def _is_uid(user_id: object) -> bool:
    """Whether ``user_id`` can be a Firebase uid: up to 128 characters, none a control one."""
    return (
        isinstance(user_id, str)
        and 0 < len(user_id) <= LONGEST_UID
        and not any(unicodedata.category(each) == "Cc" for each in user_id)
    )
