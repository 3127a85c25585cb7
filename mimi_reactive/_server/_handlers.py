"""The API's handlers: each decodes its body at the edge, checks its client's policy and
limits, and makes one database operation per step. The account handlers are here, with the
``HANDLERS`` table; those of sessions and tokens are in ``_session_handlers.py``."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import _models as models
from . import _session_handlers as sessions
from ._context import STATE, RegisteredClient, ServerState, client_of
from ._database import EmailTakenError, SessionGoneError
from ._edge import ApiError, Attempt, attempt, client_ip, counted, read_body
from ._outages import TEMPORARILY_UNAVAILABLE
from ._records import AccessClaims, NewSession, UserRecord
from ._secrets import BUSY_DELAY, HashingBusyError, digest, new_secret

__all__ = ["HANDLERS"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _NewPair:
    """A fresh token pair for a new session of a user: the session to store, then the access
    token, signed once the session is stored (the database keeps nothing of it)."""

    def __init__(self, state: ServerState, client: RegisteredClient) -> None:
        self._state = state
        self._client = client
        self.now = state.settings.clock()
        self.ttl = state.settings.access_token_ttl
        self.refresh_token = new_secret()
        self.session = NewSession(
            id=str(uuid.uuid4()),
            client_id=client.id,
            refresh_digest=digest(self.refresh_token),
            now=self.now,
            max_sessions=state.settings.max_sessions_per_user,
        )

    def answer(
        self, user: UserRecord, *, status: int = 200, anonymous_id: str | None = None
    ) -> web.Response:
        """Sign the access token for ``user``'s new session; the answer that hands both over."""
        claims = AccessClaims(self.session.id, user.id, user.is_anonymous, self._client.id)
        access_token = self._state.tokens.issue(claims, self.now)
        return sessions.signed_in(
            user, access_token, self.refresh_token, self.ttl, status, anonymous_id
        )


def _refuse_anonymous_only(request: web.Request) -> None:
    if client_of(request).anonymous_only:
        raise ApiError(
            403,
            "route_not_allowed",
            "this client may only use anonymous users (anonymous_only)",
            reason="anonymous_only_client",
        )


def _email_taken(current: Attempt) -> ApiError:
    """409 ``email_taken``, kept counted as a failed log-in: the answer tells that the email
    exists, so asking it costs what a password guess does."""
    return current.failed(
        "email_taken", ApiError(409, "email_taken", "this email is already registered")
    )


async def _hashing(work: Awaitable[Any]) -> Any:
    try:
        return await work
    except HashingBusyError:
        raise ApiError(
            503,
            "server_busy",
            "too many password checks at once; try again",
            retry_after=BUSY_DELAY,
        ) from None


_HEALTHY = b'{"status": "ok"}'  # the same every time: encoded once


async def _health(request: web.Request) -> web.Response:
    return web.Response(body=_HEALTHY, content_type="application/json")


_READY = b'{"status": "ready"}'


async def _ready(request: web.Request) -> web.Response:
    """Readiness (see ``_readiness``): 503 with Retry-After unless this process's last check,
    at most ``READY_CACHE`` old, found the database and the rate-limit storage answering."""
    state = request.app[STATE]
    if not await state.readiness.ready(state):
        raise TEMPORARILY_UNAVAILABLE
    return web.Response(body=_READY, content_type="application/json")


async def _openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[STATE].openapi, content_type="application/json")


async def _create_anonymous_user(request: web.Request) -> web.Response:
    await read_body(request, models.AnonymousSignUp)
    state = request.app[STATE]
    ip = client_ip(request, state.settings.trusted_proxies)
    if refused := await counted(state, state.settings.anonymous_sign_up_limit, ip):
        raise refused
    anonymous_id = new_secret()
    client = client_of(request)
    pair = _NewPair(state, client)
    user = await state.database.create_user(
        user_id=str(uuid.uuid4()),
        anonymous_id_digest=digest(anonymous_id),
        email=None,
        password_hash=None,
        session=pair.session,
        anonymous_only=client.anonymous_only,
    )
    # The only time the id is ever sent: the server keeps its digest, not the id.
    return pair.answer(user, status=201, anonymous_id=anonymous_id)


async def _log_in_anonymously(request: web.Request) -> web.Response:
    body = await read_body(request, models.AnonymousLogIn)
    state = request.app[STATE]
    async with attempt(request, state) as current:
        client = client_of(request)
        pair = _NewPair(state, client)
        user = await state.database.log_in_anonymously(
            digest(body.anonymous_id), pair.session, anonymous_only=client.anonymous_only
        )
        if user is None:
            wrong = ApiError(400, "invalid_grant", "no anonymous user has this id")
            raise current.failed("anonymous_id", wrong)
        return pair.answer(user)


