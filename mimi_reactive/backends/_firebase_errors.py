"""How Firebase's error answers become the library's typed errors."""

from __future__ import annotations

import re
from typing import Any

from .._exceptions import (
    AccessTokenRefusedError,
    AccountDisabledError,
    BackendError,
    ClientAuthenticationError,
    ConflictError,
    InvalidCredentialsError,
    RateLimitedError,
    SessionRevokedError,
    SignInMethodDisabledError,
    WeakPasswordError,
)

__all__ = ["error_from"]

# Each Firebase error code the library gives a type, and what it says instead of Firebase's
# own message (which may quote what the user typed).
_ERRORS_BY_CODE: dict[str, tuple[type[BackendError], str]] = {
    "EMAIL_EXISTS": (ConflictError, "this email is already registered"),
    "INVALID_LOGIN_CREDENTIALS": (InvalidCredentialsError, "the email or password is wrong"),
    "INVALID_PASSWORD": (InvalidCredentialsError, "the email or password is wrong"),
    "EMAIL_NOT_FOUND": (InvalidCredentialsError, "the email or password is wrong"),
    "INVALID_REFRESH_TOKEN": (SessionRevokedError, "the session is no longer valid"),
    # The refresh token cannot be used with this app's key, however often it is tried: a
    # session of another project, or a refresh request Firebase cannot take.
    "PROJECT_NUMBER_MISMATCH": (SessionRevokedError, "the session is of another project"),
    "TENANT_ID_MISMATCH": (SessionRevokedError, "the session is of another tenant"),
    "MISSING_REFRESH_TOKEN": (SessionRevokedError, "the session has no refresh token"),
    "INVALID_GRANT_TYPE": (SessionRevokedError, "the session cannot be renewed"),
    "MISSING_GRANT_TYPE": (SessionRevokedError, "the session cannot be renewed"),
    "INVALID_ID_TOKEN": (AccessTokenRefusedError, "the ID token was refused"),
    # A deletion or a change of credentials long after the sign-in: a renewed ID token is
    # refused too (it keeps the sign-in's time), so the call fails and the user stays.
    "CREDENTIAL_TOO_OLD_LOGIN_AGAIN": (
        AccessTokenRefusedError,
        "the sign-in is too old for this; log in again",
    ),
    "TOKEN_EXPIRED": (SessionRevokedError, "the session was revoked; log in again"),
    "USER_NOT_FOUND": (SessionRevokedError, "the user no longer exists"),
    "USER_DISABLED": (AccountDisabledError, "the user's account is disabled"),
    "TOO_MANY_ATTEMPTS_TRY_LATER": (RateLimitedError, "too many attempts; try again later"),
    "QUOTA_EXCEEDED": (RateLimitedError, "the project's quota is used up; try again later"),
    # Google's own status names, in answers that have no Firebase code (quota, overload).
    "RESOURCE_EXHAUSTED": (RateLimitedError, "the project's quota is used up; try again later"),
    "UNAVAILABLE": (RateLimitedError, "Firebase is unavailable; try again later"),
    "WEAK_PASSWORD": (WeakPasswordError, "the password is too weak"),
    # A project's password policy (Identity Platform) refusing it, on a sign-up, a promotion,
    # or a log-in when the policy forces an upgrade at sign-in.
    "PASSWORD_DOES_NOT_MEET_REQUIREMENTS": (
        WeakPasswordError,
        "the password does not meet the project's password policy",
    ),
    "OPERATION_NOT_ALLOWED": (SignInMethodDisabledError, "this sign-in method is turned off"),
    # What a log-in by email and password gets while that sign-in method is turned off.
    "PASSWORD_LOGIN_DISABLED": (SignInMethodDisabledError, "this sign-in method is turned off"),
    # What Firebase (and its emulator) answer when anonymous sign-in is turned off.
    "ADMIN_ONLY_OPERATION": (SignInMethodDisabledError, "this sign-in method is turned off"),
    # The app's API key, not the user: refused on every call until the app is configured
    # again, so a refresh refused for it leaves the user logged in (as Firebase's SDKs do).
    "INVALID_API_KEY": (ClientAuthenticationError, "the app's API key was rejected"),
    "API_KEY_INVALID": (ClientAuthenticationError, "the app's API key was rejected"),
    "API_KEY_EXPIRED": (ClientAuthenticationError, "the app's API key has expired"),
    "API_KEY_SERVICE_BLOCKED": (
        ClientAuthenticationError,
        "the app's API key is restricted to other APIs",
    ),
}
# Google's reasons for a key it refuses start so (API_KEY_SERVICE_BLOCKED, a key restricted
# to other APIs; API_KEY_HTTP_REFERRER_BLOCKED, ...): each is the key, as those above.
_KEY_REASON = "API_KEY_"
_KEY_REFUSED = (ClientAuthenticationError, "the app's API key was refused for this call")
# A code as Firebase writes one; anything longer or otherwise is not taken as a code.
_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_BUSY = frozenset({429, 503})
"""Statuses that say "not now" whatever the answer (a proxy's page, an empty body)."""


def error_from(status: int, answer: Any, *, retry_after: float | None = None) -> BackendError:
    """The typed error for a Firebase error answer: ``{"error": {"message": "CODE : ..."}}``,
    or Google's ``{"error": {"status": "RESOURCE_EXHAUSTED", ...}}``. A 429, a 503 or a
    quota code is ``RateLimitedError`` with the wait its ``Retry-After`` header asked for
    (``retry_after``, in seconds)."""
    code = _code_of(answer)
    if code is None:
        code, kind, description = f"http_{status}", BackendError, "Firebase answered with an error"
    else:
        other = _KEY_REFUSED if code.startswith(_KEY_REASON) else None
        kind, description = _ERRORS_BY_CODE.get(
            code, other or (BackendError, "Firebase refused the request")
        )
    if status in _BUSY or kind is RateLimitedError:
        return RateLimitedError(
            code,
            description if kind is RateLimitedError else "Firebase is busy; try again later",
            status=status,
            retry_after=retry_after,
        )
    return kind(code, description, status=status)


def _code_of(answer: Any) -> str | None:
    """The answer's code: its message's first segment if that is a code; else the reason
    Google gives for a refused API key (``details``' ``ErrorInfo``, ``API_KEY_INVALID``); else
    a rejected API key if the message says so; else Google's status name; None if it has
    none."""
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        return None
    message = error.get("message")
    if isinstance(message, str):
        code = message.split(":", 1)[0].strip()
        if _CODE.fullmatch(code):
            return code
    reason = _key_reason(error.get("details"))
    if reason is not None:
        return reason
    # "API key not valid. ...", "The request is missing a valid API key."; only here, where
    # no code comes first, so a quoted user's text cannot turn into it.
    if isinstance(message, str) and "API key" in message:
        return "INVALID_API_KEY"
    status = error.get("status")
    return status if isinstance(status, str) and _CODE.fullmatch(status) else None


def _key_reason(details: object) -> str | None:
    """The ``reason`` of Google's ``ErrorInfo`` detail if it names a refused API key."""
    if not isinstance(details, list):
        return None
    for detail in details[:8]:  # Google sends one or two; a hostile list is not walked whole
        reason = detail.get("reason") if isinstance(detail, dict) else None
        if isinstance(reason, str) and reason.startswith(_KEY_REASON) and _CODE.fullmatch(reason):
            return reason
    return None
