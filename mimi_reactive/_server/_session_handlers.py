"""The session and token handlers (renewal, log-out, introspection, the JWKS) and the checks of
an access token and the answers the account handlers (``_handlers.py``) share with them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .._access_token import InvalidTokenError, VerifiedToken
from . import _models as models
from ._context import STATE, ServerState, client_of
from ._database import OtherClientError
from ._edge import ApiError, client_ip, read_body
from ._records import AccessClaims, Rotation, SessionRecord, UserRecord
from ._secrets import digest, new_secret
from ._tokens import JWKS_MAX_AGE

__all__ = [
    "access_grant",
    "ids",
    "introspect",
    "jwks",
    "live_session",
    "refresh",
    "revoke",
    "revoke_all",
    "signed_in",
    "token_refused",
    "user_json",
]


def user_json(user: UserRecord, *, anonymous_id: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"id": user.id, "is_anonymous": user.is_anonymous, "email": user.email}
    if anonymous_id is not None:
        answer["anonymous_id"] = anonymous_id
    return answer


def signed_in(
    user: UserRecord,
    access_token: str,
    refresh_token: str,
    ttl: float,
    status: int = 200,
    anonymous_id: str | None = None,
) -> web.Response:
    session = {**access_grant(access_token, ttl), "refresh_token": refresh_token}
    return web.json_response(
        {"user": user_json(user, anonymous_id=anonymous_id), "session": session}, status=status
    )


def access_grant(access_token: str, ttl: float) -> dict[str, Any]:
    """An access token as the answers hand it over (a promotion's alone, a pair's with its
    refresh token)."""
    return {"access_token": access_token, "token_type": "Bearer", "expires_in": ttl}


def ids(request: web.Request, user_id: str, session_id: str | None = None) -> dict[str, str]:
    """What a security event says of who: the user, the session, the client that asked and
    its IP. Identifiers, not secrets: never a token, anonymous id, password, nor an email."""
    ids = {"user_id": user_id, "client_id": client_of(request).id}
    if session_id is not None:
        ids["session_id"] = session_id
    ids["ip"] = client_ip(request, request.app[STATE].settings.trusted_proxies)
    return ids


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


async def live_session(request: web.Request, access_token: str) -> SessionRecord:
    """The session of ``access_token``, valid by ``_session_of``'s rule and issued to this
    client; 401 ``invalid_token`` otherwise."""
    state = request.app[STATE]
    found = await _session_of(state, access_token, state.settings.clock())
    if found is None or found[0].client_id != client_of(request).id:
        raise token_refused()
    return found[1]


def token_refused() -> ApiError:
    return ApiError(401, "invalid_token", "the access token is not valid")


_JWKS_CACHING = {"Cache-Control": f"max-age={JWKS_MAX_AGE}"}


async def jwks(request: web.Request) -> web.Response:
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


async def revoke_all(request: web.Request) -> web.Response:
    body = await read_body(request, models.RevocationEverywhere)
    state = request.app[STATE]
    session = await live_session(request, body.access_token)
    revoked = await state.database.revoke_user_sessions(session.user_id, state.settings.clock())
    state.log.info(
        "user.logged_out_everywhere",
        revoked_sessions=revoked,
        **ids(request, session.user_id, session.id),
    )
    return web.json_response({"revoked_sessions": revoked})


_OTHER_CLIENT = ApiError(400, "unauthorized_client", "the token was issued to another client")


async def revoke(request: web.Request) -> web.Response:
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


async def refresh(request: web.Request) -> web.Response:
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
            "token.refresh_reuse_detected", **ids(request, session.user_id, session.id)
        )
    elif rotation is Rotation.REISSUED and session is not None:
        state.log.info(
            "token.refresh_reissued_within_reuse_interval",
            **ids(request, session.user_id, session.id),
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
    return signed_in(user, access_token, refresh_token, settings.access_token_ttl)


async def introspect(request: web.Request) -> web.Response:
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
