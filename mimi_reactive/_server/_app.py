"""The reference identity service's HTTP API, on ``aiohttp.web``.

Every call but ``GET /health`` and ``GET /openapi.json`` authenticates the app's client with
HTTP Basic (client id and secret). Tokens travel in JSON bodies, as in OAuth token
revocation (RFC 7009), so the ``Authorization`` header stays the client's. Errors answer
``{"error": {"code": ..., "message": ...}}`` with a stable code; messages never hold secrets.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Any

import attrs
import structlog
from aiohttp import web

from ._database import EmailTakenError, IdentityDatabase, Rotation, UserRecord
from ._secrets import PasswordHasher, digest, new_secret

__all__ = ["ApiError", "ServerSettings", "create_app"]

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PUBLIC_PATHS = frozenset({"/health", "/openapi.json"})
_MAX_BODY_BYTES = 64 * 1024


@attrs.frozen
class ServerSettings:
    """How the reference server behaves."""

    access_token_ttl: float = 3600.0
    """Seconds an access token is valid."""
    session_idle_timeout: float = 30 * 24 * 3600.0
    """Seconds a session may go unused before its refresh token stops working."""
    clock: Callable[[], float] = time.time
    """The server's wall clock (tests skew it to prove clients do not depend on it)."""


class ApiError(Exception):
    """An error answer: HTTP status, stable code, safe message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


_DATABASE = web.AppKey("database", IdentityDatabase)
_SETTINGS = web.AppKey("settings", ServerSettings)
_PASSWORDS = web.AppKey("passwords", PasswordHasher)
_LOG = web.AppKey("log", structlog.typing.FilteringBoundLogger)
# A real Argon2 hash to verify against when an email is unknown, so the answer takes as
# long as for a wrong password and does not reveal which emails are registered.
_DUMMY_HASH = web.AppKey("dummy_hash", str)


def create_app(
    *,
    database: IdentityDatabase,
    clients: Mapping[str, str],
    settings: ServerSettings,
    logger: structlog.typing.FilteringBoundLogger,
    passwords: PasswordHasher | None = None,
) -> web.Application:
    """Build the application. ``clients`` maps each client id to its secret's digest."""
    app = web.Application(
        middlewares=[_log_requests, _answer_errors_as_json, _authenticate_client(clients)],
        client_max_size=_MAX_BODY_BYTES,
    )
    app[_DATABASE] = database
    app[_SETTINGS] = settings
    app[_PASSWORDS] = passwords or PasswordHasher()
    app[_LOG] = logger
    app.on_startup.append(_prepare_dummy_hash)
    app.router.add_get("/health", _health)
    app.router.add_get("/openapi.json", _openapi)
    app.router.add_post("/v1/anonymous-users", _create_anonymous_user)
    app.router.add_post("/v1/sessions/anonymous", _log_in_anonymously)
    app.router.add_post("/v1/users", _sign_up)
    app.router.add_post("/v1/sessions", _log_in)
    app.router.add_post("/v1/users/promote", _promote)
    app.router.add_post("/v1/sessions/revoke", _revoke)
    app.router.add_post("/v1/token", _refresh)
    app.router.add_post("/v1/token/introspect", _introspect)
    return app


async def _prepare_dummy_hash(app: web.Application) -> None:
    app[_DUMMY_HASH] = await app[_PASSWORDS].hash(new_secret())


# Middlewares, outermost first.