async def _sign_up(request: web.Request) -> web.Response:
    body = await read_body(request, models.Credentials)
    _refuse_anonymous_only(request)
    state = request.app[STATE]
    async with attempt(request, state) as current:
        limit = state.settings.credential_sign_up_limit
        if refused := await counted(state, limit, current.ip):
            raise refused
        password_hash = await _hashing(state.passwords.hash(body.password))
        email = body.email.lower()
        new_user = UserRecord(str(uuid.uuid4()), False, email, password_hash)
        pair = _NewPair(state, client_of(request))
        try:
            user = await state.database.create_user(
                user_id=new_user.id,
                anonymous_id_digest=None,
                email=email,
                password_hash=password_hash,
                session=pair.session,
            )
        except EmailTakenError:
            raise _email_taken(current) from None
        return pair.answer(user, status=201)


async def _log_in(request: web.Request) -> web.Response:
    body = await read_body(request, models.LogIn)
    _refuse_anonymous_only(request)
    state = request.app[STATE]
    async with attempt(request, state) as current:
        user = await state.database.user_by_email(body.email.lower())
        stored = user.password_hash if user is not None else None
        valid = await _hashing(state.passwords.verify(stored or state.dummy_hash, body.password))
        wrong = ApiError(400, "invalid_grant", "the email or password is wrong")
        if user is None or stored is None or not valid:
            raise current.failed("password", wrong)
        pair = _NewPair(state, client_of(request))
        # The user may have been deleted while the password was checked: no user now.
        if await state.database.create_session(user.id, pair.session) is None:
            raise current.failed("password", wrong)
        return pair.answer(user)


async def _promote(request: web.Request) -> web.Response:
    body = await read_body(request, models.Promotion)
    _refuse_anonymous_only(request)
    state = request.app[STATE]
    async with attempt(request, state) as current:
        session = await sessions.live_session(request, body.access_token)
        _check_promotable(await state.database.user_by_id(session.user_id))
        password_hash = await _hashing(state.passwords.hash(body.password))
        try:
            # The database checks the session again with the write: it may have ended since.
            promoted = await state.database.promote(
                session.user_id,
                session_id=session.id,
                email=body.email.lower(),
                password_hash=password_hash,
            )
        except SessionGoneError:
            raise sessions.token_refused() from None
        except EmailTakenError:
            raise _email_taken(current) from None
    if promoted is None:  # it changed while the password was hashed: say how
        _check_promotable(await state.database.user_by_id(session.user_id))
        raise _not_anonymous()
    state.log.info("user.promoted", **sessions.ids(request, session.user_id, session.id))
    # A new access token, so that resource servers see the user with credentials now rather
    # than when the app next renews (as Firebase answers a link with new tokens).
    claims = AccessClaims(session.id, promoted.id, promoted.is_anonymous, client_of(request).id)
    access_token = state.tokens.issue(claims, state.settings.clock())
    grant = sessions.access_grant(access_token, state.settings.access_token_ttl)
    return web.json_response({"user": sessions.user_json(promoted), "session": grant})


def _check_promotable(user: UserRecord | None) -> None:
    """409 ``not_anonymous`` for a user that is gone or not anonymous; 403
    ``route_not_allowed`` (reason ``anonymous_only_user``) for one an anonymous-only client made
    or logged in by id, whichever client asks (its app would take in a user it may not have)."""
    if user is None or not user.is_anonymous:
        raise _not_anonymous()
    if user.anonymous_only:
        raise ApiError(
            403,
            "route_not_allowed",
            "this user belongs to an anonymous-only client: it cannot be promoted",
            reason="anonymous_only_user",
        )


def _not_anonymous() -> ApiError:
    return ApiError(409, "not_anonymous", "only an anonymous user can be promoted")


async def _delete_user(request: web.Request) -> web.Response:
    body = await read_body(request, models.Deletion)
    state = request.app[STATE]
    session = await sessions.live_session(request, body.access_token)
    await state.database.delete_user(session.user_id)
    state.log.info("user.deleted", **sessions.ids(request, session.user_id, session.id))
    return web.json_response({})


HANDLERS: dict[str, Handler] = {
    "health": _health,
    "ready": _ready,
    "openapi": _openapi,
    "jwks": sessions.jwks,
    "createAnonymousUser": _create_anonymous_user,
    "logInAnonymously": _log_in_anonymously,
    "signUp": _sign_up,
    "logIn": _log_in,
    "promote": _promote,
    "deleteUser": _delete_user,
    "revokeAllSessions": sessions.revoke_all,
    "revokeSession": sessions.revoke,
    "refreshSession": sessions.refresh,
    "introspectToken": sessions.introspect,
}
