"""Hostile HTTP framing (chunked bodies, codings, declared lengths, stalled bodies) gets a
JSON 4xx in time, never a hang, and the server keeps serving; nothing logged holds a secret.

What aiohttp's own parser refuses (in plain text, see docs/server.md#input) is not here:
these requests all reach the app."""

from __future__ import annotations

import asyncio
import base64
import gzip
import logging
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit

import aiohttp
import pytest

from mimi_reactive._server import _edge
from mimi_reactive.server import IdentityServer

from .conftest import CLIENT_ID
from .raw_http import RawAnswer, first_answer
from .server_helpers import NO_LIMITS, table_server
from .test_server_logs import capturing_logger, logged

SECRET = secrets.token_urlsafe(32)
BASIC = b"Basic " + base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode())
JSON = (b"Content-Type", b"application/json")
CHUNKED = (b"Transfer-Encoding", b"chunked")
EXPECT = (b"Expect", b"100-continue")
PAST_THE_LIMIT = (b"Content-Length", b"100000000")  # 100 MB declared, none of it sent
SIGN_UP = b"/v1/anonymous-users"


def request(
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
    path: bytes = SIGN_UP,
    *,
    close: bool = True,
) -> bytes:
    """A POST of the client, as is: no Content-Length but one ``headers`` has; with
    ``Connection: close`` unless not ``close``."""
    lines = [b"POST " + path + b" HTTP/1.1", b"Host: localhost"]
    lines += [b"Connection: close"] if close else []
    lines += [b"Authorization: " + BASIC, *(name + b": " + value for name, value in headers)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def length(body: bytes) -> tuple[bytes, bytes]:
    return (b"Content-Length", str(len(body)).encode())


def chunks(*parts: bytes) -> bytes:
    """``parts`` as chunks of a chunked body, and its last chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


BOMB = gzip.compress(b"{" + b" " * 50_000_000 + b"}")  # 50 KB that inflate to 50 MB
# (id, request, status, code (None for a 2xx), whether the first answer may be a 100)
FRAMING: list[tuple[str, bytes, int, str | None, bool]] = [
    # A body declared past the 64 KiB limit is refused at once, before any of it is read:
    # aiohttp waited for 64 KiB of it, and with Expect: 100-continue first asked for it all.
    ("declared-past-the-limit", request([JSON, PAST_THE_LIMIT]), 413, "request_too_large", False),
    (
        "declared-one-byte-past-the-limit",
        request([JSON, (b"Content-Length", b"65537")]),
        413,
        "request_too_large",
        False,
    ),
    (
        "expect-100-continue-past-the-limit",
        request([JSON, EXPECT, PAST_THE_LIMIT]),
        413,
        "request_too_large",
        True,  # the first answer: no 100 Continue for a body that would be refused
    ),
    (
        "expect-100-continue-past-the-limit-without-client",
        request([JSON, EXPECT, PAST_THE_LIMIT]).replace(BASIC, b"Basic eDp5"),
        413,
        "request_too_large",
        True,
    ),
    (
        "expect-100-continue-past-the-limit-on-a-get",
        request([EXPECT, PAST_THE_LIMIT]).replace(b"POST /v1/anonymous-users", b"GET /health"),
        413,
        "request_too_large",
        True,
    ),
    # Every line of Content-Encoding, and every transfer coding but chunked, is refused: only
    # the first line was read, and a coding aiohttp does not apply passed the body as it came.
    (
        "content-encoding-identity-then-gzip",
        request(
            [
                JSON,
                (b"Content-Encoding", b"identity"),
                (b"Content-Encoding", b"gzip"),
                length(b"{}"),
            ],
            b"{}",
        ),
        415,
        "unsupported_media_type",
        False,
    ),
    (
        "transfer-encoding-gzip-chunked",
        request([JSON, (b"Transfer-Encoding", b"gzip, chunked")], chunks(b"{}")),
        415,
        "unsupported_media_type",
        False,
    ),
    (
        "transfer-encoding-unknown-chunked",
        request([JSON, (b"Transfer-Encoding", b"x-unheard-of, chunked")], chunks(b"{}")),
        415,
        "unsupported_media_type",
        False,
    ),
    (
        "transfer-encoding-gzip-bomb",
        request([JSON, (b"Transfer-Encoding", b"gzip, chunked")], chunks(BOMB)),
        415,
        "unsupported_media_type",
        False,
    ),
    # A header's value is a list whose empty elements are ignored, as aiohttp reads it.
    (
        "transfer-encoding-empty-element-then-chunked",
        request([JSON, (b"Transfer-Encoding", b", chunked")], chunks(b"{}")),
        201,
        None,
        False,
    ),
    (
        "content-encoding-identity-twice",
        request([JSON, (b"Content-Encoding", b"identity, identity"), length(b"{}")], b"{}"),
        201,
        None,
        False,
    ),
    (
        "content-encoding-identity-then-gzip-in-one-line",
        request([JSON, (b"Content-Encoding", b"identity, gzip"), length(b"{}")], b"{}"),
        415,
        "unsupported_media_type",
        False,
    ),
    # What was served already, kept: chunked bodies are read to the same limit, extensions
    # ignored; a compressed body is refused before it is read, so never inflated.
    ("chunked", request([JSON, CHUNKED], chunks(b"{", b"}")), 201, None, False),
    (
        "chunked-with-extensions",
        request([JSON, CHUNKED], b"2;name=value;" + b"x" * 4000 + b"\r\n{}\r\n0\r\n\r\n"),
        201,
        None,
        False,
    ),
    (
        "chunked-past-the-limit",
        request([JSON, CHUNKED], chunks(*[b" " * 4096] * 17)),
        413,
        "request_too_large",
        False,
    ),
    (
        "chunked-many-tiny-chunks",
        request([JSON, CHUNKED], chunks(*[b" "] * 70_000)),
        413,
        "request_too_large",
        False,
    ),
    (
        "content-encoding-gzip-bomb",
        request([JSON, (b"Content-Encoding", b"gzip"), length(BOMB)], BOMB),
        415,
        "unsupported_media_type",
        False,
    ),
    (
        "expect-100-continue-within-the-limit",
        request([JSON, EXPECT, length(b"{}")], b"{}"),
        201,
        None,
        False,
    ),
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, postgres_unreachable: str | None
) -> Iterator[IdentityServer]:
    """One reference server per store for the whole table."""
    with table_server(request.param, SECRET, postgres_unreachable) as running:
        yield running


def assert_json_error(answer: RawAnswer | None, status: int, code: str | None) -> None:
    """``answer`` has ``status``, is not to be cached, and (for an error) is JSON with
    ``code``."""
    assert answer is not None
    assert answer.status == status, answer
    assert answer.headers["cache-control"] == "no-store"
    if code is not None:
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.json()["error"]["code"] == code


async def assert_serving(url: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(url + "/health") as health:
        assert health.status == 200


@pytest.mark.parametrize(
    ("raw", "status", "code", "interim"),
    [pytest.param(*case[1:], id=case[0]) for case in FRAMING],
)
async def test_hostile_framing_gets_its_answer_at_once(
    server: IdentityServer,
    caplog: pytest.LogCaptureFixture,
    raw: bytes,
    status: int,
    code: str | None,
    interim: bool,
) -> None:
    """Each request gets its status and JSON code as its first answer, without waiting for
    a body it will not read; /health is 200 after it; no log line holds the secret."""
    caplog.set_level(logging.DEBUG)
    answer = await first_answer(server.url, raw, interim=interim)
    assert_json_error(answer, status, code)
    await assert_serving(server.url)
    assert SECRET not in caplog.text
    assert BASIC.decode() not in caplog.text


# Requests whose body stops coming, on a connection kept alive: (id, what is sent of it)
STALLS = {
    name: request(headers, body, path, close=False)
    for name, headers, body, path in [
        ("content-length-half-sent", [JSON, (b"Content-Length", b"100")], b'{"pad": "', SIGN_UP),
        ("content-length-none-sent", [JSON, length(b"{}")], b"", SIGN_UP),
        ("chunked-without-its-last-chunk", [JSON, CHUNKED], b"2\r\n{}\r\n", SIGN_UP),
        ("chunked-cut-in-a-chunk-size", [JSON, CHUNKED], b"2\r\n{}\r\n1", SIGN_UP),
        ("expect-100-continue-then-nothing", [JSON, EXPECT, length(b"{}")], b"", SIGN_UP),
        ("refresh-half-sent", [JSON, (b"Content-Length", b"90")], b'{"grant', b"/v1/token"),
    ]
}


@pytest.mark.parametrize("raw", STALLS.values(), ids=STALLS.keys())
async def test_a_stalled_body_gets_408_and_its_connection_closed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, raw: bytes
) -> None:
    """A body that stops coming is answered 408 request_timeout with Connection: close once
    BODY_TIMEOUT has passed (aiohttp alone waited for ever), logged http.body_timed_out at
    info by route, no error line and no secret; the server goes on serving."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(_edge, "BODY_TIMEOUT", 0.2)
    captured, logger = capturing_logger()
    async with IdentityServer(
        client_id=CLIENT_ID, client_secret=SECRET, settings=NO_LIMITS, logger=logger
    ) as server:
        answer = await first_answer(server.url, raw)
        assert_json_error(answer, 408, "request_timeout")
        assert answer is not None
        assert answer.headers["connection"] == "close"
        timed_out = await logged(captured, "http.body_timed_out")
        await assert_serving(server.url)
    path = raw.split(b" ")[1].decode()
    assert (timed_out["log_level"], timed_out["route"]) == ("info", path)
    assert not [entry for entry in captured.entries if entry["log_level"] in ("error", "critical")]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert SECRET not in repr(captured.entries) + caplog.text


async def test_stalled_bodies_do_not_hold_the_server_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stopping a server whose clients stalled mid-body ends once their bodies are past due,
    not after the 60 s aiohttp gives handlers to finish; each client gets its 408."""
    monkeypatch.setattr(_edge, "BODY_TIMEOUT", 1.0)
    server = IdentityServer(client_id=CLIENT_ID, client_secret=SECRET, settings=NO_LIMITS)
    await server.start()
    url = urlsplit(server.url)
    clients = []
    try:
        for _ in range(3):
            reader, writer = await asyncio.open_connection(url.hostname, url.port)
            clients.append((reader, writer))
            writer.write(STALLS["expect-100-continue-then-nothing"])
            # The 100 Continue says the request is in its handler, waiting for the body.
            async with asyncio.timeout(10):
                assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    finally:
        async with asyncio.timeout(30):  # aiohttp's shutdown timeout is 60 s
            await server.stop()
    for reader, writer in clients:
        async with asyncio.timeout(10):
            assert (await reader.read()).startswith(b"HTTP/1.1 408 ")
        writer.close()
        await writer.wait_closed()
