"""The reference identity service's HTTP API, on ``aiohttp.web``.

Every call but ``GET /health`` and ``GET /openapi.json`` authenticates the app's client with
HTTP Basic (client id and secret). Tokens travel in JSON bodies, as in OAuth token
revocation (RFC 7009), so the ``Authorization`` header stays the client's. Errors answer
``{"error": {"code": ..., "message": ...}}`` with a stable code; messages never hold secrets.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import structlog
from aiohttp import web

from . import _models as models
from ._database import EmailTakenError, IdentityDatabase, NewSession, Rotation, UserRecord
from ._edge import ApiError, authenticate_client, read_body
from ._openapi import OPERATIONS, openapi_document
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
    refresh_reuse_interval: float = 10.0
    """Seconds a spent refresh token still gets a new pair (the retry after a lost answer)."""
    clock: Callable[[], float] = time.time
    """The server's wall clock (tests skew it to prove clients do not depend on it)."""


_DATABASE = web.AppKey("database", IdentityDatabase)
_SETTINGS = web.AppKey("settings", ServerSettings)
_PASSWORDS = web.AppKey("passwords", PasswordHasher)
_LOG = web.AppKey("log", structlog.typing.FilteringBoundLogger)
_OPENAPI = web.AppKey("openapi", bytes)
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
    app[_OPENAPI] = json.dumps(openapi_document()).encode()
    app.on_startup.append(_prepare_dummy_hash)
    for operation in OPERATIONS:
        app.router.add_route(operation.method, operation.path, _HANDLERS[operation.name])
    return app


async def _prepare_dummy_hash(app: web.Application) -> None:
    app[_DUMMY_HASH] = await app[_PASSWORDS].hash(new_secret())


# Middlewares, outermost first.


