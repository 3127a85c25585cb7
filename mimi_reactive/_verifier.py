"""The verifier resource servers keep: the service's keys fetched and cached, tokens checked
with them, and the aiohttp decorator that lets only logged-in users through."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any

import aiohttp
import jwt
from aiohttp import web

from ._access_token import ALGORITHMS, InvalidTokenError, VerifiedToken, decoded, kid_of
from ._checks import check_seconds, check_service_url, check_timeout, str_set
from ._exceptions import ConfigurationError, CoreClosedError
from ._log import Log
from .backends._answers import json_body

__all__ = ["VERIFIED_TOKEN", "AccessTokenVerifier", "requires_user", "verified_token"]

_log = Log("mimi_reactive.verify")
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _JwksUnavailableError(Exception):
    """The JWKS could not be fetched or used; the message names why (never a key)."""


class AccessTokenVerifier:
    """Verifies access tokens of the identity service at ``issuer`` (its public URL).

    ``leeway``: seconds of clock difference tolerated on exp, iat and nbf. ``jwks_ttl``:
    seconds the keys are cached. ``jwks_refetch_interval``: seconds between two fetches at
    least, for an unknown ``kid`` or after a failed fetch (a token naming an unknown key inside
    it is refused without a fetch, so forged tokens cannot make the service busy).
    ``jwks_max_stale``: seconds after the last successful fetch that its keys stay in use while
    the JWKS cannot be fetched.
    ``clients``: if given, only tokens issued to these client ids pass (a set or list of
    them; one id alone is ``{"my-app"}``, never the bare string). ``clock``: monotonic
    seconds (tests move it instead of sleeping). Use one verifier for the whole app and
    ``close()`` it (or ``async with``) at the end; ``verify`` then raises ``CoreClosedError``
    (so does a call whose fetch of the keys the close cut short).

    An ``issuer`` that is not an http(s) URL, or a duration or ``clients`` of the wrong type,
    raises ``TypeError`` or ``ConfigurationError``.
    """

    def __init__(
        self,
        issuer: str,
        *,
        leeway: float = 30.0,
        jwks_ttl: float = 300.0,
        jwks_refetch_interval: float = 30.0,
        jwks_max_stale: float = 3600.0,
        timeout: float = 5.0,
        clients: Iterable[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_service_url("issuer", issuer)
        for name, value in (
            ("leeway", leeway),
            ("jwks_ttl", jwks_ttl),
            ("jwks_refetch_interval", jwks_refetch_interval),
            ("jwks_max_stale", jwks_max_stale),
        ):
            check_seconds(name, value)
        check_timeout("timeout", timeout)
        if not jwks_refetch_interval <= jwks_ttl <= jwks_max_stale:
            raise ConfigurationError(
                "need 0 <= jwks_refetch_interval <= jwks_ttl <= jwks_max_stale, not "
                f"{jwks_refetch_interval:g}, {jwks_ttl:g}, {jwks_max_stale:g}"
            )
        self._issuer = issuer.rstrip("/")
        self._jwks_url = self._issuer + "/.well-known/jwks.json"
        self._leeway = leeway
        self._jwks_ttl = jwks_ttl
        self._refetch_interval = jwks_refetch_interval
        self._max_stale = jwks_max_stale
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clients = _client_ids(clients)
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -float("inf")
        """When the keys were last fetched (the clock's time)."""
        self._attempted_at = -float("inf")
        """When a fetch last started, whether or not it succeeded."""
        self._fetching: asyncio.Task[None] | None = None
        """The fetch running, if one is."""
        self._failing = False
        """Whether the last fetch failed (logged once, when it starts failing)."""
        self._http: aiohttp.ClientSession | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"AccessTokenVerifier({self._issuer!r}, keys={len(self._keys)})"

    async def verify(self, token: str) -> VerifiedToken:
        """The token's claims if it is valid now; ``InvalidTokenError`` otherwise, and
        ``CoreClosedError`` once the verifier is closed."""
        self._ensure_open()
        key = await self._key(kid_of(token))
        claims = decoded(token, key, issuer=self._issuer, leeway=self._leeway, now=time.time())
        if self._clients is not None and claims.client_id not in self._clients:
            raise InvalidTokenError("wrong_client", "the token was issued to another client")
        return claims

    async def _key(self, kid: str) -> jwt.PyJWK:
        """The key named ``kid``: from the cache, fetching the JWKS first when the cache is
        older than ``jwks_ttl`` or lacks ``kid``, if no fetch started in the last
        ``jwks_refetch_interval``."""
        now = self._clock()
        known = kid in self._keys and now - self._fetched_at < self._max_stale
        fresh = now - self._fetched_at < self._jwks_ttl
        starts = (
            self._fetching is None
            and not (known and fresh)
            and now - self._attempted_at >= self._refetch_interval
        )
        if starts:
            self._start_fetch()
        # A known key while another caller's fetch runs: use it rather than wait for the fetch.
        # An unknown one waits for that fetch, and shares it; inside the refetch interval, with
        # no fetch running, there is nothing to wait for.
        if self._fetching is not None and (starts or not known):
            # Shielded: a caller that gives up (cancelled: its client left, a timeout) leaves
            # the fetch running for the others, rather than spend the interval on nothing.
            await asyncio.shield(self._fetching)
        if kid in self._keys and self._age() < self._max_stale:
            return self._keys[kid]
        if self._failing:
            raise InvalidTokenError("jwks_unavailable", "cannot fetch the issuer's keys")
        raise InvalidTokenError("unknown_key", "no key of the issuer has this kid")

    def _start_fetch(self) -> None:
        """Start the fetch every caller shares, as a task of its own: no caller's cancellation
        cancels it."""
        self._attempted_at = self._clock()
        fetching = asyncio.get_running_loop().create_task(self._refresh())
        fetching.add_done_callback(self._fetch_ended)
        self._fetching = fetching

    def _fetch_ended(self, fetching: asyncio.Task[None]) -> None:
        """Forget the fetch that ended, so that the next one may start."""
        self._fetching = None
        if not fetching.cancelled():
            fetching.exception()  # retrieved, so none is reported if every caller gave up

    def _age(self) -> float:
        """Seconds since the keys were fetched."""
        return self._clock() - self._fetched_at

    async def _refresh(self) -> None:
        """Fetch the keys; on failure keep the ones cached, and log the first failure of a run."""
        try:
            keys = await self._fetch()
        except _JwksUnavailableError as error:
            if not self._failing:
                _log.warning("verify.jwks_unavailable", reason=str(error), keys=len(self._keys))
            self._failing = True
            return
        if self._failing:
            _log.info("verify.jwks_available_again", keys=len(keys))
        self._keys, self._fetched_at, self._failing = keys, self._clock(), False

    async def _fetch(self) -> dict[str, jwt.PyJWK]:
        """The JWKS's keys by ``kid``; ``_JwksUnavailableError`` if it cannot be fetched or is
        not a JWKS (its body is read up to ``LONGEST_ANSWER`` bytes: a hostile or broken
        service cannot fill memory, nor crash the parser with nesting), or if the issuer
        answers with a redirect, which is not followed."""
        self._ensure_open()  # closed before the task began
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        try:
            # Not redirected: the keys come from the issuer itself, as configured.
            async with self._http.get(self._jwks_url, allow_redirects=False) as response:
                if 300 <= response.status < 400:
                    raise _JwksUnavailableError(f"a redirect ({response.status}), not followed")
                response.raise_for_status()
                document = await json_body(response)
        except (aiohttp.ClientError, TimeoutError) as error:
            self._ensure_open()  # cut short by close(): not an outage of the issuer
            raise _JwksUnavailableError(type(error).__name__) from error
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise _JwksUnavailableError("not a JWKS")
        keys = _usable_keys(document["keys"])
        if not keys:
            raise _JwksUnavailableError("no usable key")
        return keys

    def _ensure_open(self) -> None:
        if self._closed:
            raise CoreClosedError("this AccessTokenVerifier is closed")

    async def close(self) -> None:
        """Close the HTTP session that fetches keys; later ``verify`` calls raise
        ``CoreClosedError``. Idempotent."""
        self._closed = True
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._fetching is not None:  # ended by the closed session: its callers are told
            await asyncio.wait([self._fetching])

    async def __aenter__(self) -> AccessTokenVerifier:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def _usable_keys(entries: list[Any]) -> dict[str, jwt.PyJWK]:
    """The ES256 keys of a JWKS's ``entries``, by ``kid``. An entry for another algorithm or
    use is ignored; one for ES256 that cannot be used (no kid, not an EC P-256 public key) is
    skipped, logged at debug by its kid, so that one bad key does not make the others unused.
    A key without ``alg`` (optional, RFC 7517) is ES256 if it is an EC P-256 key."""
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            _log.debug("verify.jwks_key_skipped", kid=None, why="not an object")
            continue
        ours = entry.get("kty") == "EC" and entry.get("crv") == "P-256"
        if entry.get("alg", "ES256" if ours else None) not in ALGORITHMS:
            continue
        if entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not ours:
            why = "no kid" if ours else "not an EC P-256 key"
            _log.debug(
                "verify.jwks_key_skipped", kid=kid[:64] if isinstance(kid, str) else None, why=why
            )
            continue
        try:
            keys[kid] = jwt.PyJWK(entry, algorithm="ES256")
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            # The error's type, never its message: PyJWT's may quote the whole JWK.
            _log.debug("verify.jwks_key_skipped", kid=kid[:64], why=type(error).__name__)
    return keys


def _client_ids(clients: Iterable[str] | None) -> frozenset[str] | None:
    """``clients`` as a set of client ids. A bare str is refused: ``in`` on it would test
    substrings, and let ``"app"`` pass a verifier given ``"app-admin"``."""
    if clients is None:
        return None
    ids = str_set("clients", clients, "{'my-app'}")
    if not ids:
        raise ConfigurationError("clients is empty: no token would pass; None accepts any client")
    return ids


VERIFIED_TOKEN = web.RequestKey("mimi_verified_token", VerifiedToken)
"""Where ``requires_user`` puts the caller's verified token on the request."""


def requires_user(verifier: AccessTokenVerifier) -> Callable[[_Handler], _Handler]:
    """Decorate an ``aiohttp.web`` handler to answer only callers with a valid access token.

    The token comes as ``Authorization: Bearer <token>``; the handler finds its claims with
    ``verified_token(request)``. A request without one is 401 ``missing_token`` with a bare
    ``WWW-Authenticate: Bearer`` challenge; a token that does not verify is 401
    ``invalid_token`` with ``WWW-Authenticate: Bearer error="invalid_token",
    error_description="<reason>"`` (RFC 6750), the reason as the message, never the token.
    """

    def decorate(handler: _Handler) -> _Handler:
        @functools.wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                # No token at all: a bare challenge, no error code (RFC 6750, section 3.1).
                return web.json_response(
                    {
                        "error": {
                            "code": "missing_token",
                            "message": "send Authorization: Bearer <token>",
                        }
                    },
                    status=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            try:
                request[VERIFIED_TOKEN] = await verifier.verify(token.strip())
            except InvalidTokenError as error:
                return web.json_response(
                    {"error": {"code": "invalid_token", "message": error.reason}},
                    status=401,
                    headers={
                        "WWW-Authenticate": f'Bearer error="invalid_token", '
                        f'error_description="{error.reason}"'
                    },
                )
            return await handler(request)

        return checked

    return decorate


def verified_token(request: web.Request) -> VerifiedToken:
    """The caller's verified token, in a handler decorated with ``requires_user``."""
    return request[VERIFIED_TOKEN]
