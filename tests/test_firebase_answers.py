"""FirebaseBackend on answers the Auth emulator never gives (quota, overload, oversized or
malformed answers), from a stand-in server on loopback."""

from __future__ import annotations

import base64
import json
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
    WeakPasswordError,
)
from mimi_reactive.backends._firebase_errors import error_from
from mimi_reactive.backends.firebase import FirebaseBackend

from .firebase_emulator import API_KEY
from .helpers import serving_app

Answer = tuple[int, dict[str, str], str | bytes]
"""A stand-in's answer: status, headers, body."""
Ask = Callable[[Answer], Awaitable[Any]]


def _unsigned_id_token(user_id: str = "u1") -> str:
    """An ID token of an anonymous user, as Firebase's shape (its signature is not read)."""
    claims = {"user_id": user_id, "firebase": {"sign_in_provider": "anonymous", "identities": {}}}
    parts = [json.dumps(part).encode() for part in ({"alg": "none"}, claims)]
    return ".".join(base64.urlsafe_b64encode(part).rstrip(b"=").decode() for part in parts) + "."


@pytest.fixture
async def stand_in() -> AsyncIterator[Ask]:
    """A loopback stand-in for Firebase, for answers the emulator never gives: ``ask(answer)``
    has it give ``answer`` to an anonymous sign-up through FirebaseBackend, and returns
    what the sign-up returned or raised."""
    answer: list[Answer] = []

    async def handler(request: web.Request) -> web.Response:
        status, headers, body = answer[0]
        data = body.encode() if isinstance(body, str) else body
        return web.Response(status=status, headers=headers, body=data)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    async with serving_app(app) as url:
        backend = FirebaseBackend(API_KEY, emulator_host=url.removeprefix("http://"))
        await backend.open(ClientCredentials())

        async def ask(given: Answer) -> Any:
            answer[:] = [given]
            try:
                return await backend.authenticate(AuthRoute.sign_up_anonymously(), None)
            except BackendError as error:
                return error

        try:
            yield ask
        finally:
            await backend.close()


def _google_error(status: int, message: str, code: str) -> str:
    """Google APIs' own error answer (quota, overload), not Identity Toolkit's ``CODE : ``."""
    return json.dumps({"error": {"code": status, "message": message, "status": code}})


def _firebase_error(message: str) -> str:
    return json.dumps({"error": {"code": 400, "message": message}})


_PAST = "Wed, 21 Oct 2015 07:28:00 GMT"
_QUOTA = "Quota exceeded for quota metric 'Queries' of service 'identitytoolkit.googleapis.com'."


@pytest.mark.parametrize(
    ("answer", "code", "retry_after"),
    [
        (
            (429, {"Retry-After": "120"}, _google_error(429, _QUOTA, "RESOURCE_EXHAUSTED")),
            "RESOURCE_EXHAUSTED",
            120.0,
        ),
        ((429, {}, ""), "http_429", None),
        (
            (503, {"Retry-After": "30", "Content-Type": "text/html"}, "<html>Unavailable</html>"),
            "http_503",
            30.0,
        ),
        (
            (503, {}, _google_error(503, "The service is currently unavailable.", "UNAVAILABLE")),
            "UNAVAILABLE",
            None,
        ),
        (
            (400, {"Retry-After": "5"}, _firebase_error("QUOTA_EXCEEDED : Exceeded quota.")),
            "QUOTA_EXCEEDED",
            5.0,
        ),
        (
            (400, {"Retry-After": _PAST}, _firebase_error("TOO_MANY_ATTEMPTS_TRY_LATER : Wait.")),
            "TOO_MANY_ATTEMPTS_TRY_LATER",
            0.0,
        ),
        (
            (400, {"Retry-After": "soon"}, _firebase_error("TOO_MANY_ATTEMPTS_TRY_LATER")),
            "TOO_MANY_ATTEMPTS_TRY_LATER",
            None,
        ),
    ],
)
async def test_quota_and_overload_are_rate_limited_with_retry_after(
    stand_in: Ask, answer: Answer, code: str, retry_after: float | None
) -> None:
    """429, 503 and Firebase's quota codes raise RateLimitedError keeping the status and the
    Retry-After, read as HttpBackend reads it (seconds or a date; a past date is 0)."""
    error = await stand_in(answer)
    assert isinstance(error, RateLimitedError)
    assert (error.code, error.status, error.retry_after) == (code, answer[0], retry_after)
    assert "Quota exceeded" not in str(error)  # Firebase's own text is not passed on


async def test_a_server_error_is_not_rate_limited(stand_in: Ask) -> None:
    """A 500 is a plain BackendError (retried as a server error), not a rate limit."""
    error = await stand_in((500, {"Retry-After": "9"}, "Internal Server Error"))
    assert type(error) is BackendError
    assert (error.code, error.status) == ("http_500", 500)


