"""``FirebaseBackend``: Firebase Auth's Identity Toolkit and Secure Token REST APIs."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import unicodedata
from typing import Any

import aiohttp

from .._backend import BackendCapabilities, ClientCredentials
from .._checks import (
    LONGEST_LIFETIME,
    check_host_and_port,
    check_timeout,
    check_trimmed,
)
from .._exceptions import (
    AccessTokenRefusedError,
    AccountDisabledError,
    BackendError,
    ClientAuthenticationError,
    ConfigurationError,
    ConflictError,
    InvalidCredentialsError,
    RateLimitedError,
    SessionRevokedError,
    SignInMethodDisabledError,
    UnsupportedRouteError,
    WeakPasswordError,
)
from .._messages import AuthRoute, LogIn, Promote, SignUp, SignUpAnonymously
from .._reasons import Reason
from .._session import AuthTokens, BackendSession, Session
from .._user import MimiUser
from ._answers import post_json

__all__ = ["EMULATOR_HOST_VARIABLE", "FirebaseBackend"]

EMULATOR_HOST_VARIABLE = "FIREBASE_AUTH_EMULATOR_HOST"
"""The environment variable Firebase's own SDKs read to reach the Auth emulator."""

_IDENTITY_TOOLKIT = "identitytoolkit.googleapis.com/v1"
_SECURE_TOKEN = "securetoken.googleapis.com/v1"  # noqa: S105 (a host name)

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
    "OPERATION_NOT_ALLOWED": (SignInMethodDisabledError, "this sign-in method is turned off"),
    # What Firebase (and its emulator) answer when anonymous sign-in is turned off.
    "ADMIN_ONLY_OPERATION": (SignInMethodDisabledError, "this sign-in method is turned off"),
    "INVALID_API_KEY": (ClientAuthenticationError, "the app's API key was rejected"),
}
# A code as Firebase writes one; anything longer or otherwise is not taken as a code.
_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_BUSY = frozenset({429, 503})
"""Statuses that say "not now" whatever the answer (a proxy's page, an empty body)."""
_LONGEST_UID = 128
"""Firebase's limit on a uid's length."""
# What a Web API key (or a tenant id) can hold: printable ASCII without spaces; anything else
# would fail every call, or break the header it is sent in.
_KEY_TEXT = re.compile(r"[\x21-\x7e]+")


