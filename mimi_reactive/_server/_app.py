"""The reference identity service's HTTP API, on ``aiohttp.web``.

Every call but ``GET /health``, ``GET /ready``, ``GET /openapi.json`` and
``GET /.well-known/jwks.json`` (and ``HEAD`` of each) authenticates the app's client with HTTP
Basic (client id and secret); an unknown path (404) or method (405) is refused before that.
Tokens travel in JSON bodies, as in OAuth token revocation (RFC 7009), so the
``Authorization`` header stays the client's. Errors answer ``{"error": {"code": ...,
"message": ...}}`` with a stable code; while the database or the rate-limit storage is out,
503 with Retry-After; messages never hold secrets.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING

import structlog
from aiohttp import HttpVersion11, hdrs, web
from aiohttp.web_urldispatcher import MatchInfoError, UrlMappingMatchInfo
from yarl import URL

if TYPE_CHECKING:
    from aiohttp.web_urldispatcher import _InfoDict

from ._context import STATE, RegisteredClient, ServerSettings, ServerState, set_client
from ._database import IdentityDatabase
from ._edge import (
    ApiError,
    authenticate_client,
    check_declared_size,
    client_ip,
    failed_log_in,
)
from ._handlers import HANDLERS
from ._limits import RateLimiter, RateLimitStorageError
from ._logs import debug_enabled
from ._openapi import OPERATIONS, openapi_document
from ._outages import TEMPORARILY_UNAVAILABLE, is_outage
from ._secrets import PasswordHasher, new_secret
from ._stores import failure_reason
from ._tokens import AccessTokens

__all__ = [
    "ApiError",
    "ServerSettings",
    "cannot_listen",
    "create_app",
    "listen",
    "served_url",
    "token_issuer",
]

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# By handler, which routing has already found: cheaper than the request's path.
_PUBLIC_HANDLERS = frozenset(HANDLERS[op.name] for op in OPERATIONS if op.public)
# Those that need no signing key: the probes (/ready loads the keys itself) and the document.
_KEYLESS_HANDLERS = frozenset(HANDLERS[name] for name in ("health", "ready", "openapi"))
_MAX_BODY_BYTES = 64 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def cannot_listen(host: str, port: int, error: BaseException) -> str:
    """The one line for a port that cannot be listened on (an IPv6 address in brackets, as
    in a URL: ``[fe80::1]:0``, not ``fe80::1:0``)."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"cannot listen on {where}: {failure_reason(error)}"