@web.middleware
async def _log_requests(request: web.Request, handler: _Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    # The route, not the path (a path can carry anything), and the status: never bodies or
    # headers, which carry credentials.
    resource = request.match_info.route.resource
    request.app[_LOG].debug(
        "http.request",
        method=request.method,
        route=resource.canonical if resource is not None else "unmatched",
        status=response.status,
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return response


_CODES_BY_STATUS = {
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


@web.middleware
async def _answer_errors_as_json(request: web.Request, handler: _Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return _error_response(error)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = _CODES_BY_STATUS.get(error.status, "invalid_request")
        answer = _error_response(ApiError(error.status, code, error.reason))
        if "Allow" in error.headers:  # a 405 says which methods the path has
            answer.headers["Allow"] = error.headers["Allow"]
        return answer
    except Exception as error:
        request.app[_LOG].error(
            "http.internal_error",
            route=request.match_info.route.resource.canonical
            if request.match_info.route.resource is not None
            else "unmatched",
            error=type(error).__name__,
        )
        return _error_response(ApiError(500, "internal_error", "the server failed"))


def _error_response(error: ApiError) -> web.Response:
    # Every 401 carries a challenge (RFC 9110), whichever credential was refused.
    headers = {"WWW-Authenticate": 'Basic realm="mimi"'} if error.status == 401 else {}
    return web.json_response(
        {"error": {"code": error.code, "message": error.message}},
        status=error.status,
        headers=headers,
    )


def _authenticate_client(clients: Mapping[str, str]) -> Callable[..., Awaitable[Any]]:
    @web.middleware
    async def middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
        if request.path not in _PUBLIC_PATHS:
            authenticate_client(request, clients)
        return await handler(request)

    return middleware


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


class _NewPair:
    """A fresh token pair and what the database keeps of it."""

    def __init__(self, settings: ServerSettings) -> None:
        self.access_token, self.refresh_token = new_secret(), new_secret()
        self.now = settings.clock()
        self.ttl = settings.access_token_ttl
        self.stored = NewSession(
            access_digest=digest(self.access_token),
            refresh_digest=digest(self.refresh_token),
            access_expires_at=self.now + self.ttl,
            now=self.now,
        )

    def answer(
        self, user: UserRecord, *, status: int = 200, anonymous_id: str | None = None
    ) -> web.Response:
        return web.json_response(
            {
                "user": _user_json(user, anonymous_id=anonymous_id),
                "session": _session_json(self.access_token, self.refresh_token, self.ttl),
            },
            status=status,
        )


# Handlers.


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[_OPENAPI], content_type="application/json")


async def _create_anonymous_user(request: web.Request) -> web.Response:
    await read_body(request, models.AnonymousSignUp)
    anonymous_id = new_secret()
    pair = _NewPair(request.app[_SETTINGS])
    user = await request.app[_DATABASE].create_user(
        anonymous_id_digest=digest(anonymous_id),
        email=None,
        password_hash=None,
        session=pair.stored,
    )
    # The only time the id is ever sent: the server keeps its digest, not the id.
    return pair.answer(user, status=201, anonymous_id=anonymous_id)


async def _log_in_anonymously(request: web.Request) -> web.Response:
    body = await read_body(request, models.AnonymousLogIn)
    database = request.app[_DATABASE]
    user = await database.user_by_anonymous_id(digest(body.anonymous_id))
    if user is None:
        raise ApiError(401, "invalid_anonymous_id", "no anonymous user has this id")
    pair = _NewPair(request.app[_SETTINGS])
    await database.create_session(user.id, pair.stored)
    return pair.answer(user)


async def _sign_up(request: web.Request) -> web.Response:
    body = await read_body(request, models.Credentials)
    password_hash = await request.app[_PASSWORDS].hash(body.password)
    pair = _NewPair(request.app[_SETTINGS])
    try:
        user = await request.app[_DATABASE].create_user(
            anonymous_id_digest=None,
            email=body.email.lower(),
            password_hash=password_hash,
            session=pair.stored,
        )
    except EmailTakenError:
        raise ApiError(409, "email_taken", "this email is already registered") from None
    return pair.answer(user, status=201)


async def _log_in(request: web.Request) -> web.Response:
    body = await read_body(request, models.LogIn)
    database = request.app[_DATABASE]
    user = await database.user_by_email(body.email.lower())
    stored = user.password_hash if user is not None else None
    valid = await request.app[_PASSWORDS].verify(stored or request.app[_DUMMY_HASH], body.password)
    if user is None or stored is None or not valid:
        raise ApiError(401, "invalid_credentials", "the email or password is wrong")
    pair = _NewPair(request.app[_SETTINGS])
    await database.create_session(user.id, pair.stored)
    return pair.answer(user)


async def _promote(request: web.Request) -> web.Response:
    body = await read_body(request, models.Promotion)
    database = request.app[_DATABASE]
    session = await database.session_by_access_token(digest(body.access_token))
    if session is None or session.access_expires_at <= request.app[_SETTINGS].clock():
        raise ApiError(401, "invalid_token", "the access token is not valid")
    user = await database.user_by_id(session.user_id)
    if user is None or not user.is_anonymous:
        raise ApiError(409, "not_anonymous", "only an anonymous user can be promoted")
    password_hash = await request.app[_PASSWORDS].hash(body.password)
    try:
        promoted = await database.promote(
            user.id, email=body.email.lower(), password_hash=password_hash
        )
    except EmailTakenError:
        raise ApiError(409, "email_taken", "this email is already registered") from None
    return web.json_response({"user": _user_json(promoted)})


async def _revoke(request: web.Request) -> web.Response:
    body = await read_body(request, models.Revocation)
    # As RFC 7009: the answer is the same whether or not the token was valid.
    now = request.app[_SETTINGS].clock()
    await request.app[_DATABASE].revoke_session_by_token(digest(body.token), now)
    return web.json_response({})


_REFRESH_REFUSALS = {
    Rotation.UNKNOWN: "the refresh token is not valid",
    Rotation.REVOKED: "the session was revoked",
    Rotation.REUSED: "the refresh token was already used; the session is revoked",
    Rotation.IDLE: "the session expired after being unused",
}


async def _refresh(request: web.Request) -> web.Response:
    """OAuth-style refresh: every use rotates the refresh token; reuse revokes the family.

    A spent token presented again within ``refresh_reuse_interval`` is a client retrying
    after a lost answer: it gets a new pair of the same session instead.
    """
    body = await read_body(request, models.RefreshGrant)
    settings = request.app[_SETTINGS]
    pair = _NewPair(settings)
    rotation, session = await request.app[_DATABASE].rotate_refresh_token(
        digest(body.refresh_token),
        new_refresh_digest=pair.stored.refresh_digest,
        new_access_digest=pair.stored.access_digest,
        access_expires_at=pair.stored.access_expires_at,
        now=pair.now,
        idle_timeout=settings.session_idle_timeout,
        reuse_interval=settings.refresh_reuse_interval,
    )
    if rotation is Rotation.REUSED:
        request.app[_LOG].warning("token.refresh_reuse_detected")
    elif rotation is Rotation.REISSUED:
        request.app[_LOG].info("token.refresh_reissued_within_reuse_interval")
    if session is None:
        raise ApiError(400, "invalid_grant", _REFRESH_REFUSALS[rotation])
    user = await request.app[_DATABASE].user_by_id(session.user_id)
    if user is None:
        raise ApiError(400, "invalid_grant", "the user no longer exists")
    return pair.answer(user)


async def _introspect(request: web.Request) -> web.Response:
    """Whether an access token is valid now (as RFC 7662), for the app's own API servers."""
    body = await read_body(request, models.TokenQuery)
    now = request.app[_SETTINGS].clock()
    database = request.app[_DATABASE]
    session = await database.session_by_access_token(digest(body.token))
    if session is None or session.access_expires_at <= now:
        return web.json_response({"active": False})
    await database.touch_session(session.id, now)
    return web.json_response(
        {"active": True, "user_id": session.user_id, "expires_in": session.access_expires_at - now}
    )


_HANDLERS: dict[str, _Handler] = {
    "health": _health,
    "openapi": _openapi,
    "createAnonymousUser": _create_anonymous_user,
    "logInAnonymously": _log_in_anonymously,
    "signUp": _sign_up,
    "logIn": _log_in,
    "promote": _promote,
    "revokeSession": _revoke,
    "refreshSession": _refresh,
    "introspectToken": _introspect,
}
