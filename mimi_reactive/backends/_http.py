"""``HttpBackend``: the REST API of the reference server, over one shared aiohttp session."""

from __future__ import annotations

from typing import Any

import aiohttp
import attrs

from .._backend import BackendCapabilities, ClientCredentials
from .._checks import canonical_url, check_service_url, check_timeout
from .._exceptions import (
    AccessTokenRefusedError,
    BackendError,
    ClientAuthenticationError,
    ConfigurationError,
    ConflictError,
    InvalidCredentialsError,
    RateLimitedError,
    RouteRefusedError,
    SessionEndedError,
    SessionRevokedError,
    UnsupportedRouteError,
    WeakPasswordError,
)
from .._messages import AuthRoute, LogIn, LogInAnonymously, Promote, SignUp, SignUpAnonymously
from .._reasons import Reason
from .._redaction import LONGEST_LINE, one_line
from .._session import AuthTokens, BackendSession, Session
from .._user import MimiUser
from ._answers import Answer, post_json

__all__ = ["HttpBackend"]

_ERRORS_BY_CODE: dict[str, type[BackendError]] = {
    "invalid_client": ClientAuthenticationError,
    # Servers before 400 invalid_grant answered a wrong anonymous id or password with these.
    "invalid_anonymous_id": InvalidCredentialsError,
    "invalid_credentials": InvalidCredentialsError,
    "invalid_token": AccessTokenRefusedError,
    "invalid_grant": SessionRevokedError,
    "email_taken": ConflictError,
    "not_anonymous": ConflictError,
    "weak_password": WeakPasswordError,
}
_LOG_IN_REFUSALS = {
    "/v1/sessions/anonymous": "invalid_anonymous_id",
    "/v1/sessions": "invalid_credentials",
}
"""The code every backend gives a refused log-in, by path: there the server's 400
``invalid_grant`` refuses the user's anonymous id or password, not a session."""


