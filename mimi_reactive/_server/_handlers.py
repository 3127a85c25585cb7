"""The API's handlers: each decodes its body at the edge, checks its client's policy and
limits, and makes one database operation per step."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..verify import InvalidTokenError, VerifiedToken
from . import _models as models
from ._context import STATE, RegisteredClient, ServerState, client_of
from ._edge import ApiError, client_ip, counted, failed_log_in, rate_limited, read_body
from ._outages import STORE_UNAVAILABLE
from ._records import (
    AccessClaims,
    EmailTakenError,
    NewSession,
    OtherClientError,
    Rotation,
    SessionEndedError,
    SessionRecord,
    UserRecord,
)
from ._secrets import BUSY_DELAY, HashingBusyError, digest, new_secret
from ._tokens import JWKS_MAX_AGE

__all__ = ["HANDLERS"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _user_json(user: UserRecord, *, anonymous_id: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"id": user.id, "is_anonymous": user.is_anonymous, "email": user.email}
    if anonymous_id is not None:
        answer["anonymous_id"] = anonymous_id
    return answer


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
        )

    def answer(
        self, user: UserRecord, *, status: int = 200, anonymous_id: str | None = None
    ) -> web.Response:
        """Sign the access token for ``user``'s new session; the answer that hands both over."""
        claims = AccessClaims(self.session.id, user.id, user.is_anonymous, self._client.id)
        access_token = self._state.tokens.issue(claims, self.now)
        return _signed_in(user, access_token, self.refresh_token, self.ttl, status, anonymous_id)


def _signed_in(
    user: UserRecord,
    access_token: str,
    refresh_token: str,
    ttl: float,
    status: int = 200,
    anonymous_id: str | None = None,
) -> web.Response:
    session = {**_access_grant(access_token, ttl), "refresh_token": refresh_token}
    return web.json_response(
        {"user": _user_json(user, anonymous_id=anonymous_id), "session": session}, status=status
    )


def _access_grant(access_token: str, ttl: float) -> dict[str, Any]:
    """An access token as the answers hand it over (a promotion's alone, a pair's with its
    refresh token)."""
    return {"access_token": access_token, "token_type": "Bearer", "expires_in": ttl}


def _ids(request: web.Request, user_id: str, session_id: str | None = None) -> dict[str, str]:
    """What a security event says of who: the user, the session, the client that asked and
    its IP. Identifiers, not secrets: never a token, anonymous id, password, nor an email."""
    ids = {"user_id": user_id, "client_id": client_of(request).id}
    if session_id is not None:
        ids["session_id"] = session_id
    ids["ip"] = client_ip(request, request.app[STATE].settings.trusted_proxies)
    return ids


def _refuse_anonymous_only(request: web.Request) -> None:
    if client_of(request).anonymous_only:
        raise ApiError(
            403,
            "route_not_allowed",
            "this client may only use anonymous users (anonymous_only)",
            reason="anonymous_only_client",
        )


async def _not_blocked(request: web.Request, state: ServerState) -> str:
    """The client IP, unless it is past its failed log-in limit (then 429)."""
    ip = client_ip(request, state.settings.trusted_proxies)
    retry_after = await state.limiter.exhausted(state.settings.failure_limit, ip)
    if retry_after is not None:
        raise rate_limited(retry_after)
    return ip


async def _email_taken(state: ServerState, ip: str) -> ApiError:
    """409 ``email_taken``, counted as a failed log-in of ``ip`` (429 once past the limit): the
    answer tells that the email exists, so asking it costs what a password guess does."""
    return await failed_log_in(
        state, ip, ApiError(409, "email_taken", "this email is already registered")
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


async def _session_of(
    state: ServerState, access_token: str, now: float
) -> tuple[VerifiedToken, SessionRecord] | None:
    """The claims of ``access_token`` and its session, if the token is valid by the one rule
    (docs/security.md): signed by this server, unexpired, and its session not ended (a
    refresh does not end the token it replaces); None if not."""
    try:
        claims = await _verified(state, access_token, now)
    except InvalidTokenError:
        return None
    session = await state.database.session_by_id(claims.session_id or "")
    if session is None or session.user_id != claims.user_id:
        return None
    return claims, session


async def _live_session(request: web.Request, access_token: str) -> SessionRecord:
    """The session of ``access_token``, valid by ``_session_of``'s rule and issued to this
    client; 401 ``invalid_token`` otherwise."""
    state = request.app[STATE]
    found = await _session_of(state, access_token, state.settings.clock())
    if found is None or found[0].client_id != client_of(request).id:
        raise _token_refused()
    return found[1]


def _token_refused() -> ApiError:
    return ApiError(401, "invalid_token", "the access token is not valid")


_HEALTHY = b'{"status": "ok"}'  # the same every time: encoded once


async def _health(request: web.Request) -> web.Response:
    return web.Response(body=_HEALTHY, content_type="application/json")


_READY = b'{"status": "ready"}'


async def _ready(request: web.Request) -> web.Response:
    """Readiness: the database answers a trivial query within ``storage_timeout`` and is still
    the one opened (a SQLite file removed or replaced is not); 503 with Retry-After if not."""
    state = request.app[STATE]
    try:
        await state.database.ready(state.settings.storage_timeout)
    except Exception as error:
        state.log.warning("database.not_ready", error=type(error).__name__)
        raise STORE_UNAVAILABLE from None
    return web.Response(body=_READY, content_type="application/json")


async def _openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[STATE].openapi, content_type="application/json")


