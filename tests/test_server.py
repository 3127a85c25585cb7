"""The reference server's HTTP API, spoken to directly over loopback."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mimi_reactive._server._openapi import openapi_document
from mimi_reactive.server import IdentityServer

from .conftest import CLIENT_ID, stores
from .server_helpers import stored_bytes


@pytest.fixture
async def server(store_server: IdentityServer) -> IdentityServer:
    """The reference server, on SQLite and on PostgreSQL in turn."""
    return store_server


@pytest.fixture
async def http(client_secret: str) -> AsyncIterator[aiohttp.ClientSession]:
    auth = aiohttp.encode_basic_auth(CLIENT_ID, client_secret)
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as session:
        yield session


async def post(
    http: aiohttp.ClientSession, url: str, body: Any = None, **kwargs: Any
) -> tuple[int, Any]:
    async with http.post(url, json=body if body is not None else {}, **kwargs) as response:
        return response.status, await response.json()


async def test_health_needs_no_client(server: IdentityServer) -> None:
    """GET /health answers ok without client credentials."""
    async with aiohttp.ClientSession() as plain, plain.get(server.url + "/health") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


async def test_openapi_document_describes_every_route(server: IdentityServer) -> None:
    """The served OpenAPI document lists exactly the routes the app registers."""
    async with aiohttp.ClientSession() as plain, plain.get(server.url + "/openapi.json") as r:
        document = await r.json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/health",
        "/ready",
        "/openapi.json",
        "/v1/anonymous-users",
        "/v1/sessions/anonymous",
        "/v1/users",
        "/v1/sessions",
        "/v1/users/promote",
        "/v1/sessions/revoke",
        "/v1/token",
        "/v1/token/introspect",
        "/v1/users/delete",
        "/v1/sessions/revoke-all",
        "/.well-known/jwks.json",
    }


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": aiohttp.encode_basic_auth(CLIENT_ID, "wrong")},
        {"Authorization": aiohttp.encode_basic_auth("someone-else", "wrong")},
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Bearer abc"},
    ],
)
async def test_every_call_authenticates_the_client(
    server: IdentityServer, headers: dict[str, str]
) -> None:
    """Without the right client id and secret every API call is 401 invalid_client."""
    async with aiohttp.ClientSession(headers=headers) as plain:
        for path in ("/v1/anonymous-users", "/v1/sessions/anonymous", "/v1/sessions/revoke"):
            async with plain.post(server.url + path, json={}) as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"].startswith("Basic")
                assert (await response.json())["error"]["code"] == "invalid_client"


async def test_each_refused_credential_has_its_own_challenge(
    server: IdentityServer, http: aiohttp.ClientSession
) -> None:
    """A wrong client secret is 401 with a Basic challenge, an invalid access token 401 with a
    Bearer one (RFC 6750), and a user's wrong anonymous id or password 400 invalid_grant with
    no challenge: no HTTP client takes a user's mistake for wrong client credentials."""
    wrong_client = {"Authorization": aiohttp.encode_basic_auth(CLIENT_ID, "wrong")}
    calls: list[tuple[str, dict[str, str], dict[str, str], int, str, str | None]] = [
        ("/v1/anonymous-users", {}, wrong_client, 401, "invalid_client", 'Basic realm="mimi"'),
        (
            "/v1/users/delete",
            {"access_token": "not.a.token"},
            {},
            401,
            "invalid_token",
            'Bearer realm="mimi", error="invalid_token"',
        ),
        ("/v1/sessions/anonymous", {"anonymous_id": "x" * 43}, {}, 400, "invalid_grant", None),
        (
            "/v1/sessions",
            {"email": "nobody@example.test", "password": "long enough"},
            {},
            400,
            "invalid_grant",
            None,
        ),
    ]
    for path, body, headers, status, code, challenge in calls:
        async with http.post(server.url + path, json=body, headers=headers) as response:
            answer = await response.json()
            assert (response.status, answer["error"]["code"]) == (status, code), path
            assert response.headers.get("WWW-Authenticate") == challenge, path


