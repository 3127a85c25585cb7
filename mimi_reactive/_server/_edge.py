"""The one edge where requests are decoded: client credentials and JSON bodies.

Nothing past this edge sees raw input. Every way a request can be malformed ends here as an
``ApiError`` with a 4xx status and a stable code; messages never repeat the input.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
from collections.abc import AsyncIterator, Mapping
from typing import ClassVar, TypeVar

import pydantic
from aiohttp import BasicAuth, hdrs, web

from .._credential_rules import MIN_PASSWORD_LENGTH
from ._context import RegisteredClient, ServerState, client_of
from ._limits import RateLimitStorageError
from ._models import Credentials, Promotion
from ._secrets import matches_one_of
from ._settings import Network, RateLimit

__all__ = [
    "BODY_TIMEOUT",
    "ApiError",
    "Attempt",
    "BodyTimeoutError",
    "ClientGoneError",
    "attempt",
    "authenticate_client",
    "check_declared_size",
    "client_ip",
    "counted",
    "failed_log_in",
    "rate_limited",
    "read_body",
]

_Model = TypeVar("_Model", bound=pydantic.BaseModel)
_NEW_PASSWORD_MODELS: frozenset[type[pydantic.BaseModel]] = frozenset({Credentials, Promotion})
BODY_TIMEOUT = 10.0
"""Seconds a request's body has to arrive, once its headers have: a body is at most 64 KiB,
and aiohttp waits for one with no end (its keep-alive timeout pauses while a request is
served), so a client that stops mid-body would hold its connection and handler for good, and
a server's stop for its whole shutdown timeout."""