_JWKS_CACHING = {"Cache-Control": f"max-age={JWKS_MAX_AGE}"}


async def _jwks(request: web.Request) -> web.Response:
    """Every key any worker may sign with (read again from the database, at most once per
    ``KEY_READ_THROTTLE``), cacheable ``JWKS_MAX_AGE``: see ``_tokens`` for why that is in
    time for every new key."""
    state = request.app[STATE]
    await _take_up_keys(state)
    return web.json_response(state.tokens.jwks(state.settings.clock()), headers=_JWKS_CACHING)


async def _take_up_keys(state: ServerState) -> None:
    """Read the keys from the database unless they were read less than
    ``KEY_READ_THROTTLE`` ago: the one throttle of every read a request causes."""
    kid = await state.tokens.reload_throttled(state.database)
    if kid is not None:
        state.log.info("signing_key.taken_up", kid=kid)


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
    ip = await _not_blocked(request, state)
    client = client_of(request)
    pair = _NewPair(state, client)
    user = await state.database.log_in_anonymously(
        digest(body.anonymous_id), pair.session, anonymous_only=client.anonymous_only
    )
    if user is None:
        raise await failed_log_in(
            state, ip, ApiError(400, "invalid_grant", "no anonymous user has this id")
        )
    return pair.answer(user)


async def _sign_up(request: web.Request) -> web.Response:
    body = await read_body(request, models.Credentials)
    _refuse_anonymous_only(request)
    state = request.app[STATE]
    ip = await _not_blocked(request, state)
    if refused := await counted(state, state.settings.credential_sign_up_limit, ip):
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
        raise await _email_taken(state, ip) from None
    return pair.answer(user, status=201)


async def _log_in(request: web.Request) -> web.Response:
    body = await read_body(request, models.LogIn)
    _refuse_anonymous_only(request)
    state = request.app[STATE]
    ip = await _not_blocked(request, state)
    user = await state.database.user_by_email(body.email.lower())
    stored = user.password_hash if user is not None else None
    valid = await _hashing(state.passwords.verify(stored or state.dummy_hash, body.password))
    if user is None or stored is None or not valid:
        raise await failed_log_in(
            state, ip, ApiError(400, "invalid_grant", "the email or password is wrong")
        )
    pair = _NewPair(state, client_of(request))
    await state.database.create_session(user.id, pair.session)
    return pair.answer(user)


async def _promote(request: web.Request) -> web.Response:
    body = await read_body(request, models.Promotion)
    _refuse_anonymous_only(request)
    state = request.app[STATE]
    ip = await _not_blocked(request, state)
    session = await _live_session(request, body.access_token)
    _check_promotable(await state.database.user_by_id(session.user_id))
    password_hash = await _hashing(state.passwords.hash(body.password))
    try:
        # The store checks the session again with the write: it may have ended meanwhile.
        promoted = await state.database.promote(
            session.user_id,
            session_id=session.id,
            email=body.email.lower(),
            password_hash=password_hash,
        )
    except SessionEndedError:
        raise _token_refused() from None
    except EmailTakenError:
        raise await _email_taken(state, ip) from None
    if promoted is None:  # it changed while the password was hashed: say how
        _check_promotable(await state.database.user_by_id(session.user_id))
        raise _not_anonymous()
    state.log.info("user.promoted", **_ids(request, session.user_id, session.id))
    # A new access token, so that resource servers see the user with credentials now rather
    # than when the app next renews (as Firebase answers a link with new tokens).
    claims = AccessClaims(session.id, promoted.id, promoted.is_anonymous, client_of(request).id)
    access_token = state.tokens.issue(claims, state.settings.clock())
    grant = _access_grant(access_token, state.settings.access_token_ttl)
    return web.json_response({"user": _user_json(promoted), "session": grant})


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
    session = await _live_session(request, body.access_token)
    await state.database.delete_user(session.user_id)
    state.log.info("user.deleted", **_ids(request, session.user_id, session.id))
    return web.json_response({})


async def _revoke_all(request: web.Request) -> web.Response:
    body = await read_body(request, models.RevocationEverywhere)
    state = request.app[STATE]
    session = await _live_session(request, body.access_token)
    revoked = await state.database.revoke_user_sessions(session.user_id, state.settings.clock())
    state.log.info(
        "user.logged_out_everywhere",
        revoked_sessions=revoked,
        **_ids(request, session.user_id, session.id),
    )
    return web.json_response({"revoked_sessions": revoked})