async def test_anonymous_user_round_trip(
    server: IdentityServer, http: aiohttp.ClientSession
) -> None:
    """Create an anonymous user, log in by its id, and the unknown id is refused."""
    status, created = await post(http, server.url + "/v1/anonymous-users")
    assert status == 201
    anonymous_id = created["user"]["anonymous_id"]
    assert len(anonymous_id) >= 22  # at least 128 bits, URL-safe base64
    assert created["session"]["token_type"] == "Bearer"
    status, logged_in = await post(
        http, server.url + "/v1/sessions/anonymous", {"anonymous_id": anonymous_id}
    )
    assert status == 200
    assert logged_in["user"]["id"] == created["user"]["id"]
    assert "anonymous_id" not in logged_in["user"]  # the server cannot know it
    status, error = await post(
        http, server.url + "/v1/sessions/anonymous", {"anonymous_id": secrets.token_urlsafe(32)}
    )
    assert (status, error["error"]["code"]) == (400, "invalid_grant")


async def test_anonymous_ids_are_unique(
    server: IdentityServer, http: aiohttp.ClientSession
) -> None:
    """Each anonymous user gets its own id."""
    ids = {
        (await post(http, server.url + "/v1/anonymous-users"))[1]["user"]["anonymous_id"]
        for _ in range(20)
    }
    assert len(ids) == 20


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/sessions/anonymous", {}, 400, "invalid_request"),
        ("/v1/sessions/anonymous", {"anonymous_id": 5}, 400, "invalid_request"),
        ("/v1/sessions/anonymous", ["not", "an", "object"], 400, "invalid_request"),
        ("/v1/users", {"email": "nope", "password": "long enough"}, 400, "invalid_request"),
        ("/v1/users", {"email": "a@b.test", "password": "short"}, 400, "weak_password"),
        ("/v1/nowhere", {}, 404, "not_found"),
    ],
)
async def test_bad_requests_get_json_errors(
    server: IdentityServer,
    http: aiohttp.ClientSession,
    path: str,
    body: Any,
    status: int,
    code: str,
) -> None:
    """Bad input gets the right status and a stable error code as JSON."""
    assert (await post(http, server.url + path, body))[0] == status
    assert (await post(http, server.url + path, body))[1]["error"]["code"] == code


