"""Hostile input never gets a 5xx: every malformed, oversized, mis-encoded or out-of-range
request gets a 4xx JSON error with a stable code, and the server keeps serving."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from mimi_reactive.server import IdentityServer

from .conftest import CLIENT_ID
from .raw_http import build_request, send_raw
from .server_helpers import table_server

JSON = (b"Content-Type", b"application/json")
VALID_TOKEN = b'"' + b"A" * 43 + b'"'
BODY_ROUTES = {
    "/v1/anonymous-users": b"{}",
    "/v1/sessions/anonymous": b'{"anonymous_id": ' + VALID_TOKEN + b"}",
    "/v1/users": b'{"email": "a@example.test", "password": "long enough"}',
    "/v1/sessions": b'{"email": "a@example.test", "password": "long enough"}',
    "/v1/users/promote": b'{"access_token": '
    + VALID_TOKEN
    + b', "email": "a@example.test", "password": "long enough"}',
    "/v1/sessions/revoke": b'{"token": ' + VALID_TOKEN + b"}",
    "/v1/token": b'{"grant_type": "refresh_token", "refresh_token": ' + VALID_TOKEN + b"}",
    "/v1/token/introspect": b'{"token": ' + VALID_TOKEN + b"}",
    "/v1/users/delete": b'{"access_token": ' + VALID_TOKEN + b"}",
    "/v1/sessions/revoke-all": b'{"access_token": ' + VALID_TOKEN + b"}",
}
FIELDS = {
    "/v1/sessions/anonymous": "anonymous_id",
    "/v1/users": "email",
    "/v1/sessions": "password",
    "/v1/users/promote": "access_token",
    "/v1/sessions/revoke": "token",
    "/v1/token": "refresh_token",
    "/v1/token/introspect": "token",
    "/v1/users/delete": "access_token",
    "/v1/sessions/revoke-all": "access_token",
}
# Every field with a pattern, by route: each is refused unless it matches to its very end.
PATTERN_FIELDS = [
    ("/v1/sessions/anonymous", "anonymous_id"),
    ("/v1/users", "email"),
    ("/v1/sessions", "email"),
    ("/v1/users/promote", "access_token"),
    ("/v1/users/promote", "email"),
    ("/v1/sessions/revoke", "token"),
    ("/v1/token", "refresh_token"),
    ("/v1/token/introspect", "token"),
    ("/v1/users/delete", "access_token"),
    ("/v1/sessions/revoke-all", "access_token"),
]
DEEP = b"[" * 1000 + b"]" * 1000
ECHOED = b"echo-me-<b>secret-looking</b>"
"""A header value no answer may repeat."""


SECRET = secrets.token_urlsafe(32)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, postgres_unreachable: str | None
) -> Iterator[IdentityServer]:
    """One reference server per store for the whole table."""
    with table_server(request.param, SECRET, postgres_unreachable) as running:
        yield running


def with_field(path: str, raw_value: bytes) -> bytes:
    """The route's valid body with its main field's JSON value replaced by ``raw_value``."""
    field = FIELDS[path].encode()
    parts = {
        "/v1/users": b'{"email": %s, "password": "long enough"}',
        "/v1/sessions": b'{"email": "a@example.test", "password": %s}',
        "/v1/users/promote": b'{"access_token": %s, "email": "a@example.test",'
        b' "password": "long enough"}',
        "/v1/token": b'{"grant_type": "refresh_token", "refresh_token": %s}',
    }.get(path, b'{"' + field + b'": %s}')
    return parts % raw_value


# (id, method, path, extra headers (None: no Content-Type), body, status, code)
Case = tuple[str, str, str, list[tuple[bytes, bytes]] | None, bytes, int, str]


# Every Content-Encoding but identity is refused, whatever the body: a body compressed as
# it says would be refused all the same, so one that is not is no different.
ENCODINGS = [
    ("not-gzip", b"gzip", 415, "unsupported_media_type"),
    ("not-deflate", b"deflate", 415, "unsupported_media_type"),
    ("brotli", b"br", 415, "unsupported_media_type"),
    ("unknown-encoding", b"x-unheard-of", 415, "unsupported_media_type"),
    ("two-encodings", b"gzip, identity", 415, "unsupported_media_type"),
]


def body_cases() -> list[Case]:
    """Malformed and mis-encoded bodies, on every route that takes one."""
    cases: list[Case] = []
    for path in BODY_ROUTES:
        short = path.removeprefix("/v1/").replace("/", "-")
        cases += [
            (
                f"{short}-no-content-type",
                "POST",
                path,
                None,
                BODY_ROUTES[path],
                415,
                "unsupported_media_type",
            ),
            (
                f"{short}-text-plain",
                "POST",
                path,
                [(b"Content-Type", b"text/plain")],
                BODY_ROUTES[path],
                415,
                "unsupported_media_type",
            ),
            (
                f"{short}-charset-foo",
                "POST",
                path,
                [(b"Content-Type", b"application/json; charset=foo")],
                BODY_ROUTES[path],
                415,
                "unsupported_media_type",
            ),
            (f"{short}-empty", "POST", path, [JSON], b"", 400, "invalid_request"),
            (f"{short}-array", "POST", path, [JSON], b"[]", 400, "invalid_request"),
            (f"{short}-deep", "POST", path, [JSON], DEEP, 400, "invalid_request"),
            (
                f"{short}-huge-int",
                "POST",
                path,
                [JSON],
                b'{"n": ' + b"9" * 5000 + b"}",
                400,
                "invalid_request",
            ),
            (
                f"{short}-not-utf8",
                "POST",
                path,
                [JSON],
                b'{"x": "\xff\xfe"}',
                400,
                "invalid_request",
            ),
            (
                f"{short}-too-large",
                "POST",
                path,
                [JSON],
                b'{"pad": "' + b"x" * 70_000 + b'"}',
                413,
                "request_too_large",
            ),
        ]
        # A body that is not what its Content-Encoding says, or in an encoding not taken.
        cases += [
            (
                f"{short}-{name}",
                "POST",
                path,
                [JSON, (b"Content-Encoding", encoding)],
                BODY_ROUTES[path],
                status,
                code,
            )
            for name, encoding, status, code in ENCODINGS
        ]
    cases += [
        (
            "anonymous-users-null",
            "POST",
            "/v1/anonymous-users",
            [JSON],
            b"null",
            400,
            "invalid_request",
        ),
        (
            "anonymous-users-string",
            "POST",
            "/v1/anonymous-users",
            [JSON],
            b'"{}"',
            400,
            "invalid_request",
        ),
        (
            "anonymous-users-nan",
            "POST",
            "/v1/anonymous-users",
            [JSON],
            b"NaN",
            400,
            "invalid_request",
        ),
    ]
    return cases


def field_cases() -> list[Case]:
    """Out-of-range or mis-typed values in each route's main field."""
    cases: list[Case] = []
    for path in FIELDS:
        short = path.removeprefix("/v1/").replace("/", "-")
        for name, value in [
            ("lone-surrogate", b'"\\ud800"'),
            ("integer", b"5"),
            ("huge-int", b"9" * 5000),
            ("null", b"null"),
            ("object", b"{}"),
            ("too-long", b'"' + b"a" * 3000 + b'"'),
            ("nul-byte", b'"a\\u0000b"'),
        ]:
            # A password may hold any character: the NUL one is just a wrong password.
            status, code = (
                (400, "invalid_grant")
                if (path, name) == ("/v1/sessions", "nul-byte")
                else (400, "invalid_request")
            )
            body = with_field(path, value)
            cases.append((f"{short}-{name}", "POST", path, [JSON], body, status, code))
    cases += [
        (
            "users-short-password",
            "POST",
            "/v1/users",
            [JSON],
            b'{"email": "a@example.test", "password": "short"}',
            400,
            "weak_password",
        ),
        (
            "users-surrogate-password",
            "POST",
            "/v1/users",
            [JSON],
            b'{"email": "a@example.test", "password": "long \\udfff enough"}',
            400,
            "invalid_request",
        ),
        (
            "users-not-an-email",
            "POST",
            "/v1/users",
            [JSON],
            b'{"email": "nope", "password": "long enough"}',
            400,
            "invalid_request",
        ),
        (
            "users-missing-password",
            "POST",
            "/v1/users",
            [JSON],
            b'{"email": "a@example.test"}',
            400,
            "invalid_request",
        ),
        (
            "token-password-grant",
            "POST",
            "/v1/token",
            [JSON],
            b'{"grant_type": "password", "refresh_token": "abc"}',
            400,
            "unsupported_grant_type",
        ),
        (
            "token-grant-type-int",
            "POST",
            "/v1/token",
            [JSON],
            b'{"grant_type": 1, "refresh_token": "abc"}',
            400,
            "unsupported_grant_type",
        ),
        (
            "token-unknown-token",
            "POST",
            "/v1/token",
            [JSON],
            BODY_ROUTES["/v1/token"],
            400,
            "invalid_grant",
        ),
        (
            "delete-unknown-token",
            "POST",
            "/v1/users/delete",
            [JSON],
            BODY_ROUTES["/v1/users/delete"],
            401,
            "invalid_token",
        ),
        (
            "revoke-all-unknown-token",
            "POST",
            "/v1/sessions/revoke-all",
            [JSON],
            BODY_ROUTES["/v1/sessions/revoke-all"],
            401,
            "invalid_token",
        ),
        (
            "delete-forged-jwt",
            "POST",
            "/v1/users/delete",
            [JSON],
            b'{"access_token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}',
            401,
            "invalid_token",
        ),
        (
            "promote-unknown-token",
            "POST",
            "/v1/users/promote",
            [JSON],
            BODY_ROUTES["/v1/users/promote"],
            401,
            "invalid_token",
        ),
    ]
    return cases