class FirebaseBackend:
    """Talks to Firebase Auth for the app whose Web API key is ``api_key``.

    ``emulator_host`` (``"127.0.0.1:9099"``) or the ``FIREBASE_AUTH_EMULATOR_HOST``
    environment variable targets the Auth emulator, as Firebase's SDKs do. ``tenant_id``
    signs users into one Identity Platform tenant. One ``aiohttp.ClientSession`` serves every
    call, each with a total ``timeout`` in seconds.

    It signs up anonymously, refreshes through the Secure Token API, signs up and logs in
    with email and password, promotes the anonymous user by linking email and password (the
    user id stays), and deletes accounts. It cannot log in by anonymous id (Firebase has no
    such credential), and a log-out is local: Firebase's client API cannot revoke a session.
    """

    capabilities = BackendCapabilities(
        routes=frozenset({SignUpAnonymously, LogIn, SignUp, Promote}),
        refresh=True,
        revoke=False,
        delete=True,
    )

    def __init__(
        self,
        api_key: str,
        *,
        emulator_host: str | None = None,
        tenant_id: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not isinstance(api_key, str):
            raise TypeError(f"api_key must be a str, not {type(api_key).__name__}")
        check_timeout("timeout", timeout)
        if not api_key.strip():
            raise ConfigurationError("FirebaseBackend needs the Firebase app's Web API key")
        check_trimmed("api_key", api_key)
        if not _KEY_TEXT.fullmatch(api_key):  # never shown: it is a secret
            raise ConfigurationError(
                "api_key holds a character no Web API key has (only printable ASCII, no spaces)"
            )
        _check_tenant_id(tenant_id)
        if emulator_host is not None:
            check_host_and_port("emulator_host", emulator_host)
            host: str | None = emulator_host
        else:
            host = os.environ.get(EMULATOR_HOST_VARIABLE) or None
            if host is not None:
                check_host_and_port(EMULATOR_HOST_VARIABLE, host)
        self._api_key = api_key
        self._emulator_host = host
        self._tenant_id = tenant_id
        # The emulator serves both APIs under its own root, by their production host names.
        self._identity = (
            f"http://{host}/{_IDENTITY_TOOLKIT}" if host else f"https://{_IDENTITY_TOOLKIT}"
        )
        self._secure_token = (
            f"http://{host}/{_SECURE_TOKEN}" if host else f"https://{_SECURE_TOKEN}"
        )
        self._service = f"the Firebase Auth emulator at {host}" if host else "Firebase Auth"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        where = f"emulator_host={self._emulator_host!r}" if self._emulator_host else "production"
        return f"FirebaseBackend({where})"

    def origin(self, client: ClientCredentials) -> str:
        """Where (production or the emulator's host), the tenant, and a digest of the API key
        that names the Firebase project: the key itself is never stored."""
        key = hashlib.sha256(self._api_key.encode()).hexdigest()[:16]
        where = (self._emulator_host or "production").lower()  # a host's case is no part of it
        return f"firebase {where} tenant={self._tenant_id or ''} key-sha256={key}"

    async def open(self, client: ClientCredentials) -> None:
        """Open the connection pool; Firebase identifies the app by the API key alone."""
        if self._session is not None:
            raise ConfigurationError("this FirebaseBackend is already open; use one per MimiCore")
        # The key goes in a header, never in the URL, so no logged URL or error can show it.
        self._session = aiohttp.ClientSession(
            headers={"X-Goog-Api-Key": self._api_key},
            timeout=self._timeout,
            raise_for_status=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def authenticate(self, route: AuthRoute, session: Session | None) -> BackendSession:
        match route:
            case SignUpAnonymously():
                return _issued(await self._identity_call("accounts:signUp", {}))
            case LogIn(email=email, password=password):
                credentials = {"email": email, "password": password}
                return _issued(
                    await self._identity_call("accounts:signInWithPassword", credentials)
                )
            case SignUp(email=email, password=password):
                credentials = {"email": email, "password": password}
                return _issued(await self._identity_call("accounts:signUp", credentials))
            case Promote(email=email, password=password) if session is not None:
                await self._check_still_anonymous(session)
                # Linking email and password keeps the uid and issues tokens for the new user.
                linked = {"idToken": session.tokens.access_token, "email": email}
                answer = await self._identity_call(
                    "accounts:update", {**linked, "password": password}
                )
                return _issued(answer, session)
        raise UnsupportedRouteError(Reason.BACKEND_CANNOT)

    async def _check_still_anonymous(self, session: Session) -> None:
        """Refuse to promote a user another device promoted (or linked) since this one last
        renewed: on a user with a password, accounts:update changes the email and password
        instead of linking them. As the reference server: ``ConflictError`` ``not_anonymous``."""
        answer = await self._identity_call(
            "accounts:lookup", {"idToken": session.tokens.access_token}, tokens=False
        )
        users = answer.get("users")
        if not isinstance(users, list) or not users:
            raise SessionRevokedError("USER_NOT_FOUND", "the user no longer exists")
        record = users[0]
        if not isinstance(record, dict) or record.get("localId") != session.user.id:
            raise BackendError("invalid_response", "the answer names another user")
        linked = ("email", "phoneNumber", "passwordHash", "providerUserInfo")
        if any(record.get(each) for each in linked):
            raise ConflictError("not_anonymous", "only an anonymous user can be promoted")

    async def refresh(self, session: Session) -> BackendSession:
        refresh_token = session.tokens.refresh_token
        if refresh_token is None:
            raise SessionRevokedError("INVALID_REFRESH_TOKEN", "the session has no refresh token")
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        answer = await self._call(self._secure_token + "/token", data=form)
        named = answer.get("user_id")
        renewed = _issued(
            {
                "idToken": answer.get("id_token"),
                "refreshToken": answer.get("refresh_token"),
                "expiresIn": answer.get("expires_in"),
            },
            session,
        )
        # The session's own user, or a confused answer: never a switch published as renewal.
        if renewed.user.id != session.user.id or named not in (None, session.user.id):
            raise BackendError("invalid_response", "the renewed tokens name another user")
        return renewed

    async def revoke(self, session: Session, *, everywhere: bool = False) -> None:
        """Nothing to tell: Firebase's client API cannot revoke a session (a log-out is
        local; ``capabilities.revoke`` is False, so the core never calls this)."""

    async def delete(self, session: Session) -> None:
        await self._identity_call("accounts:delete", {"idToken": session.tokens.access_token})

    async def _identity_call(
        self, method: str, payload: dict[str, Any], *, tokens: bool = True
    ) -> dict[str, Any]:
        body = {**payload, "returnSecureToken": True} if tokens else dict(payload)
        if self._tenant_id is not None:
            body["tenantId"] = self._tenant_id
        return await self._call(f"{self._identity}/{method}", json_body=body)

    async def _call(
        self,
        url: str,
        *,
        json_body: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        answer = await post_json(
            self._session, url, service=self._service, json=json_body, data=data
        )
        if answer.status >= 400:
            raise error_from(answer.status, answer.body, retry_after=answer.retry_after)
        return answer.json_object()


def error_from(status: int, answer: Any, *, retry_after: float | None = None) -> BackendError:
    """The typed error for a Firebase error answer: ``{"error": {"message": "CODE : ..."}}``,
    or Google's ``{"error": {"status": "RESOURCE_EXHAUSTED", ...}}``. A 429, a 503 or a
    quota code is ``RateLimitedError`` with the wait its ``Retry-After`` header asked for
    (``retry_after``, in seconds)."""
    code = _code_of(answer)
    if code is None:
        code, kind, description = f"http_{status}", BackendError, "Firebase answered with an error"
    else:
        kind, description = _ERRORS_BY_CODE.get(
            code, (BackendError, "Firebase refused the request")
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
    """The answer's code: its message's first segment if that is a code; else a rejected API
    key if the message says so; else Google's status name; None if it has none."""
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        return None
    message = error.get("message")
    if isinstance(message, str):
        code = message.split(":", 1)[0].strip()
        if _CODE.fullmatch(code):
            return code
        # "API key not valid. ...", "The request is missing a valid API key."; only here,
        # where no code comes first, so a quoted user's text cannot turn into it.
        if "API key" in message:
            return "INVALID_API_KEY"
    status = error.get("status")
    return status if isinstance(status, str) and _CODE.fullmatch(status) else None


def _check_tenant_id(tenant_id: object) -> None:
    """A tenant id is None or an Identity Platform tenant's id as it was issued."""
    if tenant_id is None:
        return
    if not isinstance(tenant_id, str):
        raise TypeError(f"tenant_id must be a str or None, not {type(tenant_id).__name__}")
    if not tenant_id:
        raise ConfigurationError("tenant_id is empty: give the tenant's id, or None for none")
    check_trimmed("tenant_id", tenant_id)
    if len(tenant_id) > _LONGEST_UID or not _KEY_TEXT.fullmatch(tenant_id):
        raise ConfigurationError(
            f"tenant_id is not a tenant's id (up to {_LONGEST_UID} printable ASCII characters)"
        )


def _issued(answer: dict[str, Any], session: Session | None = None) -> BackendSession:
    """The user and tokens of an answer carrying ``idToken``, ``refreshToken``, ``expiresIn``.
    An answer renewing ``session`` without a refresh token keeps the session's (Firebase's
    refresh tokens do not rotate): dropping it would end the session at the next renewal."""
    id_token = answer.get("idToken")
    if not isinstance(id_token, str):
        raise BackendError("invalid_response", "the answer has no ID token")
    refresh_token = answer.get("refreshToken")
    if not isinstance(refresh_token, str) or not refresh_token:
        refresh_token = None if session is None else session.tokens.refresh_token
    tokens = AuthTokens(
        access_token=id_token,
        refresh_token=refresh_token,
        expires_in=_lifetime(answer.get("expiresIn")),
    )
    return BackendSession(_user_from(id_token), tokens)


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
        and 0 < len(user_id) <= _LONGEST_UID
        and not any(unicodedata.category(each) == "Cc" for each in user_id)
    )