@web.middleware
async def _log_requests(request: web.Request, handler: _Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    # The path and status only: bodies and headers carry credentials.
    request.app[_LOG].debug(
        "http.request",
        method=request.method,
        path=request.path,
        status=response.status,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return response


@web.middleware
async def _answer_errors_as_json(request: web.Request, handler: _Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return _error_response(error)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
            error.status, "invalid_request"
        )
        return _error_response(ApiError(error.status, code, error.reason))
    except Exception as error:
        request.app[_LOG].error(
            "http.internal_error", path=request.path, error=type(error).__name__
        )
        return _error_response(ApiError(500, "internal_error", "the server failed"))


def _error_response(error: ApiError) -> web.Response:
    headers = {"WWW-Authenticate": 'Basic realm="mimi"'} if error.code == "invalid_client" else {}
    return web.json_response(
        {"error": {"code": error.code, "message": error.message}},
        status=error.status,
        headers=headers,
    )


def _authenticate_client(clients: Mapping[str, str]) -> Callable[..., Awaitable[Any]]:
    @web.middleware
    async def middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
        if request.path not in _PUBLIC_PATHS:
            client_id, secret = _basic_credentials(request)
            expected = clients.get(client_id)
            # Compare even for an unknown id, so timing does not tell which ids exist.
            if not hmac.compare_digest(digest(secret), expected or "") or expected is None:
                raise ApiError(401, "invalid_client", "client authentication failed")
        return await handler(request)

    return middleware


def _basic_credentials(request: web.Request) -> tuple[str, str]:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise ApiError(401, "invalid_client", "client authentication is required (HTTP Basic)")
    try:
        client_id, separator, secret = (
            base64.b64decode(encoded, validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(401, "invalid_client", "malformed client credentials") from None
    if not separator:
        raise ApiError(401, "invalid_client", "malformed client credentials")
    return client_id, secret


# Request bodies.


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "invalid_request", "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    return body


def _text_field(body: Mapping[str, Any], name: str, *, max_length: int = 1024) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "invalid_request", f"'{name}' must be a non-empty string")
    if len(value) > max_length:
        raise ApiError(400, "invalid_request", f"'{name}' is too long")
    return value


def _email_field(body: Mapping[str, Any]) -> str:
    email = _text_field(body, "email", max_length=254).strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in email):
        raise ApiError(400, "invalid_request", "'email' is not an email address")
    return email


def _password_field(body: Mapping[str, Any]) -> str:
    password = _text_field(body, "password")
    if len(password) < 8:
        raise ApiError(400, "weak_password", "'password' must have at least 8 characters")
    return password


# Answers.


def _user_json(user: UserRecord, *, anonymous_id: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"id": user.id, "is_anonymous": user.is_anonymous, "email": user.email}
    if anonymous_id is not None:
        answer["anonymous_id"] = anonymous_id
    return answer


def _session_json(access_token: str, refresh_token: str, ttl: float) -> dict[str, Any]:
    return {
        "access_token": access_token,
        "refresh_token": refresh_token,
        "token_type": "Bearer",
        "expires_in": ttl,
    }


async def _signed_in(
    request: web.Request, user: UserRecord, *, status: int = 200, anonymous_id: str | None = None
) -> web.Response:
    access_token, refresh_token = new_secret(), new_secret()
    settings = request.app[_SETTINGS]
    now = settings.clock()
    await request.app[_DATABASE].create_session(
        user.id,
        access_digest=digest(access_token),
        refresh_digest=digest(refresh_token),
        access_expires_at=now + settings.access_token_ttl,
        now=now,
    )
    return web.json_response(
        {
            "user": _user_json(user, anonymous_id=anonymous_id),
            "session": _session_json(access_token, refresh_token, settings.access_token_ttl),
        },
        status=status,
    )


# Handlers.


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _openapi(request: web.Request) -> web.Response:
    document = resources.files(__package__).joinpath("openapi.json").read_text()
    return web.Response(text=document, content_type="application/json")


async def _create_anonymous_user(request: web.Request) -> web.Response:
    anonymous_id = new_secret()
    user = await request.app[_DATABASE].create_user(
        anonymous_id_digest=digest(anonymous_id), email=None, password_hash=None
    )
    # The only time the id is ever sent: the server keeps its digest, not the id.
    return await _signed_in(request, user, status=201, anonymous_id=anonymous_id)


async def _log_in_anonymously(request: web.Request) -> web.Response:
    anonymous_id = _text_field(await _json_body(request), "anonymous_id")
    user = await request.app[_DATABASE].user_by_anonymous_id(digest(anonymous_id))
    if user is None:
        raise ApiError(401, "invalid_anonymous_id", "no anonymous user has this id")
    return await _signed_in(request, user)


async def _sign_up(request: web.Request) -> web.Response:
    body = await _json_body(request)
    email, password = _email_field(body), _password_field(body)
    password_hash = await request.app[_PASSWORDS].hash(password)
    try:
        user = await request.app[_DATABASE].create_user(
            anonymous_id_digest=None, email=email, password_hash=password_hash
        )
    except EmailTakenError:
        raise ApiError(409, "email_taken", "this email is already registered") from None
    return await _signed_in(request, user, status=201)


async def _log_in(request: web.Request) -> web.Response:
    body = await _json_body(request)
    email, password = _email_field(body), _text_field(body, "password")
    user = await request.app[_DATABASE].user_by_email(email)
    stored = user.password_hash if user is not None else None
    valid = await request.app[_PASSWORDS].verify(stored or request.app[_DUMMY_HASH], password)
    if user is None or stored is None or not valid:
        raise ApiError(401, "invalid_credentials", "the email or password is wrong")
    return await _signed_in(request, user)


async def _promote(request: web.Request) -> web.Response:
    body = await _json_body(request)
    access_token = _text_field(body, "access_token")
    email, password = _email_field(body), _password_field(body)
    database = request.app[_DATABASE]
    session = await database.session_by_access_token(digest(access_token))
    if session is None or session.access_expires_at <= request.app[_SETTINGS].clock():
        raise ApiError(401, "invalid_token", "the access token is not valid")
    user = await database.user_by_id(session.user_id)
    if user is None or not user.is_anonymous:
        raise ApiError(409, "not_anonymous", "only an anonymous user can be promoted")
    password_hash = await request.app[_PASSWORDS].hash(password)
    try:
        promoted = await database.promote(user.id, email=email, password_hash=password_hash)
    except EmailTakenError:
        raise ApiError(409, "email_taken", "this email is already registered") from None
    return web.json_response({"user": _user_json(promoted)})


async def _revoke(request: web.Request) -> web.Response:
    token = _text_field(await _json_body(request), "token")
    # As RFC 7009: the answer is the same whether or not the token was valid.
    now = request.app[_SETTINGS].clock()
    await request.app[_DATABASE].revoke_session_by_token(digest(token), now)
    return web.json_response({})


_REFRESH_REFUSALS = {
    Rotation.UNKNOWN: "the refresh token is not valid",
    Rotation.REVOKED: "the session was revoked",
    Rotation.REUSED: "the refresh token was already used; the session is revoked",
    Rotation.IDLE: "the session expired after being unused",
}


async def _refresh(request: web.Request) -> web.Response:
    """OAuth-style refresh: every use rotates the refresh token; reuse revokes the family."""
    body = await _json_body(request)
    if body.get("grant_type") != "refresh_token":
        raise ApiError(400, "unsupported_grant_type", "'grant_type' must be 'refresh_token'")
    refresh_token = _text_field(body, "refresh_token")
    settings = request.app[_SETTINGS]
    now = settings.clock()
    access_token, new_refresh_token = new_secret(), new_secret()
    rotation, session = await request.app[_DATABASE].rotate_refresh_token(
        digest(refresh_token),
        new_refresh_digest=digest(new_refresh_token),
        new_access_digest=digest(access_token),
        access_expires_at=now + settings.access_token_ttl,
        now=now,
        idle_timeout=settings.session_idle_timeout,
    )
    if rotation is Rotation.REUSED:
        request.app[_LOG].warning("token.refresh_reuse_detected")
    if session is None:
        raise ApiError(400, "invalid_grant", _REFRESH_REFUSALS[rotation])
    user = await request.app[_DATABASE].user_by_id(session.user_id)
    if user is None:
        raise ApiError(400, "invalid_grant", "the user no longer exists")
    return web.json_response(
        {
            "user": _user_json(user),
            "session": _session_json(access_token, new_refresh_token, settings.access_token_ttl),
        }
    )


async def _introspect(request: web.Request) -> web.Response:
    """Whether an access token is valid now (as RFC 7662), for the app's own API servers."""
    token = _text_field(await _json_body(request), "token")
    now = request.app[_SETTINGS].clock()
    database = request.app[_DATABASE]
    session = await database.session_by_access_token(digest(token))
    if session is None or session.access_expires_at <= now:
        return web.json_response({"active": False})
    await database.touch_session(session.id, now)
    return web.json_response(
        {"active": True, "user_id": session.user_id, "expires_in": session.access_expires_at - now}
    )
