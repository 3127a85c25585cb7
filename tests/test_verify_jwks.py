"""How often AccessTokenVerifier fetches the JWKS: forged kids cannot make it fetch more than
once per ``jwks_refetch_interval``, a JWKS outage keeps the cached keys in use up to
``jwks_max_stale``, and a key rotated in is taken up after the interval. Against the real
server, through a proxy of the test's own that counts the JWKS requests."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from mimi_reactive._server._tokens import KEY_READ_THROTTLE, PUBLISH_LEAD
from mimi_reactive.server import IdentityServer, ServerSettings
from mimi_reactive.verify import AccessTokenVerifier, InvalidTokenError

from .conftest import CLIENT_ID
from .forwarding_proxy import ForwardingProxy
from .server_helpers import Caller, Clock

INTERVAL, TTL, MAX_STALE = 30.0, 300.0, 3600.0
JWKS = "/.well-known/jwks.json"


class JwksProxy(ForwardingProxy):
    """Forwards to the server ``forward_to`` names and counts the JWKS requests; ``failing``
    makes it answer them 503, ``stop()`` closes its port."""

    def __init__(self) -> None:
        super().__init__("")
        self.requests = 0
        self.failing = False

    def forward_to(self, upstream: str) -> None:
        self._upstream = upstream

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if request.path == JWKS:
            self.requests += 1
            if self.failing:
                return web.json_response({"error": "down"}, status=503)
        return await super()._forward(request)

    async def stop(self) -> None:
        await self.__aexit__(None, None, None)


@pytest.fixture
async def proxy() -> AsyncIterator[JwksProxy]:
    running = JwksProxy()
    async with running:
        yield running


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A SQLite file, so that a key can be rotated in from outside the server."""
    return str(tmp_path / "ids.sqlite3")


@pytest.fixture
async def server(
    proxy: JwksProxy, client_secret: str, store: str, server_clock: Clock
) -> AsyncIterator[IdentityServer]:
    """The server, whose tokens name the proxy as their issuer (so verifiers fetch there)."""
    settings = ServerSettings(issuer=proxy.url, clock=server_clock)
    async with IdentityServer(
        client_id=CLIENT_ID, client_secret=client_secret, database=store, settings=settings
    ) as running:
        proxy.forward_to(running.url)
        yield running


@pytest.fixture
async def caller(server: IdentityServer, client_secret: str) -> AsyncIterator[Caller]:
    async with aiohttp.ClientSession() as http:
        yield Caller(http, server.url, CLIENT_ID, client_secret)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server_clock() -> Clock:
    """The server's clock: the real time until a test moves it."""
    return Clock(time.time())


@pytest.fixture
async def verifier(proxy: JwksProxy, clock: Clock) -> AsyncIterator[AccessTokenVerifier]:
    async with AccessTokenVerifier(
        proxy.url,
        jwks_refetch_interval=INTERVAL,
        jwks_ttl=TTL,
        jwks_max_stale=MAX_STALE,
        clock=clock,
    ) as checking:
        yield checking


async def access_token(caller: Caller) -> str:
    return str((await caller.anonymous_user())["session"]["access_token"])


def forged_kid(token: str) -> str:
    """The token's claims signed by a key of the attacker's, under a kid nobody published."""
    claims = jwt.decode(token, options={"verify_signature": False})
    other = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(
        claims, other, algorithm="ES256", headers={"kid": secrets.token_hex(8), "typ": "at+jwt"}
    )


async def reasons(verifier: AccessTokenVerifier, tokens: list[str]) -> set[str]:
    """The reasons ``verifier`` refuses each of ``tokens`` for, all verified at once."""
    outcomes = await asyncio.gather(
        *(verifier.verify(token) for token in tokens), return_exceptions=True
    )
    assert all(isinstance(outcome, InvalidTokenError) for outcome in outcomes), outcomes
    return {outcome.reason for outcome in outcomes if isinstance(outcome, InvalidTokenError)}


async def test_fifty_forged_kids_make_one_fetch_per_interval(
    caller: Caller, verifier: AccessTokenVerifier, proxy: JwksProxy, clock: Clock
) -> None:
    """50 tokens with unknown kids, at once, share one fetch; 50 more inside the interval make
    none; after the interval the next 50 make one more. Each is refused as unknown_key, and a
    genuine token verifies from the cache meanwhile."""
    genuine = await access_token(caller)
    forged = [forged_kid(genuine) for _ in range(50)]

    assert await reasons(verifier, forged) == {"unknown_key"}
    assert proxy.requests == 1
    await verifier.verify(genuine)
    clock.now += INTERVAL - 1
    assert await reasons(verifier, [forged_kid(genuine) for _ in range(50)]) == {"unknown_key"}
    assert proxy.requests == 1
    clock.now += 1
    assert await reasons(verifier, forged) == {"unknown_key"}
    assert proxy.requests == 2
    assert (await verifier.verify(genuine)).client_id == CLIENT_ID
    assert proxy.requests == 2