_LONG = "A" * (2 << 20)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (_firebase_error(_LONG), "http_400"),  # a body past the limit is not read on
        (_firebase_error(_LONG + " : x"), "http_400"),
        (_firebase_error("A" * 65 + " : x"), "http_400"),  # no code is that long
        (_firebase_error("A" * 64 + " : x"), "A" * 64),
        (_firebase_error("invalid_email : x"), "http_400"),
        (_firebase_error("INVALID-EMAIL : x"), "http_400"),
        (_firebase_error("INVALID_EMAIL : x"), "INVALID_EMAIL"),
        ("[" * 200_000 + "]" * 200_000, "http_400"),  # nested past Python's stack
        (b"\xff\xfe{", "http_400"),
    ],
)
async def test_an_error_s_code_is_short_and_plain(stand_in: Ask, body: str, code: str) -> None:
    """Only a short code of capitals, digits and underscores is kept; any other answer (too
    long, not JSON) is ``http_{status}``, so no error carries megabytes."""
    error = await stand_in((400, {}, body))
    assert type(error) is BackendError
    assert (error.code, error.status) == (code, 400)
    assert len(str(error)) < 200


async def test_an_answer_past_the_limit_is_an_invalid_response(stand_in: Ask) -> None:
    """A success answer longer than anything Firebase sends is refused, not read whole."""
    body = json.dumps({"idToken": _unsigned_id_token(), "padding": _LONG})
    error = await stand_in((200, {}, body))
    assert type(error) is BackendError
    assert error.code == "invalid_response"


@pytest.mark.parametrize(
    "expires_in",
    ["NaN", "Infinity", "-Infinity", "1e400", 10**400, "-5", "0", 0, -1.5, True, "1e300", [60]],
)
async def test_a_bad_token_lifetime_is_an_invalid_response(
    stand_in: Ask, expires_in: object
) -> None:
    """A lifetime that is not a positive finite number of seconds (NaN, infinite, zero or
    less, a bool, past a century, not a number) raises BackendError("invalid_response"), not
    ValueError."""
    body = {
        "idToken": _unsigned_id_token(),
        "refreshToken": "r",
        "expiresIn": expires_in,
        "localId": "u1",
    }
    error = await stand_in((200, {}, json.dumps(body)))
    assert type(error) is BackendError
    assert error.code == "invalid_response"


async def test_a_good_token_lifetime_is_taken(stand_in: Ask) -> None:
    """Firebase's lifetime, seconds as a string, becomes the tokens' ``expires_in``."""
    body = {
        "idToken": _unsigned_id_token(),
        "refreshToken": "r",
        "expiresIn": "3600",
        "localId": "u1",
    }
    issued = await stand_in((200, {}, json.dumps(body)))
    assert issued.tokens.expires_in == 3600.0
    assert issued.user.is_anonymous


@pytest.mark.parametrize(
    ("message", "kind", "code"),
    [
        (
            "API key not valid. Please pass a valid API key.",
            ClientAuthenticationError,
            "INVALID_API_KEY",
        ),
        ("The request is missing a valid API key.", ClientAuthenticationError, "INVALID_API_KEY"),
        ("INVALID_EMAIL : not-an-email about API key", BackendError, "INVALID_EMAIL"),
        ("WEAK_PASSWORD : API key", WeakPasswordError, "WEAK_PASSWORD"),
    ],
)
def test_only_a_message_without_a_code_is_read_for_an_api_key(
    message: str, kind: type[BackendError], code: str
) -> None:
    """ "API key" in a message means a refused key only when the message has no code of its
    own: a user's text quoted after a code cannot turn it into INVALID_API_KEY."""
    error = error_from(400, {"error": {"code": 400, "message": message}})
    assert type(error) is kind
    assert error.code == code


@pytest.mark.parametrize(
    "user_id",
    ["", "u1\n", "u\x001", "\x7f", "u" * 129, "u" * 100_000],
    ids=["empty", "newline", "nul", "delete", "129-characters", "100000-characters"],
)
async def test_an_id_token_naming_no_possible_uid_is_an_invalid_response(
    stand_in: Ask, user_id: str
) -> None:
    """A user_id claim Firebase never issues (empty, a control character, past its 128
    characters) raises BackendError("invalid_response") instead of becoming a user."""
    body = {
        "idToken": _unsigned_id_token(user_id),
        "refreshToken": "r",
        "expiresIn": "3600",
        "localId": user_id,
    }
    error = await stand_in((200, {}, json.dumps(body)))
    assert type(error) is BackendError
    assert error.code == "invalid_response"


@pytest.mark.parametrize(
    "user_id",
    ["u", "u" * 128, "user with spaces", "ünïcode"],
    ids=["one-character", "128-characters", "spaces", "unicode"],
)
async def test_an_id_token_naming_a_possible_uid_is_taken(stand_in: Ask, user_id: str) -> None:
    """Any uid Firebase can issue (up to 128 characters, no control one) is the user's id."""
    body = {
        "idToken": _unsigned_id_token(user_id),
        "refreshToken": "r",
        "expiresIn": "3600",
        "localId": user_id,
    }
    issued = await stand_in((200, {}, json.dumps(body)))
    assert issued.user.id == user_id
