"""No request of the library follows a redirect: a service (or whoever answers for it) that
redirects a call elsewhere would have its body (an anonymous id, a refresh token, a password)
posted to a host the app never configured. Against a real loopback server that redirects to a
second one, which records whether anything reached it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import NamedTuple

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from mimi_reactive import (
    AuthRoute,
    BackendError,
    ClientCredentials,
    MimiUser,
)
from mimi_reactive.backends.firebase import FirebaseBackend
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.verify import AccessTokenVerifier, InvalidTokenError

from .firebase_emulator import API_KEY
from .helpers import serving_app
from .strategies import session_for

REDIRECTS = [301, 302, 303, 307, 308]
ANONYMOUS_ID = "the-users-anonymous-id-credential"
PASSWORD = "a-password-never-shown"
CLIENT_SECRET = "a-client-secret-never-shown"
QUERY_SECRET = "a-query-secret-never-shown"
SESSION = session_for(MimiUser(id="u1", anonymous_id=ANONYMOUS_ID, is_anonymous=True))
SECRETS = (
    ANONYMOUS_ID,
    PASSWORD,
    CLIENT_SECRET,
    QUERY_SECRET,
    API_KEY,
    "access-token",  # session_for's tokens
    "refresh-token",
)

Backend = HttpBackend | FirebaseBackend
Call = Callable[[Backend], Awaitable[object]]


class Redirecting(NamedTuple):
    """A service answering every request with ``status`` to elsewhere: ``reached`` holds the
    paths the service was asked, ``stolen`` the requests that reached elsewhere."""

    url: str
    status: int
    reached: list[str]
    stolen: list[str]


@pytest.fixture
async def elsewhere() -> AsyncIterator[tuple[str, list[str]]]:
    """A second loopback server standing for a host the app never configured: it records
    every request (method and path) and answers each as a JWKS would."""
    stolen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        stolen.append(f"{request.method} {request.path}")
        return web.json_response({"keys": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    async with serving_app(app) as url:
        yield url, stolen


@pytest.fixture(params=REDIRECTS)
async def redirecting(
    request: pytest.FixtureRequest, elsewhere: tuple[str, list[str]]
) -> AsyncIterator[Redirecting]:
    """The service, redirecting with each status in turn to elsewhere, a secret in the query."""
    status: int = request.param
    target, stolen = elsewhere
    reached: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        reached.append(request.path)
        location = f"{target}/collect?token={QUERY_SECRET}"
        return web.Response(status=status, headers={"Location": location})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    async with serving_app(app) as url:
        yield Redirecting(url, status, reached, stolen)


def http_backend(url: str) -> Backend:
    return HttpBackend(url)


def firebase_backend(url: str) -> Backend:
    return FirebaseBackend(API_KEY, emulator_host=url.removeprefix("http://"))


def sign_up_anonymously(backend: Backend) -> Awaitable[object]:
    return backend.authenticate(AuthRoute.sign_up_anonymously(), None)


def sign_up(backend: Backend) -> Awaitable[object]:
    return backend.authenticate(AuthRoute.sign_up(email="a@b.test", password=PASSWORD), None)


def log_in(backend: Backend) -> Awaitable[object]:
    return backend.authenticate(AuthRoute.log_in(email="a@b.test", password=PASSWORD), None)


def log_in_anonymously(backend: Backend) -> Awaitable[object]:
    return backend.authenticate(AuthRoute.log_in_anonymously(ANONYMOUS_ID), None)


def refresh(backend: Backend) -> Awaitable[object]:
    return backend.refresh(SESSION)


def revoke(backend: Backend) -> Awaitable[object]:
    return backend.revoke(SESSION)


def delete(backend: Backend) -> Awaitable[object]:
    return backend.delete(SESSION)


# Each backend with every call it sends a request for (FirebaseBackend has no log-in by
# anonymous id, and its log-out is local).
CASES: dict[str, tuple[Callable[[str], Backend], Call]] = {
    f"{backend.__name__} {call.__name__}": (backend, call)
    for backend, calls in (
        (
            http_backend,
            [sign_up_anonymously, sign_up, log_in, log_in_anonymously, refresh, revoke, delete],
        ),
        (firebase_backend, [sign_up_anonymously, sign_up, log_in, refresh, delete]),
    )
    for call in calls
}


@pytest.mark.parametrize(("make", "call"), CASES.values(), ids=CASES.keys())
async def test_a_redirect_is_not_followed_and_is_a_backend_error(
    redirecting: Redirecting, make: Callable[[str], Backend], call: Call
) -> None:
    """A 3xx answer to any call of either backend sends nothing elsewhere and raises
    BackendError ``http_{status}``, one line naming the status and no secret or Location."""
    backend = make(redirecting.url)
    await backend.open(ClientCredentials("my-app", CLIENT_SECRET))
    try:
        with pytest.raises(BackendError) as raised:
            await call(backend)
    finally:
        await backend.close()
    assert len(redirecting.reached) == 1
    assert redirecting.stolen == []
    status = redirecting.status
    assert type(raised.value) is BackendError
    assert (raised.value.code, raised.value.status) == (f"http_{status}", status)
    message = str(raised.value)
    assert f"redirect ({status})" in message
    assert "\n" not in message
    assert "collect" not in message
    for secret in SECRETS:
        assert secret not in message


async def test_the_jwks_fetch_follows_no_redirect(redirecting: Redirecting) -> None:
    """An issuer that redirects its JWKS elsewhere: the verifier fetches nothing there and
    refuses the token as ``jwks_unavailable``."""
    key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(
        {"sub": "u1"}, key, algorithm="ES256", headers={"kid": "k1", "typ": "at+jwt"}
    )
    async with AccessTokenVerifier(redirecting.url) as verifier:
        with pytest.raises(InvalidTokenError) as raised:
            await verifier.verify(token)
    assert raised.value.reason == "jwks_unavailable"
    assert redirecting.reached == ["/.well-known/jwks.json"]
    assert redirecting.stolen == []
