"""No secret reaches anything the server process writes, whatever a client sends: aiohttp's
and asyncio's own records included, on either store; security events say who, by ids."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets
from typing import cast
from urllib.parse import urlsplit

import jwt
import pytest
import structlog
from structlog.testing import LogCapture

from mimi_reactive.server import IdentityServer, ServerSettings, ServerStartError

from .conftest import stores
from .raw_http import build_request, send_raw
from .server_helpers import calling, serving

CLIENT_ID = "log-app"


@stores("sqlite-file", "postgresql")
@pytest.mark.parametrize("log_format", ["console", "json"])
async def test_malformed_requests_leave_no_secret_in_the_server_output(
    database_url: str, log_format: str
) -> None:
    """Bad header bytes, a bad request line, an oversized header, a truncated body and bad
    JSON, each carrying the client secret or a token, at debug level, in either log format:
    none is ever written."""
    client_secret, token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    basic = base64.b64encode(f"{CLIENT_ID}:{client_secret}".encode())
    auth = (b"Authorization", b"Basic " + basic)
    json_type = (b"Content-Type", b"application/json")
    requests = [
        # a control character in a header carrying the credentials
        build_request("POST", "/v1/token", [(b"Authorization", b"Basic " + basic + b"\x01")]),
        build_request("POST", "/v1/token", [auth, (b"X-Note", b"\x7f" + token.encode())]),
        # a bad request line with the token in it
        b"POST /v1/token?" + token.encode() + b" HTTP/1.1\x00\r\n\r\n",
        b"\x16\x03\x01" + token.encode() + b"\r\n\r\n",
        # an oversized header
        build_request("POST", "/v1/token", [auth, (b"X-Big", token.encode() * 400)]),
        # a truncated body
        build_request("POST", "/v1/token", [auth, json_type])[:-2]
        + b'Content-Length: 500\r\n\r\n{"refresh_token": "'
        + token.encode(),
        # a body that is not JSON, and a secret in the path
        build_request("POST", "/v1/token", [auth, json_type], b"{" + token.encode()),
        build_request("GET", "/v1/" + token, [auth]),
        build_request(
            "POST",
            "/v1/token",
            [auth, json_type],
            b'{"grant_type": "refresh_token", "refresh_token": "' + token.encode() + b'"}',
        ),
    ]
    async with serving(
        *("--log-level", "debug", "serve", "--port", "0", "--database", database_url),
        *("--log-format", log_format),
        *("--client-id", CLIENT_ID),
        environment={**os.environ, "MIMI_CLIENT_SECRET": client_secret, "PYTHONASYNCIODEBUG": "1"},
    ) as served:
        for raw in requests:
            # The server may drop a connection it cannot parse.
            with contextlib.suppress(ConnectionError, TimeoutError):
                await send_raw(served.url, raw)
    assert served.returncode == 0
    written = served.stdout + served.stderr
    assert b"Error handling request" in written  # aiohttp did log the malformed requests
    assert b"http.request" in written  # and our own request log ran
    for secret in (client_secret.encode(), basic, token.encode(), token.encode()[:16]):
        assert secret not in written


def capturing_logger() -> tuple[LogCapture, structlog.typing.FilteringBoundLogger]:
    """A server logger at debug whose events, with their level, are kept in ``entries``."""
    captured = LogCapture()
    logger = structlog.wrap_logger(
        None,
        processors=[captured],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    return captured, cast(structlog.typing.FilteringBoundLogger, logger)


async def logged(captured: LogCapture, event: str) -> structlog.typing.EventDict:
    """The first ``event`` the server logged, waiting (10 s at most) for it."""
    async with asyncio.timeout(10):
        while True:
            found = [entry for entry in captured.entries if entry["event"] == event]
            if found:
                return found[0]
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("path", ["/v1/sessions/anonymous", "/v1/users", "/v1/token"])
@pytest.mark.parametrize("closing", ["fin", "reset"])
async def test_a_client_gone_mid_body_is_not_a_server_error(
    path: str, closing: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that sends 10 of its 1000 body bytes and closes (or resets) the connection is
    logged http.client_gone at info: no error-level line, no 500."""
    caplog.set_level(logging.DEBUG)
    client_secret = secrets.token_urlsafe(32)
    captured, logger = capturing_logger()
    async with IdentityServer(
        client_id=CLIENT_ID, client_secret=client_secret, logger=logger
    ) as server:
        url = urlsplit(server.url)
        _, writer = await asyncio.open_connection(url.hostname, url.port)
        basic = base64.b64encode(f"{CLIENT_ID}:{client_secret}".encode())
        headers = [(b"Authorization", b"Basic " + basic), (b"Content-Type", b"application/json")]
        request = build_request("POST", path, headers, b"x" * 1000)
        writer.write(request[: len(request) - 990])
        await writer.drain()
        if closing == "reset":
            writer.transport.abort()
        else:
            writer.close()
            await writer.wait_closed()
        gone = await logged(captured, "http.client_gone")
        answered = await logged(captured, "http.request")
    assert (gone["log_level"], gone["route"]) == ("info", path)
    assert answered["status"] == 400
    assert not [entry for entry in captured.entries if entry["log_level"] in ("error", "critical")]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