def pattern_cases() -> list[Case]:
    """A valid value with a character its pattern refuses around or inside it, in every field
    that has a pattern: Python's ``$`` matched before a final newline, which let one through."""
    cases: list[Case] = []
    for path, field in PATTERN_FIELDS:
        short = path.removeprefix("/v1/").replace("/", "-")
        valid: dict[str, Any] = json.loads(BODY_ROUTES[path])
        for name, change in [
            ("trailing-newline", "{}\n"),
            ("trailing-crlf", "{}\r\n"),
            ("leading-newline", "\n{}"),
            ("leading-space", " {}"),
            ("trailing-space", "{} "),
            ("trailing-nul", "{}\x00"),
            ("non-ascii", "{}\u00e9"),
        ]:
            value = change.format(valid[field])
            body = json.dumps({**valid, field: value}, ensure_ascii=False).encode()
            name = f"{short}-{field}-{name}"
            cases.append((name, "POST", path, [JSON], body, 400, "invalid_request"))
    return cases


def client_cases() -> list[Case]:
    """Malformed client credentials, on public and authenticated routes, and wrong methods."""
    body = BODY_ROUTES["/v1/anonymous-users"]
    bad_auth: list[tuple[str, bytes]] = [
        ("basic-non-ascii", b"Basic \xc3\xa9"),
        ("basic-latin1-byte", b"Basic \xe9\xe9\xe9\xe9"),
        ("basic-not-utf8-inside", b"Basic " + base64.b64encode(b"\xff\xfe:\xff")),
        ("basic-no-colon", b"Basic " + base64.b64encode(b"just-an-id")),
        ("basic-not-base64", b"Basic !!!"),
        ("basic-empty", b"Basic "),
        ("bearer", b"Bearer abc"),
        ("scheme-only", b"Basic"),
        ("huge-basic", b"Basic " + base64.b64encode(b"a:" + b"b" * 6000)),
    ]
    cases: list[Case] = [
        (
            f"client-{name}",
            "POST",
            "/v1/anonymous-users",
            [(b"Authorization", value), JSON],
            body,
            401,
            "invalid_client",
        )
        for name, value in bad_auth
    ]
    # Two Authorization headers, whichever comes first: refused, never the first taken.
    basic = aiohttp.encode_basic_auth(CLIENT_ID, SECRET).encode()
    wrong = aiohttp.encode_basic_auth(CLIENT_ID, "not-the-secret").encode()
    cases += [
        (
            f"client-two-authorization-headers-{name}",
            "POST",
            "/v1/anonymous-users",
            [(b"Authorization", first), (b"Authorization", second), JSON],
            body,
            400,
            "invalid_request",
        )
        for name, first, second in (
            ("right-then-wrong", basic, wrong),
            ("wrong-then-right", wrong, basic),
            ("right-twice", basic, basic),
        )
    ]
    cases += [
        ("health-post", "POST", "/health", [JSON], b"{}", 405, "method_not_allowed"),
        ("jwks-post", "POST", "/.well-known/jwks.json", [JSON], b"{}", 405, "method_not_allowed"),
        ("users-delete-get", "GET", "/v1/users/delete", [], b"", 405, "method_not_allowed"),
        ("openapi-delete", "DELETE", "/openapi.json", [], b"", 405, "method_not_allowed"),
        ("token-get", "GET", "/v1/token", [], b"", 405, "method_not_allowed"),
        ("users-put", "PUT", "/v1/users", [JSON], b"{}", 405, "method_not_allowed"),
        ("unknown-path", "POST", "/v1/nowhere", [JSON], b"{}", 404, "not_found"),
        ("path-with-secret-like-bytes", "GET", "/v1/%ff%fe", [], b"", 404, "not_found"),
    ]
    # Any expectation but 100-continue is refused before routing would be: on a route, on an
    # unknown path, with a wrong method; never in aiohttp's plain text that echoes the header.
    expect_bogus = [(b"Expect", ECHOED), JSON]
    cases += [
        (f"expect-{method}-{path}", method, path, expect_bogus, payload, 417, "expectation_failed")
        for method, path, payload in (
            ("POST", "/v1/anonymous-users", body),
            ("GET", "/health", b""),
            ("GET", "/ready", b""),
            ("POST", "/nope", b"{}"),
            ("GET", "/v1/%ff%fe", b""),
            ("PUT", "/v1/users", b"{}"),
            ("GET", "/v1/token", b""),
            ("DELETE", "/openapi.json", b""),
        )
    ]
    return cases


