"""``FirebaseBackend``: Firebase Auth's Identity Toolkit and Secure Token REST APIs."""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

import aiohttp

from .._backend import BackendCapabilities, ClientCredentials
from .._checks import (
    check_host_and_port,
    check_timeout,
    check_trimmed,
)
from .._exceptions import (
    BackendError,
    ConfigurationError,
    ConflictError,
    SessionRevokedError,
    UnsupportedRouteError,
)
from .._messages import AuthRoute, LogIn, Promote, SignUp, SignUpAnonymously
from .._reasons import Reason
from .._session import BackendSession, Session
from ._answers import post_json
from ._firebase_answers import LONGEST_UID, issued
from ._firebase_errors import error_from

__all__ = ["EMULATOR_HOST_VARIABLE", "FirebaseBackend"]

EMULATOR_HOST_VARIABLE = "FIREBASE_AUTH_EMULATOR_HOST"
"""The environment variable Firebase's own SDKs read to reach the Auth emulator."""

_IDENTITY_TOOLKIT = "identitytoolkit.googleapis.com/v1"
_SECURE_TOKEN = "securetoken.googleapis.com/v1"  # noqa: S105 (a host name)

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
                return issued(await self._identity_call("accounts:signUp", {}))
            case LogIn(email=email, password=password):
                credentials = {"email": email, "password": password}
                return issued(await self._identity_call("accounts:signInWithPassword", credentials))
            case SignUp(email=email, password=password):
                credentials = {"email": email, "password": password}
                return issued(await self._identity_call("accounts:signUp", credentials))
            case Promote(email=email, password=password) if session is not None:
                await self._check_still_anonymous(session)
                # Linking email and password keeps the uid and issues tokens for the new user.
                linked = {"idToken": session.tokens.access_token, "email": email}
                answer = await self._identity_call(
                    "accounts:update", {**linked, "password": password}
                )
                return issued(answer, session)
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
        # The Secure Token API's names for Identity Toolkit's; a field it left out stays out
        # (a refresh token left out keeps the session's), and a user_id left out is taken
        # as the ID token's, which must be the session's user.
        names = {"id_token": "idToken", "refresh_token": "refreshToken"}
        names |= {"expires_in": "expiresIn", "user_id": "localId"}
        renamed = {ours: answer[theirs] for theirs, ours in names.items() if theirs in answer}
        renamed.setdefault("localId", session.user.id)
        renewed = issued(renamed, session)
        # The session's own user, or a confused answer: never a switch published as renewal.
        if renewed.user.id != session.user.id:
            raise BackendError("invalid_response", "the renewed tokens name another user")
        return renewed

    async def revoke(self, session: Session, *, everywhere: bool = False) -> None:
        """Nothing to tell: Firebase's client API cannot revoke a session (a log-out is
        local; ``capabilities.revoke`` is False, so the core never calls this)."""

    async def delete(self, session: Session) -> None:
        # No returnSecureToken: accounts:delete's request has no such field (nor do Firebase's
        # SDKs send one), and Google's APIs may refuse a JSON name the request lacks.
        await self._identity_call(
            "accounts:delete", {"idToken": session.tokens.access_token}, tokens=False
        )

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


def _check_tenant_id(tenant_id: object) -> None:
    """A tenant id is None or an Identity Platform tenant's id as it was issued."""
    if tenant_id is None:
        return
    if not isinstance(tenant_id, str):
        raise TypeError(f"tenant_id must be a str or None, not {type(tenant_id).__name__}")
    if not tenant_id:
        raise ConfigurationError("tenant_id is empty: give the tenant's id, or None for none")
    check_trimmed("tenant_id", tenant_id)
    if len(tenant_id) > LONGEST_UID or not _KEY_TEXT.fullmatch(tenant_id):
        raise ConfigurationError(
            f"tenant_id is not a tenant's id (up to {LONGEST_UID} printable ASCII characters)"
        )