class ApiError(Exception):
    """An error answer: HTTP status, stable code, safe message."""

    event: ClassVar[str | None] = None
    """The info event the edge logs for it (with the route alone), where it is a client's
    doing an operator would want to see: a client gone, or stalled, mid-body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason
        """Why, in a word a program reads, where the code alone does not say (a refused
        refresh: ``unknown``, ``revoked``, ``reused`` or ``idle``; a ``route_not_allowed``:
        ``anonymous_only_client`` or ``anonymous_only_user``)."""
        self.retry_after = None if retry_after is None else max(1, math.ceil(retry_after))
        """Whole seconds for the ``Retry-After`` header (429 and 503)."""


class ClientGoneError(ApiError):
    """The client closed the connection before the end of its body: its doing, not a server
    fault (logged ``http.client_gone``); answered 400 in case it still reads."""

    event = "http.client_gone"

    def __init__(self) -> None:
        super().__init__(400, "invalid_request", "the body ended before its Content-Length")


class BodyTimeoutError(ApiError):
    """The body did not arrive within ``BODY_TIMEOUT`` (a client stalled mid-body, as a
    slowloris does): 408, and the connection closed (logged ``http.body_timed_out``)."""

    event = "http.body_timed_out"

    def __init__(self) -> None:
        super().__init__(
            408, "request_timeout", f"the body did not arrive within {BODY_TIMEOUT:g} s"
        )


def rate_limited(retry_after: float) -> ApiError:
    """The 429 for a client IP past one of its limits."""
    return ApiError(
        429, "rate_limited", "too many requests from this address", retry_after=retry_after
    )


def _refused(state: ServerState, limit: RateLimit, ip: str, retry_after: float) -> ApiError:
    """The 429 for ``ip`` past ``limit``, logged (one info event per refusal: an operator
    sees the attack, and a flood costs one line per request it already answers)."""
    state.log.info("rate_limit.refused", limit=limit.name, ip=ip)
    return rate_limited(retry_after)


async def counted(state: ServerState, limit: RateLimit, ip: str) -> ApiError | None:
    """Count one event of ``limit`` for ``ip``: the 429 to answer once that is past the
    limit, else None."""
    retry_after = await state.limiter.hit(limit, ip)
    return None if retry_after is None else _refused(state, limit, ip, retry_after)


def _log_failure(state: ServerState, reason: str, ip: str, client_id: str | None) -> None:
    """The info event of one failed log-in: why in a word, who by client and address; never
    the email, id, password or secret tried."""
    who = {"client_id": client_id} if client_id is not None else {}
    state.log.info("log_in.failed", reason=reason, **who, ip=ip)


async def failed_log_in(state: ServerState, ip: str, error: ApiError) -> ApiError:
    """Count a wrong client id or secret from ``ip`` as a failed log-in; the error to answer
    (429 once past the limit, logged as that refusal alone: one event a request)."""
    if refused := await counted(state, state.settings.failure_limit, ip):
        return refused
    _log_failure(state, "client_credentials", ip, None)
    return error


class Attempt:
    """A log-in (or a question that tells as much: is this email taken?) of ``ip``, counted
    as failed from its start by ``attempt``; ``failed`` keeps it counted."""

    def __init__(self, state: ServerState, ip: str, client_id: str) -> None:
        self._state = state
        self.ip = ip
        self._client_id = client_id
        self.kept = False

    def failed(self, reason: str, error: ApiError) -> ApiError:
        """``error``, this attempt kept counted as a failed log-in (``reason`` says why, in
        the ``log_in.failed`` event)."""
        self.kept = True
        _log_failure(self._state, reason, self.ip, self._client_id)
        return error


@contextlib.asynccontextmanager
async def attempt(request: web.Request, state: ServerState) -> AsyncIterator[Attempt]:
    """A log-in attempt of the request's client IP, counted as failed before any lookup or
    Argon2 work (429 if that is past the failed log-in limit) and taken back as it ends,
    unless ``Attempt.failed`` kept it.

    Counted first so that a storage that answers reads but refuses writes (a read-only
    replica after a failover, a full Redis under ``noeviction``) answers every attempt 503,
    right password or wrong: checked by a read and counted after, a wrong one would be 503
    and never counted, a right one 200, and guessing would run at Argon2 speed. A refund that
    fails leaves the attempt counted (logged ``rate_limit.refund_failed``): the answer was
    earned by a count."""
    ip = client_ip(request, state.settings.trusted_proxies)
    limit = state.settings.failure_limit
    charge = await state.limiter.charge(limit, ip)
    if charge.retry_after is not None:
        raise _refused(state, limit, ip, charge.retry_after)
    current = Attempt(state, ip, client_of(request).id)
    try:
        yield current
    finally:
        if not current.kept:
            try:
                await state.limiter.refund(charge)
            except RateLimitStorageError as error:
                state.log.warning(
                    "rate_limit.refund_failed", storage=error.storage, timed_out=error.timed_out
                )


def client_ip(request: web.Request, trusted_proxies: frozenset[Network]) -> str:
    """The address limits count by: the peer, or the client a trusted proxy forwarded for
    (an IPv4-mapped address as the IPv4 address it carries: one client, one address).

    ``X-Forwarded-For`` is read right to left, skipping trusted proxies: the first other
    address is the one the nearest trusted proxy saw, which a client cannot forge.
    """
    peer = request.remote or "unknown"
    peer_address = _address(peer)
    if peer_address is None:  # no peer (a closed transport), or not an IP: as it is
        return peer
    if not trusted_proxies or not _trusted(peer_address, trusted_proxies):
        return str(peer_address)
    # Repeated lines are one list in order (RFC 9110 5.3): a proxy that appends a line of its
    # own (HAProxy's option forwardfor) puts the hop it saw after the client's lines.
    hops = ",".join(request.headers.getall(hdrs.X_FORWARDED_FOR, ())).split(",")
    # One pass, each hop parsed once; empty elements are no hops (RFC 9110 5.6.1); one that
    # is not an address ends the trust.
    for hop in reversed(hops):
        if not (hop := hop.strip()):
            continue
        address = _address(_without_port(hop))
        if address is None:
            break
        if not _trusted(address, trusted_proxies):
            return str(address)
    return str(peer_address)


def _without_port(hop: str) -> str:
    """``hop`` without the port some proxies add (``203.0.113.1:4711``, ``[2001:db8::1]:4711``)
    or the brackets around an IPv6 address."""
    if hop.startswith("["):
        host, bracket, rest = hop[1:].partition("]")
        return host if bracket and (not rest or _is_port(rest)) else hop
    host, colon, port = hop.partition(":")
    return host if colon and ":" not in port and port.isdigit() else hop


def _is_port(text: str) -> bool:
    """Whether ``text`` is ``:`` and a port number."""
    return text.startswith(":") and text[1:].isdigit()


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``text`` as an IP address; None if it is not one. An IPv4-mapped IPv6 address is the
    IPv4 address it carries: a socket or proxy on both stacks writes an IPv4 hop so, and a
    trusted proxy written so is still trusted."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
    trusted_proxies: frozenset[Network],
) -> bool:
    """Whether ``address`` is within one of ``trusted_proxies``."""
    return address is not None and any(address in proxies for proxies in trusted_proxies)


def authenticate_client(
    request: web.Request, clients: Mapping[str, RegisteredClient]
) -> RegisteredClient:
    """Check the HTTP Basic client id and secret; 401 ``invalid_client`` otherwise, and 400
    ``invalid_request`` for more than one ``Authorization`` header (which would be taken
    depends on who reads: a proxy may check one and pass the other)."""
    headers = request.headers.getall(hdrs.AUTHORIZATION, ())
    if len(headers) > 1:
        raise ApiError(400, "invalid_request", "more than one Authorization header")
    header = headers[0] if headers else None
    if header is None:
        raise ApiError(401, "invalid_client", "client authentication is required (HTTP Basic)")
    try:
        credentials = BasicAuth.decode(header, encoding="utf-8")
    except ValueError:  # not Basic, not base64, not UTF-8, no colon: one answer for all
        raise ApiError(401, "invalid_client", "malformed client credentials") from None
    client = clients.get(credentials.login)
    expected = client.secret_digests if client is not None else ()
    # Compare even for an unknown id, so timing does not tell which ids exist (nor, for a
    # client with two secrets, which one matched).
    if not matches_one_of(credentials.password, expected) or client is None:
        raise ApiError(401, "invalid_client", "client authentication failed")
    return client


async def read_body(request: web.Request, model: type[_Model]) -> _Model:
    """The body as ``model``: 415 unless uncompressed UTF-8 JSON, 413 if too large, 400 unless
    valid."""
    charset = (request.charset or "utf-8").lower()
    if request.content_type != "application/json" or charset not in ("utf-8", "utf8"):
        raise ApiError(415, "unsupported_media_type", "the body must be application/json in UTF-8")
    if _coded(request):
        raise ApiError(415, "unsupported_media_type", "the body must not be compressed")
    check_declared_size(request)
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            raw = await request.read()  # past client_max_size: HTTPRequestEntityTooLarge, a 413
    except ConnectionResetError:  # aiohttp's word for a connection lost mid-body
        raise ClientGoneError from None
    except TimeoutError:
        raise BodyTimeoutError from None
    try:
        return model.model_validate_json(raw)
    except pydantic.ValidationError as error:
        raise _refusal(model, error) from None


def _coded(request: web.Request) -> bool:
    """Whether the body comes in a coding: a ``Content-Encoding`` line but ``identity``, or a
    transfer coding but ``chunked``, each line read (the first alone let ``identity`` then
    ``gzip`` through).

    Bodies are a few hundred bytes: compression buys nothing and a bomb costs memory and CPU
    before any size check. The runner does not inflate (``auto_decompress=False``), so any
    coding would reach the model as it came; every one is refused before the body is read."""
    content = _codings(request.headers.getall(hdrs.CONTENT_ENCODING, []))
    transfer = _codings(request.headers.getall(hdrs.TRANSFER_ENCODING, []))
    return any(coding != "identity" for coding in content) or any(
        coding != "chunked" for coding in transfer
    )


def _codings(lines: list[str]) -> list[str]:
    """The codings a header's lines list, each line a comma-separated list whose empty
    elements are ignored (RFC 9110 section 5.6.1: ``, chunked`` is ``chunked``, as aiohttp
    reads it)."""
    return [
        coding for line in lines for part in line.split(",") if (coding := part.strip().lower())
    ]


def check_declared_size(request: web.Request) -> None:
    """aiohttp's 413 for a body whose ``Content-Length`` is past the app's limit, before any
    of it is read: aiohttp itself waits for that much of it first (a client declaring 100 MB
    and sending nothing had no answer), and answers ``Expect: 100-continue`` by asking for it
    all."""
    declared = request.content_length
    if declared is not None and declared > request.client_max_size:
        raise web.HTTPRequestEntityTooLarge(request.client_max_size, declared)


def _refusal(model: type[pydantic.BaseModel], error: pydantic.ValidationError) -> ApiError:
    """The answer for a body the model refuses; names the field, never repeats the input."""
    first = error.errors(include_url=False, include_input=False, include_context=False)[0]
    field = ".".join(str(part) for part in first["loc"])
    if first["type"] == "json_invalid":
        return ApiError(400, "invalid_request", "the body is not valid JSON")
    if first["type"] == "model_type":
        return ApiError(400, "invalid_request", "the body must be a JSON object")
    if field == "grant_type" and first["type"] == "literal_error":
        return ApiError(400, "unsupported_grant_type", "'grant_type' must be 'refresh_token'")
    if (
        model in _NEW_PASSWORD_MODELS
        and field == "password"
        and first["type"] == "string_too_short"
    ):
        return ApiError(
            400,
            "weak_password",
            f"'password' must have at least {MIN_PASSWORD_LENGTH} characters",
        )
    return ApiError(400, "invalid_request", f"'{field}': {first['msg']}")
