"""No cache keeps an answer of the server (RFC 6749 section 5.1): every answer, success or
error, says ``Cache-Control: no-store`` and ``Pragma: no-cache``, but the JWKS's, which may be
kept five minutes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from mimi_reactive._server._tokens import JWKS_MAX_AGE
from mimi_reactive.server import IdentityServer

from .conftest import CLIENT_ID

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Answers:
    """Calls the server as the test client and keeps each answer's status and cache headers."""

    def __init__(self, http: aiohttp.ClientSession, url: str, secret: str) -> None:
        self.http, self.url = http, url
        self.auth = aiohttp.encode_basic_auth(CLIENT_ID, secret)
        self.headers: dict[str, tuple[int, dict[str, str | None]]] = {}

    async def call(
        self, name: str, method: str, path: str, body: Any = None, *, auth: str | None = None
    ) -> Any:
        """Send one request; keep what ``name`` answered (status, cache headers); its body."""
        headers = {"Authorization": auth if auth is not None else self.auth}
        async with self.http.request(
            method, self.url + path, json=body, headers=headers
        ) as response:
            kept = {name: response.headers.get(name) for name in ("cache-control", "pragma")}
            self.headers[name] = (response.status, kept)
            return await response.json()


async def test_every_answer_but_the_jwks_is_no_store(
    server: IdentityServer, client_secret: str, http: aiohttp.ClientSession
) -> None:
    """Each route's answer and each kind of error carries no-store and no-cache; the JWKS
    keeps max-age=300 alone."""
    calls = Answers(http, server.url, client_secret)
    created = await calls.call("anonymous sign-up", "POST", "/v1/anonymous-users", {})
    anonymous_id = created["user"]["anonymous_id"]
    await calls.call(
        "anonymous log-in", "POST", "/v1/sessions/anonymous", {"anonymous_id": anonymous_id}
    )
    credentials = {"email": "cache@example.test", "password": "long enough"}
    await calls.call("sign-up", "POST", "/v1/users", credentials)
    signed_in = await calls.call("log-in", "POST", "/v1/sessions", credentials)
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": signed_in["session"]["refresh_token"],
    }
    refreshed = await calls.call("refresh", "POST", "/v1/token", refresh)
    access = refreshed["session"]["access_token"]
    await calls.call("introspection", "POST", "/v1/token/introspect", {"token": access})
    promotion = {"access_token": created["session"]["access_token"], "email": "p@example.test"}
    await calls.call(
        "promotion", "POST", "/v1/users/promote", {**promotion, "password": "long enough"}
    )
    await calls.call("deletion", "POST", "/v1/users/delete", {"access_token": access})
    await calls.call("revocation", "POST", "/v1/sessions/revoke", {"token": access})
    await calls.call(
        "revocation everywhere",
        "POST",
        "/v1/sessions/revoke-all",
        {"access_token": created["session"]["access_token"]},
    )
    await calls.call("reused refresh token", "POST", "/v1/token", refresh)
    await calls.call("wrong client", "POST", "/v1/anonymous-users", {}, auth="Basic eDp5")
    await calls.call("invalid body", "POST", "/v1/sessions/anonymous", {"anonymous_id": "a\n"})
    await calls.call("no such route", "GET", "/v1/nowhere")
    await calls.call("wrong method", "GET", "/v1/token")
    await calls.call("health", "GET", "/health")
    await calls.call("openapi", "GET", "/openapi.json")
    await calls.call("jwks", "GET", "/.well-known/jwks.json")

    expected = {
        "anonymous sign-up": 201,
        "anonymous log-in": 200,
        "sign-up": 201,
        "log-in": 200,
        "refresh": 200,
        "introspection": 200,
        "promotion": 200,
        "revocation": 200,
        "revocation everywhere": 200,
        "deletion": 200,
        "reused refresh token": 400,
        "wrong client": 401,
        "invalid body": 400,
        "no such route": 404,
        "wrong method": 405,
        "health": 200,
        "openapi": 200,
    }
    for name, status in expected.items():
        assert calls.headers[name] == (status, NO_STORE), name
    jwks = {"cache-control": f"max-age={JWKS_MAX_AGE}", "pragma": None}
    assert calls.headers["jwks"] == (200, jwks)
