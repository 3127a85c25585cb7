"""No secret reaches anything the server process writes, whatever a client sends: aiohttp's
and asyncio's own records included, on either store."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets

from .conftest import stores
from .raw_http import build_request, send_raw
from .server_helpers import serving

CLIENT_ID = "log-app"


@stores("sqlite-file", "postgresql")
async def test_malformed_requests_leave_no_secret_in_the_server_output(database_url: str) -> None:
    """Bad header bytes, a bad request line, an oversized header, a truncated body and bad
    JSON, each carrying the client secret or a token, at debug level: none is ever written."""
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
