"""What the HTTP backends share through their one transport (``backends/_answers.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import pytest

from mimi_reactive import (
    ClientCredentials,
    ConfigurationError,
    MimiCoreError,
    MimiUser,
    SignUpAnonymously,
)
from mimi_reactive.backends.firebase import FirebaseBackend
from mimi_reactive.backends.http import HttpBackend

from .strategies import session_for

Backend = HttpBackend | FirebaseBackend

BACKENDS: dict[str, Callable[[], Backend]] = {
    "HttpBackend": partial(HttpBackend, "http://127.0.0.1:9"),
    "FirebaseBackend": partial(FirebaseBackend, "an-api-key-never-shown"),
    "FirebaseBackend on the emulator": partial(
        FirebaseBackend, "an-api-key-never-shown", emulator_host="127.0.0.1:9"
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
    for secret in ("an-api-key-never-shown", "a-client-secret", "access-token", "refresh-token"):
        assert secret not in message