async def test_a_jwks_outage_keeps_the_cached_keys_up_to_the_max_staleness(
    caller: Caller,
    verifier: AccessTokenVerifier,
    proxy: JwksProxy,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Past the TTL with the JWKS answering 503, a genuine token still verifies; the JWKS is
    asked again at most once per interval, the outage is logged once at warning and its end
    at info; past the max staleness with the JWKS still down, tokens are jwks_unavailable."""
    caplog.set_level(logging.INFO, logger="mimi_reactive.verify")
    genuine = await access_token(caller)
    await verifier.verify(genuine)
    proxy.failing = True
    clock.now += TTL
    for _ in range(20):
        assert (await verifier.verify(genuine)).client_id == CLIENT_ID
    assert proxy.requests == 2
    clock.now += INTERVAL
    for _ in range(20):
        await verifier.verify(genuine)
    assert proxy.requests == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split()[0] for r in warnings] == ["verify.jwks_unavailable"]
    assert genuine not in caplog.text

    proxy.failing = False
    clock.now += INTERVAL
    await verifier.verify(genuine)
    assert proxy.requests == 4
    assert "verify.jwks_available_again" in caplog.text

    proxy.failing = True
    clock.now += MAX_STALE
    with pytest.raises(InvalidTokenError) as raised:
        await verifier.verify(genuine)
    assert raised.value.reason == "jwks_unavailable"
    assert proxy.requests == 5


async def test_a_genuine_token_verifies_with_the_jwks_port_closed(
    caller: Caller, verifier: AccessTokenVerifier, proxy: JwksProxy, clock: Clock
) -> None:
    """After the TTL, with nothing listening where the JWKS was, a genuine token verifies from
    the cached keys; a token naming an unknown key is jwks_unavailable."""
    genuine = await access_token(caller)
    await verifier.verify(genuine)
    await proxy.stop()
    clock.now += TTL
    assert (await verifier.verify(genuine)).client_id == CLIENT_ID
    clock.now += INTERVAL
    assert await reasons(verifier, [forged_kid(genuine)]) == {"jwks_unavailable"}
    assert (await verifier.verify(genuine)).client_id == CLIENT_ID
    assert proxy.requests == 1


async def test_a_key_rotated_in_is_taken_up_after_the_interval(
    caller: Caller,
    verifier: AccessTokenVerifier,
    proxy: JwksProxy,
    clock: Clock,
    server_clock: Clock,
    store: str,
) -> None:
    """A token of a key rotated in just after a fetch is unknown_key until the interval has
    passed, then the verifier fetches once and accepts it; the old key's tokens still pass.
    (The rotation runs on a clock a lead behind, so its key signs at once, unpublished ahead.)"""
    old = await access_token(caller)
    await verifier.verify(old)
    await IdentityServer.rotate_signing_key(store, now=server_clock.now - PUBLISH_LEAD)
    server_clock.now += KEY_READ_THROTTLE
    async with caller.http.get(caller.url + JWKS):  # the server takes it up
        pass
    new = await access_token(caller)
    assert jwt.get_unverified_header(new)["kid"] != jwt.get_unverified_header(old)["kid"]

    assert await reasons(verifier, [new]) == {"unknown_key"}
    assert proxy.requests == 1
    clock.now += INTERVAL
    assert (await verifier.verify(new)).client_id == CLIENT_ID
    assert (await verifier.verify(old)).client_id == CLIENT_ID
    assert proxy.requests == 2


@pytest.mark.parametrize(
    ("interval", "ttl", "max_stale"),
    [(-1.0, 300.0, 3600.0), (60.0, 30.0, 3600.0), (30.0, 300.0, 60.0)],
)
def test_settings_out_of_order_are_refused(interval: float, ttl: float, max_stale: float) -> None:
    """The refetch interval must be within the TTL, and the TTL within the max staleness."""
    with pytest.raises(ValueError, match="jwks_refetch_interval"):
        AccessTokenVerifier(
            "http://identity.test",
            jwks_refetch_interval=interval,
            jwks_ttl=ttl,
            jwks_max_stale=max_stale,
        )
