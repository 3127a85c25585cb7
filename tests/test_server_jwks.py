"""The JWKS route: cacheable for no longer than a new key's lead allows, its keys read from
the database at most once per KEY_READ_THROTTLE, and each public key built once."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mimi_reactive._server._settings import PUBLISH_LEAD
from mimi_reactive._server._tokens import KEY_READ_THROTTLE, AccessTokens, new_signing_key
from mimi_reactive.server import IdentityServer, ServerSettings

from .conftest import CLIENT_ID
from .server_helpers import Caller, Clock, calling
from .test_server_key_rotation import kid_of
from .test_verify_jwks import access_token

EPSILON = 0.001


@pytest.fixture
async def rotating(
    database_url: str, tmp_path: Path, client_secret: str
) -> AsyncIterator[tuple[str, Clock, Caller]]:
    """A server on a clock the test moves, its store (which a rotation opens too), a caller."""
    store = str(tmp_path / "ids.sqlite3") if database_url == ":memory:" else database_url
    clock = Clock(time.time())
    settings = ServerSettings(clock=clock)
    async with calling(CLIENT_ID, client_secret, database=store, settings=settings) as (_, caller):
        yield store, clock, caller


async def fetch(caller: Caller) -> tuple[list[str], int]:
    """The JWKS's kids and how long it may be cached (its max-age)."""
    async with caller.http.get(caller.url + "/.well-known/jwks.json") as response:
        assert response.status == 200
        max_age = re.fullmatch(r"max-age=([0-9]+)", response.headers["Cache-Control"])
        assert max_age is not None, response.headers["Cache-Control"]
        return [key["kid"] for key in (await response.json())["keys"]], int(max_age[1])


async def test_a_cache_that_missed_a_new_key_expires_before_the_key_signs(
    rotating: tuple[str, Clock, Caller],
) -> None:
    """The worst case of a resource server that caches the JWKS for its max-age and never
    fetches again on an unknown kid: it fetched just before the server read the new key, yet
    every token signed while that copy is cached is of a key in it, because max-age plus
    KEY_READ_THROTTLE is at most PUBLISH_LEAD."""
    store, clock, caller = rotating
    old_kid = kid_of(await access_token(caller))
    rotated_at = clock.now
    new_kid = await IdentityServer.rotate_signing_key(store, now=rotated_at)
    clock.now = rotated_at + KEY_READ_THROTTLE - EPSILON  # the last fetch that can miss it
    kids, max_age = await fetch(caller)
    assert kids == [old_kid]
    assert max_age + KEY_READ_THROTTLE <= PUBLISH_LEAD
    clock.now += max_age - EPSILON  # the copy's last cached instant
    assert sorted((await fetch(caller))[0]) == sorted([old_kid, new_kid])  # the server reads
    assert kid_of(await access_token(caller)) == old_kid
    clock.now = rotated_at + PUBLISH_LEAD
    await fetch(caller)
    assert kid_of(await access_token(caller)) == new_kid


async def test_the_jwks_reads_the_keys_at_most_once_per_throttle(
    rotating: tuple[str, Clock, Caller],
) -> None:
    """JWKS requests, however many, read the stored keys again only once KEY_READ_THROTTLE
    has passed since the last read: a key rotated in meanwhile is published from then."""
    store, clock, caller = rotating
    started = clock.now
    new_kid = await IdentityServer.rotate_signing_key(store, now=clock.now)
    clock.now = started + KEY_READ_THROTTLE - EPSILON
    for _ in range(20):
        assert new_kid not in (await fetch(caller))[0]
    clock.now = started + KEY_READ_THROTTLE
    assert new_kid in (await fetch(caller))[0]


def test_each_public_key_is_built_once_per_read() -> None:
    """Serving the JWKS again hands out the JWKs built when the keys were read, rather than
    parsing each private key on every request."""
    now = time.time()
    keys = [new_signing_key(now), new_signing_key(now - PUBLISH_LEAD)]
    tokens = AccessTokens(keys, ttl=3600.0, clock=lambda: now)
    first, again = tokens.jwks(now)["keys"], tokens.jwks(now)["keys"]
    assert [key["kid"] for key in first] == [key.kid for key in keys]
    assert all(built is served for built, served in zip(first, again, strict=True))
