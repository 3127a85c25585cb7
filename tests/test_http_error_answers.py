"""HttpBackend on hostile error answers: the service's code and message reach the error on
one line and bounded, whatever the service sends, from a stand-in server on loopback."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from mimi_reactive import (
    AuthRoute,
    BackendError,
    ClientAuthenticationError,
    ClientCredentials,
    RateLimitedError,
)
from mimi_reactive.backends.http import HttpBackend

from .conftest import CLIENT_ID
from .helpers import serving_app

Ask = Callable[[int, object], Awaitable[BackendError]]
"""Have the stand-in answer an anonymous sign-up with a status and ``{"error": ...}``."""

MEGABYTE = "x" * 1_000_000  # under the 1 MiB an answer is read up to
# What no one-line message holds: a control character, a line or paragraph separator.
BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@pytest.fixture
async def ask() -> AsyncIterator[Ask]:
    """A loopback stand-in for the service answering with the error given."""
    answer: list[tuple[int, object]] = []

    async def handler(request: web.Request) -> web.Response:
        status, error = answer[0]
        return web.json_response({"error": error}, status=status, dumps=json.dumps)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    async with serving_app(app) as url:
        backend = HttpBackend(url)
        await backend.open(ClientCredentials(CLIENT_ID, "s" * 32))

        async def given(status: int, error: object) -> BackendError:
            answer[:] = [(status, error)]
            with pytest.raises(BackendError) as raised:
                await backend.authenticate(AuthRoute.sign_up_anonymously(), None)
            return raised.value

        try:
            yield given
        finally:
            await backend.close()


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        ({"code": "bad\ncode", "message": "line one\nline two\n"}, "bad code", "line one line two"),
        ({"code": "c", "message": "carriage\rreturn\r\n"}, "c", "carriage return"),
        ({"code": "c", "message": "nul\x00byte"}, "c", "nul byte"),
        ({"code": "c", "message": "\x1b[2J\x1b[31mred\x1b[0m"}, "c", "[2J [31mred [0m"),
        ({"code": "c", "message": "a\u2028b\u2029c\x85d\x0be\x0cf"}, "c", "a b c d e f"),
        ({"code": "c", "message": "tab\tand   spaces"}, "c", "tab and spaces"),
        ({"code": "c", "message": MEGABYTE}, "c", "x" * 199 + "…"),
        ({"code": "c" * 500_000, "message": "m"}, "c" * 63 + "…", "m"),
        ({"code": "\n\r\x00 ", "message": "m"}, "http_400", "the service answered with an error"),
        ({"code": 400, "message": "m"}, "http_400", "the service answered with an error"),
        ({"code": None, "message": "m"}, "http_400", "the service answered with an error"),
        ({"code": ["c"], "message": "m"}, "http_400", "the service answered with an error"),
        ({"code": {"c": 1}, "message": "m"}, "http_400", "the service answered with an error"),
        ({"code": True, "message": "m"}, "http_400", "the service answered with an error"),
        ({"code": "c", "message": 12}, "c", ""),
        ({"code": "c", "message": None}, "c", ""),
        ({"code": "c", "message": ["line\n"]}, "c", ""),
        ({"code": "c", "message": {"nested": "line\n"}}, "c", ""),
        ("not an object\n", "http_400", "the service answered with an error"),
    ],
)
async def test_a_hostile_error_answer_is_one_bounded_line(
    ask: Ask, error: Any, code: str, message: str
) -> None:
    """The service's code and message are each shown on one line, control characters and
    runs of white space one space, a code cut to 64 characters and a message to 200; a code
    that is not text (or is empty once so shown) is ``http_{status}``."""
    raised = await ask(400, error)
    assert type(raised) is BackendError
    assert (raised.code, raised.message, raised.status) == (code, message, 400)
    assert not BREAKS.search(str(raised))
    assert len(str(raised)) <= 64 + 2 + 200


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (401, {"code": "invalid_client", "message": "no\nsuch client"}, ClientAuthenticationError),
        (429, {"code": "rate_limited", "message": "slow\r\ndown" + MEGABYTE}, RateLimitedError),
        (503, {"code": "server\x1b[0mbusy", "message": "later\n" * 1000}, RateLimitedError),
    ],
)
async def test_a_typed_error_s_message_is_one_bounded_line(
    ask: Ask, status: int, error: dict[str, str], kind: type[BackendError]
) -> None:
    """An error the backend gives a type keeps it, with the service's text on one bounded line."""
    raised = await ask(status, error)
    assert type(raised) is kind
    text = str(raised)
    assert not BREAKS.search(text)
    assert len(text) < 400