class HttpBackend:
    """Talks to the reference server at ``base_url``.

    One ``aiohttp.ClientSession`` serves every call; each call has a total ``timeout`` in
    seconds. Network failures raise ``TransportError``, error answers the
    ``BackendError`` subclass for the server's error code. An email the server would refuse
    raises ``InvalidRouteError`` without a call.
    """

    capabilities = BackendCapabilities(delete=True, revoke_everywhere=True)

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        check_service_url("base_url", base_url)
        check_timeout("timeout", timeout)
        self._base_url = base_url.rstrip("/")
        self._service = f"the identity service at {self._base_url}"  # what errors name
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"HttpBackend({self._base_url!r})"

    def origin(self, client: ClientCredentials) -> str:
        """The base URL (which holds no credentials; spelt one way, ``canonical_url``) and
        the client id."""
        return f"{canonical_url(self._base_url)} client={client.client_id or ''}"

    async def open(self, client: ClientCredentials) -> None:
        if self._session is not None:
            raise ConfigurationError("this HttpBackend is already open; use one per MimiCore")
        if client.client_id is None or client.client_secret is None:
            raise ConfigurationError(
                "HttpBackend needs the app's client_id and client_secret: pass both to "
                "MimiCore.start"
            )
        self._session = aiohttp.ClientSession(
            headers={
                "Authorization": aiohttp.encode_basic_auth(client.client_id, client.client_secret)
            },
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
                return _session_from(await self._post("/v1/anonymous-users", {}))
            case LogInAnonymously(anonymous_id=anonymous_id):
                answer = await self._post("/v1/sessions/anonymous", {"anonymous_id": anonymous_id})
                # The server keeps only a digest of the id, so it cannot send it back.
                return _session_from(answer, anonymous_id=anonymous_id)
            case LogIn(email=email, password=password):
                credentials = {"email": email, "password": password}
                return _session_from(await self._post("/v1/sessions", credentials))
            case SignUp(email=email, password=password):
                credentials = {"email": email, "password": password}
                return _session_from(await self._post("/v1/users", credentials))
            case Promote(email=email, password=password) if session is not None:
                answer = await self._post(
                    "/v1/users/promote",
                    {
                        "access_token": session.tokens.access_token,
                        "email": email,
                        "password": password,
                    },
                )
                # A new access token of the same session: the refresh token goes on.
                granted = _session_from(answer)
                tokens = attrs.evolve(granted.tokens, refresh_token=session.tokens.refresh_token)
                return BackendSession(granted.user, tokens)
        raise UnsupportedRouteError(Reason.BACKEND_CANNOT)

    async def refresh(self, session: Session) -> BackendSession:
        refresh_token = session.tokens.refresh_token
        if refresh_token is None:
            raise SessionRevokedError("invalid_grant", "the session has no refresh token")
        answer = await self._post(
            "/v1/token", {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )
        # The server cannot send the anonymous id back: keep the one the client knows.
        return _session_from(answer, anonymous_id=session.user.anonymous_id)

    async def revoke(self, session: Session, *, everywhere: bool = False) -> None:
        if everywhere:
            access = {"access_token": session.tokens.access_token}
            await self._post("/v1/sessions/revoke-all", access)
            return
        token = session.tokens.refresh_token or session.tokens.access_token
        await self._post("/v1/sessions/revoke", {"token": token})

    async def delete(self, session: Session) -> None:
        await self._post("/v1/users/delete", {"access_token": session.tokens.access_token})

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        answer = await post_json(
            self._session,
            self._base_url + path,
            service=self._service,
            json=payload,
        )
        if answer.status >= 400:
            raise _refusal(path, answer, self._base_url)
        return answer.json_object()


def _refusal(path: str, answer: Answer, base_url: str) -> RouteRefusedError | BackendError:
    """The error for an error answer to a call to ``path`` of the service at ``base_url``."""
    status, body = answer.status, answer.body
    if status == 404:
        # Every path the backend calls exists on the service: a 404 is a base URL that
        # points elsewhere (one ending in /v1, say, or another service's).
        return BackendError(
            _error_field(body, "code") or "http_404",
            f"{base_url}{path} does not exist: is {base_url} the identity service's base URL"
            " (its root, without /v1)?",
            status=status,
        )
    if status == 403 and _error_field(body, "code") == "route_not_allowed":
        # The server's own policy: as if a guard had refused it.
        reason = _ROUTE_REFUSALS.get(
            _error_field(body, "reason"), Reason.SERVICE_ALLOWS_ONLY_ANONYMOUS
        )
        return RouteRefusedError(reason)
    if status in (429, 503):
        return _rate_limited(status, body, answer.retry_after)
    refused = _error_from(status, body)
    if refused.code == "invalid_grant" and path in _LOG_IN_REFUSALS:
        return InvalidCredentialsError(_LOG_IN_REFUSALS[path], refused.message, status=status)
    return refused


def _error_field(answer: Any, name: str) -> str | None:
    """The error answer's ``code``, ``message`` or ``reason``, as an error may show it: on one
    line, a code or reason up to ``_LONGEST_CODE`` characters, a message up to
    ``LONGEST_LINE`` (``one_line``); None where it has no such text (an answer of another
    shape, an older server's without a reason, only white space or control characters)."""
    error = answer.get("error") if isinstance(answer, dict) else None
    value = error.get(name) if isinstance(error, dict) else None
    if not isinstance(value, str):
        return None
    return one_line(value, LONGEST_LINE if name == "message" else _LONGEST_CODE) or None


_LONGEST_CODE = 64
"""Characters of an error code shown at most: the server's are a few words in snake_case."""


# A route_not_allowed's Reason by the error's reason: the user to promote is kept anonymous;
# any other (or none, from an older server) says this client is anonymous-only.
_ROUTE_REFUSALS: dict[str | None, Reason] = {
    "anonymous_only_user": Reason.SERVICE_KEEPS_USER_ANONYMOUS
}


def _rate_limited(status: int, answer: Any, wait: float | None) -> RateLimitedError:
    code = _error_field(answer, "code") or (
        "rate_limited" if status == 429 else "service_unavailable"
    )
    return RateLimitedError(
        code,
        _error_field(answer, "message") or "try again later",
        status=status,
        retry_after=wait,
    )


def _error_from(status: int, answer: Any) -> BackendError:
    code = _error_field(answer, "code")
    if code is None:
        return BackendError(f"http_{status}", "the service answered with an error", status=status)
    message = _error_field(answer, "message") or ""
    if code == "invalid_client":
        message += " (check the app's client_id and client_secret, and that the service knows them)"
    if code == "invalid_grant" and _error_field(answer, "reason") in _ENDED_ON_PURPOSE:
        return SessionEndedError(code, message, status=status)
    return _ERRORS_BY_CODE.get(code, BackendError)(code, message, status=status)


# The reason the server gives a refused refresh of a session it ended on purpose (a log-out,
# a log-out everywhere). An idle, unknown or reused one may log back in by its anonymous id:
# reuse is as often a client that lost an answer and stayed offline past the reuse interval
# (or a process killed between the server's rotation and its save) as a thief, and the
# revocation has ended the tokens a thief could hold; the id, which only the device keeps, is
# the stronger credential.
_ENDED_ON_PURPOSE = frozenset({"revoked"})


def _user_from(answer: dict[str, Any], *, anonymous_id: str | None = None) -> MimiUser:
    try:
        user = answer["user"]
        is_anonymous = bool(user["is_anonymous"])
        return MimiUser(
            id=str(user["id"]),
            anonymous_id=user.get("anonymous_id", anonymous_id) if is_anonymous else None,
            is_anonymous=is_anonymous,
            email=user.get("email"),
        )
    except (KeyError, TypeError, AttributeError) as error:
        raise BackendError("invalid_response", "the answer has no valid user") from error


def _session_from(answer: dict[str, Any], *, anonymous_id: str | None = None) -> BackendSession:
    user = _user_from(answer, anonymous_id=anonymous_id)
    try:
        session = answer["session"]
        tokens = AuthTokens(
            access_token=str(session["access_token"]),
            refresh_token=session.get("refresh_token"),
            expires_in=session.get("expires_in"),
        )
    # ValueError: a lifetime out of range (over a century, negative, NaN), which AuthTokens
    # refuses as no service issues it.
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise BackendError("invalid_response", "the answer has no valid session") from error
    return BackendSession(user, tokens)
