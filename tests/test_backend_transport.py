"""What the HTTP backends share through their one transport (``backends/_answers.py``)."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import aiohttp
import pytest

from mimi_reactive import (
    ClientCredentials,
    ConfigurationError,
    MimiCoreError,
    MimiUser,
    SignUpAnonymously,
    TransportError,
)
from mimi_reactive.backends.firebase import FirebaseBackend
from mimi_reactive.backends.http import HttpBackend

from .strategies import session_for

Backend = HttpBackend | FirebaseBackend

API_KEY = "an-api-key-never-shown"

BACKENDS: dict[str, Callable[[], Backend]] = {
    "HttpBackend": partial(HttpBackend, "http://127.0.0.1:9"),
    "FirebaseBackend": partial(FirebaseBackend, API_KEY),
    "FirebaseBackend on the emulator": partial(
        FirebaseBackend, API_KEY, emulator_host="127.0.0.1:9"
    ),
}

SESSION = session_for(MimiUser(id="u1", anonymous_id=None, is_anonymous=False))

CALLS: dict[str, Callable[[Backend], Awaitable[object]]] = {
    "authenticate": lambda backend: backend.authenticate(SignUpAnonymously(), None),
    "refresh": lambda backend: backend.refresh(SESSION),
    "delete": lambda backend: backend.delete(SESSION),
}


async def closed(make: Callable[[], Backend]) -> Backend:
    """A backend opened and closed again."""
    backend = make()
    await backend.open(ClientCredentials(client_id="a", client_secret="a-client-secret"))
    await backend.close()
    return backend


async def never_opened(make: Callable[[], Backend]) -> Backend:
    """A backend never opened."""
    return make()


@pytest.mark.parametrize("make", BACKENDS.values(), ids=BACKENDS.keys())
@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
@pytest.mark.parametrize("state", [never_opened, closed], ids=["never opened", "closed"])
async def test_a_backend_that_is_not_open_raises_a_configuration_error(
    make: Callable[[], Backend],
    call: Callable[[Backend], Awaitable[object]],
    state: Callable[[Callable[[], Backend]], Awaitable[Backend]],
) -> None:
    """A call on a backend never opened, or closed, raises ConfigurationError (a library
    error, not a bare RuntimeError) in one line naming the service and no secret."""
    backend = await state(make)
    with pytest.raises(ConfigurationError) as raised:
        await call(backend)
    assert isinstance(raised.value, MimiCoreError)
    message = str(raised.value)
    assert "not open" in message
    assert "\n" not in message
    for secret in (API_KEY, "a-client-secret", "access-token", "refresh-token"):
        assert secret not in message


CREDENTIALS = ClientCredentials(client_id="my-app", client_secret="a-client-secret")
SECRETS = [API_KEY, "a-client-secret", aiohttp.encode_basic_auth("my-app", "a-client-secret")]
"""What the backends send in their headers, as sent (HttpBackend's Basic credentials too)."""

NOT_HTTP = {
    "a bad status line": b"HTTP/1.1 abc OK\r\n\r\n",
    "a bad header": b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
}


@pytest.fixture(params=list(NOT_HTTP.values()), ids=list(NOT_HTTP))
async def not_http(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """``host:port`` of a loopback server that answers every request with bytes that are
    not an HTTP answer (which aiohttp raises as a ClientResponseError)."""
    answer: bytes = request.param

    async def answer_badly(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer_badly, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


def shown(error: BaseException) -> str:
    """Everything an app or an error reporter may show of ``error``: its traceback, and the
    repr and args of it and of each exception chained to it."""
    text = "".join(traceback.format_exception(error))
    waiting: list[BaseException | None] = [error]
    while waiting:
        chained = waiting.pop()
        if chained is not None:
            text += repr(chained) + repr(chained.args)
            waiting += [chained.__cause__, chained.__context__]
    return text


@pytest.mark.parametrize(
    "make",
    [
        lambda host: HttpBackend(f"http://{host}"),
        lambda host: FirebaseBackend(API_KEY, emulator_host=host),
    ],
    ids=["HttpBackend", "FirebaseBackend"],
)
async def test_an_answer_that_is_not_http_is_network_trouble_showing_no_credential(
    not_http: str, make: Callable[[str], Backend]
) -> None:
    """An answer aiohttp cannot read as HTTP is a TransportError; neither it nor anything
    chained to it shows the request's headers (the API key, the client secret)."""
    backend = make(not_http)
    await backend.open(CREDENTIALS)
    try:
        with pytest.raises(TransportError) as trouble:
            await backend.authenticate(SignUpAnonymously(), None)
    finally:
        await backend.close()
    assert isinstance(trouble.value.__cause__, aiohttp.ClientResponseError)
    text = shown(trouble.value)
    for secret in SECRETS:
        assert secret not in text