CASES = body_cases() + field_cases() + pattern_cases() + client_cases()


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "code"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
async def test_hostile_input_gets_a_json_4xx_and_the_server_keeps_serving(
    server: IdentityServer,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]] | None,
    body: bytes,
    status: int,
    code: str,
) -> None:
    """Each hostile request gets its 4xx and stable JSON code, not to be cached and repeating
    no header; /health is 200 after it."""
    sent_headers = list(headers or [])
    if not any(name == b"Authorization" for name, _ in sent_headers):
        basic = aiohttp.encode_basic_auth(CLIENT_ID, SECRET).encode()
        sent_headers.insert(0, (b"Authorization", basic))
    answer = await send_raw(server.url, build_request(method, path, sent_headers, body))
    assert answer is not None
    assert answer.status < 500
    assert answer.status == status
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["cache-control"] == "no-store"
    assert ECHOED not in answer.body
    error: Any = answer.json()["error"]
    assert error["code"] == code
    if status == 405:
        assert answer.headers["allow"]
    async with aiohttp.ClientSession() as http, http.get(server.url + "/health") as health:
        assert health.status == 200


def test_the_table_covers_every_route_with_fifty_cases() -> None:
    """The table has at least 50 cases and reaches every route the server has."""
    assert len(CASES) >= 50
    assert {case[2] for case in CASES} >= {
        *BODY_ROUTES,
        "/health",
        "/openapi.json",
        "/.well-known/jwks.json",
    }


async def test_expect_100_continue_is_still_served(server: IdentityServer) -> None:
    """A client that sends Expect: 100-continue gets the interim 100 and then its answer."""
    basic = aiohttp.encode_basic_auth(CLIENT_ID, SECRET).encode()
    headers = [(b"Authorization", basic), (b"Expect", b"100-Continue"), JSON]
    body = BODY_ROUTES["/v1/anonymous-users"]
    answer = await send_raw(server.url, build_request("POST", "/v1/anonymous-users", headers, body))
    assert answer is not None
    assert answer.status == 100  # the interim answer, then the final one
    assert b"HTTP/1.1 201" in answer.body