def served_url(host: str, port: int) -> str:
    """The URL of a server listening on ``host:port`` (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def token_issuer(
    settings: ServerSettings, host: str, url: str, log: structlog.typing.FilteringBoundLogger
) -> str:
    """The ``iss`` of access tokens: the configured issuer, else ``url``, where the server
    listens on ``host``. A wildcard address (0.0.0.0, ::) makes no URL a resource server can
    fetch keys from or match tokens against, so taking one is logged as a warning naming
    ``--issuer``."""
    if settings.issuer is not None:
        return settings.issuer
    if _is_unspecified(host):
        log.warning(
            "server.issuer_is_a_wildcard_address",
            issuer=url,
            hint="set --issuer (issuer in the config file) to the URL resource servers reach",
        )
    return url


def listen(host: str, port: int) -> socket.socket:
    """The one socket a server process (or gunicorn's workers) listens on: ``host:port``,
    at the first address ``host`` resolves to (a name such as ``localhost`` with an IPv4 and
    an IPv6 address gets the one the resolver puts first); ``::`` also takes IPv4 clients
    (dual stack, as Python's ``http.server``, gunicorn and Node listen) where the system
    can. ``ValueError`` saying in one line why not (a busy port, an address not of this
    machine, an unknown host). It blocks on the resolver: call it off the event loop."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        # socket.create_server makes an IPv6 socket IPv6-only unless asked: "::" would then
        # refuse every IPv4 client.
        dual_stack = (
            family == socket.AF_INET6 and _is_unspecified(host) and socket.has_dualstack_ipv6()
        )
        return socket.create_server(
            (host, port), family=family, backlog=2048, dualstack_ipv6=dual_stack
        )
    except (OSError, OverflowError, UnicodeError) as error:  # UnicodeError: IDNA's refusal
        raise ValueError(cannot_listen(host, port, error)) from None


def _is_unspecified(host: str) -> bool:
    """Whether ``host`` is the wildcard address (``0.0.0.0``, ``::``), not a name."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def create_app(
    *,
    database: IdentityDatabase,
    clients: Mapping[str, RegisteredClient],
    settings: ServerSettings,
    logger: structlog.typing.FilteringBoundLogger,
    passwords: PasswordHasher,
    limiter: RateLimiter,
    tokens: AccessTokens,
) -> web.Application:
    """Build the application for these clients (by id) and this storage."""
    app = web.Application(
        middlewares=[_edge],
        client_max_size=_MAX_BODY_BYTES,
    )
    app[STATE] = ServerState(
        database=database,
        settings=settings,
        clients=clients,
        passwords=passwords,
        limiter=limiter,
        tokens=tokens,
        log=logger,
        openapi=json.dumps(openapi_document()).encode(),
    )
    app.on_startup.append(_prepare_dummy_hash)
    for operation in OPERATIONS:
        handler = HANDLERS[operation.name]
        if operation.method == "GET":  # and HEAD (RFC 9110 section 9.3.2), by the same handler
            app.router.add_get(operation.path, handler, expect_handler=_expect)
        else:
            app.router.add_route(operation.method, operation.path, handler, expect_handler=_expect)
    app.router.register_resource(_Unrouted(app.router))  # last: what no route above matched
    return app


_EXPECTATION_FAILED = ApiError(
    417, "expectation_failed", "the only expectation served is Expect: 100-continue"
)


async def _expect(request: web.Request) -> web.StreamResponse | None:
    """The ``Expect`` header of every request, routed or not: ``100-continue`` as aiohttp
    answers it, but for a body declared too large, refused instead of asked for (RFC 9110
    section 10.1.1); any other expectation refused as the other errors are, in JSON with
    no-store (aiohttp's own answer is plain text echoing the header). It runs before the
    middlewares, so it answers itself."""
    if request.headers.get(hdrs.EXPECT, "").lower() != "100-continue":
        response = _error_response(_EXPECTATION_FAILED)
        response.headers.update(_NO_STORE)
        return response
    try:
        check_declared_size(request)
    except web.HTTPRequestEntityTooLarge as error:
        response = _http_error_response(error)
        response.headers.update(_NO_STORE)
        return response
    if request.version == HttpVersion11:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the interim answer is not the body's
    return None


class _Refused(MatchInfoError):  # noqa: N818 (a match, named after aiohttp's, not an exception)
    """aiohttp's 404 or 405 for a request no route takes, with ``_expect`` as its expect
    handler (aiohttp's own would answer an unknown expectation in plain text)."""

    __slots__ = ()

    @property
    def expect_handler(self) -> Callable[[web.Request], Awaitable[web.StreamResponse | None]]:
        return _expect


class _Unrouted(web.AbstractResource):
    """Registered after every route, so tried last: takes each request no route matched, as
    the 404 (or the 405, with the methods the path has) aiohttp would answer, but with
    ``_expect`` for its ``Expect`` header."""

    def __init__(self, router: web.UrlDispatcher) -> None:
        super().__init__()
        self._router = router

    @property
    def canonical(self) -> str:
        return "/"  # indexed under "/", which every path's lookup reaches last

    async def resolve(self, request: web.Request) -> tuple[UrlMappingMatchInfo | None, set[str]]:
        allowed: set[str] = set()
        for resource in self._router.resources():
            if resource is not self:
                allowed |= (await resource.resolve(request))[1]
        if allowed:
            return _Refused(web.HTTPMethodNotAllowed(request.method, allowed)), set()
        return _Refused(web.HTTPNotFound()), set()

    def url_for(self, **kwargs: str) -> URL:
        raise RuntimeError("no URL leads to a request no route takes")

    def add_prefix(self, prefix: str) -> None:
        pass  # it matches every path, under any prefix

    def get_info(self) -> _InfoDict:
        return {}

    def raw_match(self, path: str) -> bool:
        return False

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[web.AbstractRoute]:
        return iter(())


async def _prepare_dummy_hash(app: web.Application) -> None:
    state = app[STATE]
    state.dummy_hash = await state.passwords.hash(new_secret())


@web.middleware
async def _edge(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Every request: its client authenticated (but on public paths, and where routing
    refused it: an unknown path is 404 and a wrong method 405 whoever asks), any error
    answered as JSON with a stable code, no answer cached, and one debug line.

    One middleware rather than one per concern: each layer costs a coroutine per request, and
    three made ``GET /health`` a quarter slower than a bare handler.
    """
    started = time.perf_counter()
    try:
        route = request.match_info
        if route.http_exception is None and route.handler not in _PUBLIC_HANDLERS:
            await _authenticate_client(request)
        tokens = request.app[STATE].tokens
        if (
            not tokens.loaded
            and route.http_exception is None  # a 404 or 405 needs no key: refused as it is
            and route.handler not in _KEYLESS_HANDLERS
        ):
            # A worker started while the database was out: read the keys now, before any
            # write a response could not sign for (failing as an outage does: 503).
            await tokens.ensure_loaded(request.app[STATE].database)
        response = await handler(request)
    except ApiError as error:
        if error.event is not None:
            request.app[STATE].log.info(error.event, route=_route(request))
        response = _error_response(error)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        response = _http_error_response(error)
    except RateLimitStorageError as error:
        # Not this request's fault nor a bug: the storage (Redis) is down; try again soon.
        request.app[STATE].log.warning(
            "rate_limit.storage_failed",
            route=_route(request),
            storage=error.storage,
            timed_out=error.timed_out,
        )
        response = _error_response(TEMPORARILY_UNAVAILABLE)
    except Exception as error:
        if is_outage(error):
            # Neither this request's fault nor a bug: the database is unreachable or failing.
            request.app[STATE].log.warning(
                "database.unavailable", route=_route(request), error=type(error).__name__
            )
            response = _error_response(TEMPORARILY_UNAVAILABLE)
        else:
            request.app[STATE].log.error(
                "http.internal_error", route=_route(request), error=type(error).__name__
            )
            response = _error_response(ApiError(500, "internal_error", "the server failed"))
    if "Cache-Control" not in response.headers:  # the JWKS says how long it may be kept
        # Answers carry tokens, anonymous ids and user data: no cache may keep any
        # (RFC 6749 section 5.1; Pragma for HTTP/1.0 caches).
        response.headers.update(_NO_STORE)
    log = request.app[STATE].log
    if debug_enabled(log):
        # The route, not the path (a path can carry anything), and the status: never bodies
        # or headers, which carry credentials.
        log.debug(
            "http.request",
            method=request.method,
            route=_route(request),
            status=response.status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
    return response


async def _authenticate_client(request: web.Request) -> None:
    """Every non-public call names its client; a wrong secret counts as a failed log-in."""
    state = request.app[STATE]
    try:
        set_client(request, authenticate_client(request, state.clients))
    except ApiError as error:
        if error.status != 401:  # a malformed request (two headers), no credential tried
            raise
        ip = client_ip(request, state.settings.trusted_proxies)
        raise await failed_log_in(state, ip, error) from None


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


_CODES_BY_STATUS = {
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


def _http_error_response(error: web.HTTPException) -> web.Response:
    """aiohttp's own refusals (no route, wrong method, body too large) in our JSON shape."""
    code = _CODES_BY_STATUS.get(error.status, "invalid_request")
    answer = _error_response(ApiError(error.status, code, error.reason))
    if "Allow" in error.headers:  # a 405 says which methods the path has
        answer.headers["Allow"] = error.headers["Allow"]
    return answer


_CHALLENGES = {
    "invalid_client": 'Basic realm="mimi"',
    "invalid_token": 'Bearer realm="mimi", error="invalid_token"',
}
"""The challenge of each 401 (RFC 9110 asks one of every 401), by the credential refused: the
client's (HTTP Basic), or a user's access token (RFC 6750 section 3.1; it travels in the
body, as section 2.2 allows). A user's wrong password or anonymous id is no failed
authentication of the caller: 400 ``invalid_grant``, as RFC 6749 section 5.2 answers a
refused grant, so no HTTP client takes it for wrong client credentials."""


def _error_response(error: ApiError) -> web.Response:
    headers = {"WWW-Authenticate": _CHALLENGES[error.code]} if error.status == 401 else {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    answer = {"code": error.code, "message": error.message}
    if error.reason is not None:
        answer["reason"] = error.reason
    response = web.json_response({"error": answer}, status=error.status, headers=headers)
    if error.status == 408:
        # The rest of a stalled body may still come: the connection ends with this answer
        # (RFC 9110 section 15.5.9), lest it be read as the next request.
        response.force_close()
    return response
