"""Routing before authentication: an unknown path is 404 and a wrong method 405 whoever asks,
and the public GETs answer HEAD without client credentials."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import aiohttp
import attrs
import pytest

from .server_helpers import BackgroundServer

CLIENT_ID = "routing-app"
SECRET = secrets.token_urlsafe(32)
AUTH = {"Authorization": aiohttp.encode_basic_auth(CLIENT_ID, SECRET)}
NONE: dict[str, str] = {}


@attrs.frozen
class Case:
    """A request and what it is answered: status, error code (None for a 2xx), Allow."""

    method: str
    path: str
    headers: dict[str, str]
    status: int
    code: str | None = None
    allow: str | None = None


CASES = {
    "unknown path, no client": Case("GET", "/nope", NONE, 404, "not_found"),
    "unknown path, the client": Case("GET", "/nope", AUTH, 404, "not_found"),
    "unknown API path, no client": Case("POST", "/v1/nope", NONE, 404, "not_found"),
    "unknown path, wrong client": Case(
        "POST",
        "/v1/nope",
        {"Authorization": aiohttp.encode_basic_auth(CLIENT_ID, "wrong")},
        404,
        "not_found",
    ),
    "HEAD of an unknown path": Case("HEAD", "/nope", NONE, 404),
    "wrong method, no client": Case("GET", "/v1/sessions", NONE, 405, "method_not_allowed", "POST"),
    "wrong method, the client": Case(
        "GET", "/v1/sessions", AUTH, 405, "method_not_allowed", "POST"
    ),
    "wrong method on a public path": Case(
        "DELETE", "/health", NONE, 405, "method_not_allowed", "GET,HEAD"
    ),
    "HEAD of an API path": Case("HEAD", "/v1/token", NONE, 405, None, "POST"),
    "HEAD /health": Case("HEAD", "/health", NONE, 200),
    "HEAD /openapi.json": Case("HEAD", "/openapi.json", NONE, 200),
    "HEAD of the JWKS": Case("HEAD", "/.well-known/jwks.json", NONE, 200),
    "GET of the JWKS": Case("GET", "/.well-known/jwks.json", NONE, 200),
    "an API call, no client": Case("POST", "/v1/sessions", NONE, 401, "invalid_client"),
}


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    background = BackgroundServer(client_id=CLIENT_ID, client_secret=SECRET)
    try:
        yield background.server.url
    finally:
        background.stop()


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_routing_answers_before_authentication(served: str, case: Case) -> None:
    """Each request gets its status, code and Allow; only a known route's call needs the
    client, and only its refusal carries a Basic challenge."""
    async with (
        aiohttp.ClientSession() as http,
        http.request(case.method, served + case.path, headers=case.headers) as response,
    ):
        body = await response.read()
        assert response.status == case.status
        assert response.headers.get("Allow") == case.allow
        challenged = response.headers.get("WWW-Authenticate")
        assert challenged == ('Basic realm="mimi"' if case.status == 401 else None)
        if case.method == "HEAD":
            assert body == b""
        elif case.code is not None:
            assert (await response.json())["error"]["code"] == case.code