ALL_IPV4 = "0.0.0.0"  # noqa: S104 (binding every interface is the case under test)


@pytest.mark.parametrize(
    ("host", "issuer", "warned"),
    [
        (ALL_IPV4, None, True),
        ("::", None, True),
        (ALL_IPV4, "https://id.example.com", False),
        ("127.0.0.1", None, False),
    ],
)
async def test_a_wildcard_address_as_issuer_is_warned_of(
    host: str, issuer: str | None, warned: bool
) -> None:
    """A server listening on a wildcard address with no issuer signs tokens for a URL no
    resource server reaches: it says so in a warning naming --issuer, and only then."""
    captured, logger = capturing_logger()
    settings = ServerSettings(issuer=issuer)
    try:
        server = IdentityServer(
            client_id=CLIENT_ID,
            client_secret=secrets.token_urlsafe(32),
            host=host,
            settings=settings,
            logger=logger,
        )
        await server.start()
    except ServerStartError as error:  # a machine without IPv6
        pytest.skip(str(error))
    try:
        warnings = [
            entry
            for entry in captured.entries
            if entry["event"] == "server.issuer_is_a_wildcard_address"
        ]
        assert (len(warnings) == 1) is warned
        if warned:
            assert warnings[0]["log_level"] == "warning"
            assert "--issuer" in warnings[0]["hint"]
    finally:
        await server.stop()


def session_of(session: dict[str, str]) -> str:
    """The session id an answer's access token names (its ``sid``)."""
    return str(jwt.decode(session["access_token"], options={"verify_signature": False})["sid"])


async def test_security_events_name_user_session_client_and_ip(database_url: str) -> None:
    """A refresh reissued in the reuse interval, a reuse, a promotion, a log-out everywhere and
    a deletion are logged with the user, session and client ids and the IP, each once; no
    event holds a token, an anonymous id, the email or the password."""
    captured, logger = capturing_logger()
    email, password = "kept.private@example.test", "a password nobody may read"
    async with calling(
        CLIENT_ID, secrets.token_urlsafe(32), logger=logger, database=database_url
    ) as (_, caller):
        users = [await caller.anonymous_user() for _ in range(3)]
        first, second, third = (user["session"] for user in users)
        _, lost = await caller.refresh(first["refresh_token"])
        _, retried = await caller.refresh(first["refresh_token"])
        # The client kept the retry's pair: presenting it retires the lost one.
        assert (await caller.refresh(retried["session"]["refresh_token"]))[0] == 200
        _, reused = await caller.refresh(lost["session"]["refresh_token"])
        promotion = {"email": email, "password": password, "access_token": second["access_token"]}
        assert (await caller.post("/v1/users/promote", promotion))[0] == 200
        token = {"access_token": second["access_token"]}
        assert (await caller.post("/v1/sessions/revoke-all", token))[0] == 200
        token = {"access_token": third["access_token"]}
        assert (await caller.post("/v1/users/delete", token))[0] == 200
    expected = {
        "token.refresh_reissued_within_reuse_interval": (users[0], first),
        "token.refresh_reuse_detected": (users[0], first),
        "user.promoted": (users[1], second),
        "user.logged_out_everywhere": (users[1], second),
        "user.deleted": (users[2], third),
    }
    for event, (user, session) in expected.items():
        [entry] = [entry for entry in captured.entries if entry["event"] == event]
        ids = {key: entry.get(key) for key in ("user_id", "session_id", "client_id", "ip")}
        assert ids == {
            "user_id": user["user"]["id"],
            "session_id": session_of(session),
            "client_id": CLIENT_ID,
            "ip": "127.0.0.1",
        }, event
    secret_values = [email, password, *(user["user"]["anonymous_id"] for user in users)]
    for answer in (*(user["session"] for user in users), lost["session"], retried["session"]):
        secret_values += [answer["access_token"], answer["refresh_token"]]
    texts = [repr(entry) for entry in captured.entries]
    assert not [secret for secret in secret_values for text in texts if secret in text]
    assert reused["error"]["code"] == "invalid_grant"
