"""HttpBackend reads a 429's Retry-After sanely, whatever a server or proxy sends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from mimi_reactive import AuthRoute, MimiCore, RateLimitedError
from mimi_reactive.backends.http import HttpBackend

from .conftest import ANONYMOUS_ONLY, CLIENT_ID
from .helpers import serving_app

DAY = 24 * 3600.0


@pytest.fixture
async def limiting() -> AsyncIterator[tuple[str, dict[str, str]]]:
    """A loopback server answering every sign-up 429 with the Retry-After in the dict."""
    headers: dict[str, str] = {}

    async def limited(request: web.Request) -> web.Response:
        return web.json_response(
            {"error": {"code": "rate_limited", "message": "slow down"}},
            status=429,
            headers=headers,
        )

    app = web.Application()
    app.router.add_post("/v1/anonymous-users", limited)
    async with serving_app(app) as url:
        yield url, headers


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("-5", None),
        ("1.5", None),
        ("nan", None),
        ("inf", None),
        ("1e9", None),
        ("\u00b2", None),  # a digit to str.isdigit, not to float
        ("\u0663", None),  # an Arabic-Indic three
        ("9" * 400, DAY),  # a float of it is infinite
        ("Wed, 21 Oct 2099 07:28:00 GMT", DAY),  # a broken proxy's date decades away
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date past
        ("Mon, 01 Jan 0001 00:00:00 -2359", 0.0),
        ("Fri, 31 Dec 9999 23:59:59 -2359", DAY),
        ("Wed, 21 Oct 2099 07:28:00", None),  # no zone
        ("Wed, 21 Oct 99999 07:28:00 GMT", None),
        ("soon", None),
    ],
)
async def test_a_retry_after_is_read_as_seconds_within_a_day(
    limiting: tuple[str, dict[str, str]], header: str | None, seconds: float | None
) -> None:
    """Delay-seconds or an HTTP date become seconds, at most a day and never negative; any
    other form (signed, fractional, non-ASCII digits, no zone) is read as no Retry-After."""
    url, headers = limiting
    if header is not None:
        headers["Retry-After"] = header
    async with MimiCore.start(
        client_id=CLIENT_ID,
        client_secret="s",
        configuration=ANONYMOUS_ONLY,
        backend=HttpBackend(url),
    ) as core:
        with pytest.raises(RateLimitedError) as raised:
            await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    assert raised.value.status == 429
    assert raised.value.retry_after == seconds