async def test_malformed_json_is_invalid_request(
    server: IdentityServer, http: aiohttp.ClientSession
) -> None:
    """A JSON-typed body that is not JSON is a 400, not a crash."""
    async with http.post(
        server.url + "/v1/sessions/anonymous",
        data=b"{nope",
        headers={"Content-Type": "application/json"},
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "invalid_request"


async def test_revoked_session_token_stops_working(
    server: IdentityServer, http: aiohttp.ClientSession
) -> None:
    """After revocation the session's access token is rejected."""
    _, created = await post(http, server.url + "/v1/anonymous-users")
    tokens = created["session"]
    status, _ = await post(
        http, server.url + "/v1/sessions/revoke", {"token": tokens["refresh_token"]}
    )
    assert status == 200
    status, error = await post(
        http,
        server.url + "/v1/users/promote",
        {"access_token": tokens["access_token"], "email": "x@y.test", "password": "long enough"},
    )
    assert (status, error["error"]["code"]) == (401, "invalid_token")


async def test_email_is_unique_and_wrong_password_fails(
    server: IdentityServer, http: aiohttp.ClientSession
) -> None:
    """A taken email is 409; a wrong password or unknown email is the same 400 invalid_grant."""
    body = {"email": "Ann@Example.test", "password": "long enough"}
    assert (await post(http, server.url + "/v1/users", body))[0] == 201
    status, error = await post(
        http, server.url + "/v1/users", {**body, "email": "ann@example.test"}
    )
    assert (status, error["error"]["code"]) == (409, "email_taken")
    wrong = await post(http, server.url + "/v1/sessions", {**body, "password": "not the one"})
    unknown = await post(http, server.url + "/v1/sessions", {**body, "email": "zed@example.test"})
    assert (
        wrong
        == unknown
        == (
            400,
            {"error": {"code": "invalid_grant", "message": "the email or password is wrong"}},
        )
    )


def test_the_document_writes_patterns_in_json_schema_dialect() -> None:
    """Every pattern in /openapi.json ends at ``$`` (the true end in ECMA-262), never at
    Python's ``\\Z``."""
    schemas = openapi_document()["components"]["schemas"]
    patterns = [
        field["pattern"]
        for schema in schemas.values()
        for field in schema.get("properties", {}).values()
        if "pattern" in field
    ]
    assert len(patterns) >= 10
    assert all(pattern.endswith("$") and "\\Z" not in pattern for pattern in patterns)


def test_the_server_doc_states_the_input_rules_and_error_codes_of_the_code() -> None:
    """docs/server.md gives the id and token length and characters the models check, and
    every error code an answer can carry."""
    doc = " ".join((Path(__file__).parents[1] / "docs" / "server.md").read_text().split())
    schemas = openapi_document()["components"]["schemas"]
    token = schemas["AnonymousLogIn"]["properties"]["anonymous_id"]
    characters = token["pattern"].removeprefix("^").removesuffix("+$")
    assert f"{token['minLength']} to {token['maxLength']} characters of `{characters}`" in doc
    codes = schemas["ErrorDetail"]["properties"]["code"]["enum"]
    assert [code for code in codes if f"`{code}`" not in doc] == []


def test_no_table_of_the_server_doc_is_cut_by_a_blank_line() -> None:
    """In docs/server.md no blank line sits between two table rows (the rows after it would
    render as a paragraph)."""
    lines = (Path(__file__).parents[1] / "docs" / "server.md").read_text().splitlines()
    cut = [
        number + 1
        for number in range(1, len(lines) - 1)
        if not lines[number].strip()
        and lines[number - 1].startswith("|")
        and lines[number + 1].startswith("|")
    ]
    assert cut == []


async def test_one_email_is_one_account_whatever_its_case_or_trailing_newline(
    server: IdentityServer, http: aiohttp.ClientSession
) -> None:
    """An email with a trailing newline is refused (it was stored as another account); one
    differing only in case is the same account, to sign up, log in and promote."""
    users, sessions = server.url + "/v1/users", server.url + "/v1/sessions"
    body = {"email": "nl@example.test", "password": "long enough"}
    for hostile in ("nl@example.test\n", "nl@example.test\r\n", "NL@example.test\n"):
        status, error = await post(http, users, {**body, "email": hostile})
        assert (status, error["error"]["code"]) == (400, "invalid_request")
    assert (await post(http, users, body))[0] == 201
    status, error = await post(http, users, {**body, "email": "Nl@Example.TEST"})
    assert (status, error["error"]["code"]) == (409, "email_taken")
    status, signed_in = await post(http, sessions, {**body, "email": "NL@EXAMPLE.test"})
    assert (status, signed_in["user"]["email"]) == (200, "nl@example.test")
    status, error = await post(http, sessions, {**body, "email": "nl@example.test\n"})
    assert (status, error["error"]["code"]) == (400, "invalid_request")
    _, anonymous = await post(http, server.url + "/v1/anonymous-users")
    promotion = {**body, "access_token": anonymous["session"]["access_token"]}
    status, error = await post(
        http, server.url + "/v1/users/promote", {**promotion, "email": "nL@example.Test"}
    )
    assert (status, error["error"]["code"]) == (409, "email_taken")


@stores("sqlite-file", "postgresql")
async def test_database_holds_no_secret_in_the_clear(database_url: str, client_secret: str) -> None:
    """No anonymous id, token, password or client secret is stored in the clear, in either store."""
    async with IdentityServer(
        client_id=CLIENT_ID, client_secret=client_secret, database=database_url
    ) as server:
        auth = aiohttp.encode_basic_auth(CLIENT_ID, client_secret)
        async with aiohttp.ClientSession(headers={"Authorization": auth}) as http:
            _, created = await post(http, server.url + "/v1/anonymous-users")
            _, again = await post(
                http,
                server.url + "/v1/sessions/anonymous",
                {"anonymous_id": created["user"]["anonymous_id"]},
            )
            await post(
                http,
                server.url + "/v1/users/promote",
                {
                    "access_token": again["session"]["access_token"],
                    "email": "p@example.test",
                    "password": "a password to hide",
                },
            )
    secrets_seen = [
        created["user"]["anonymous_id"],
        created["session"]["access_token"],
        created["session"]["refresh_token"],
        again["session"]["access_token"],
        again["session"]["refresh_token"],
        "a password to hide",
        client_secret,
    ]
    stored = await stored_bytes(database_url)
    assert created["user"]["id"].encode() in stored  # the look reaches the rows
    for secret in secrets_seen:
        assert secret.encode() not in stored