_OTHER_CLIENT = ApiError(400, "unauthorized_client", "the token was issued to another client")


async def _revoke(request: web.Request) -> web.Response:
    """End the session of a valid access token (by ``_session_of``'s rule) or of a refresh
    token of it. As RFC 7009: 200 whether or not there was such a session, but a token issued
    to another client ends nothing and is refused (section 2.1), 400 ``unauthorized_client``
    as RFC 6749 section 5.2 names a client not allowed what it asked."""
    body = await read_body(request, models.Revocation)
    state = request.app[STATE]
    client_id = client_of(request).id
    now = state.settings.clock()
    found = await _session_of(state, body.token, now)
    if found is not None:
        if found[0].client_id != client_id:
            raise _OTHER_CLIENT
        await state.database.revoke_session(found[1].id, now)
        return web.json_response({})
    try:
        await state.database.revoke_session_by_refresh_token(
            digest(body.token), now, client_id=client_id
        )
    except OtherClientError:
        raise _OTHER_CLIENT from None
    return web.json_response({})


_REFRESH_REFUSALS = {
    Rotation.UNKNOWN: "the refresh token is not valid",
    Rotation.REVOKED: "the session was revoked",
    Rotation.REUSED: "a refresh token of this session was already used; the session is revoked",
    Rotation.IDLE: "the session expired after being unused",
}


async def _refresh(request: web.Request) -> web.Response:
    """OAuth-style refresh: every use rotates the refresh token; reuse revokes the family.

    A spent token presented again within ``refresh_reuse_interval`` is a client retrying
    after a lost answer: it gets a new pair of the same session instead.
    """
    body = await read_body(request, models.RefreshGrant)
    state = request.app[STATE]
    settings = state.settings
    now = settings.clock()
    refresh_token = new_secret()
    client = client_of(request)
    client_id = client.id
    rotation, session, user = await state.database.rotate_refresh_token(
        digest(body.refresh_token),
        client_id=client_id,
        new_refresh_digest=digest(refresh_token),
        now=now,
        idle_timeout=settings.session_idle_timeout,
        reuse_interval=settings.refresh_reuse_interval,
        anonymous_only=client.anonymous_only,
    )
    if rotation is Rotation.REUSED and session is not None:
        state.log.warning(
            "token.refresh_reuse_detected", **_ids(request, session.user_id, session.id)
        )
    elif rotation is Rotation.REISSUED and session is not None:
        state.log.info(
            "token.refresh_reissued_within_reuse_interval",
            **_ids(request, session.user_id, session.id),
        )
    if session is None or user is None:
        raise ApiError(
            400,
            "invalid_grant",
            _REFRESH_REFUSALS.get(rotation, "invalid"),
            reason=rotation.value,
        )
    access_token = state.tokens.issue(
        AccessClaims(session.id, user.id, user.is_anonymous, client_id), now
    )
    return _signed_in(user, access_token, refresh_token, settings.access_token_ttl)


async def _introspect(request: web.Request) -> web.Response:
    """Active while the token is unexpired and its session has not ended: the rule
    ``AccessTokenVerifier`` follows, which sees the session's end only at expiry. A refresh
    does not end the token it replaces (a call in flight with it still passes). Only the
    client the token was issued to sees it active."""
    body = await read_body(request, models.TokenQuery)
    state = request.app[STATE]
    now = state.settings.clock()
    found = await _session_of(state, body.token, now)
    # RFC 7662 section 2.2: a token the caller may not introspect is inactive to it. Another
    # client learns nothing of this client's users, nor keeps their sessions in use.
    if found is None or found[0].client_id != client_of(request).id:
        return web.json_response({"active": False})
    claims, session = found
    await state.database.touch_session(session.id, now)
    return web.json_response(
        {"active": True, "user_id": claims.user_id, "expires_in": claims.expires_at - now}
    )


async def _verified(state: ServerState, token: str, now: float) -> VerifiedToken:
    """The token's claims, checked with this server's keys; a key not loaded here yet (another
    worker took it up first) is looked for in the database, at most once per
    ``KEY_READ_THROTTLE`` seconds, so tokens naming made-up keys cannot keep it busy."""
    try:
        return state.tokens.verify(token, now)
    except InvalidTokenError as error:
        if error.reason != "unknown_key":
            raise
    await _take_up_keys(state)
    return state.tokens.verify(token, now)


HANDLERS: dict[str, Handler] = {
    "health": _health,
    "ready": _ready,
    "openapi": _openapi,
    "jwks": _jwks,
    "createAnonymousUser": _create_anonymous_user,
    "logInAnonymously": _log_in_anonymously,
    "signUp": _sign_up,
    "logIn": _log_in,
    "promote": _promote,
    "deleteUser": _delete_user,
    "revokeAllSessions": _revoke_all,
    "revokeSession": _revoke,
    "refreshSession": _refresh,
    "introspectToken": _introspect,
}
