"""An API key Firebase refuses on a refresh (invalid, expired, restricted to other APIs) is
the app's configuration, not the user's session: a typed error, the user kept, and no retry
without end. Firebase's answers come through a rewriting proxy in front of the Auth emulator,
which takes any key."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mimi_reactive import (
    AuthRoute,
    BackendError,
    ClientAuthenticationError,
    FileSessionStorage,
    MimiCore,
    Transition,
)
from mimi_reactive.backends._firebase_errors import error_from
from mimi_reactive.backends.firebase import FirebaseBackend

from .firebase_emulator import API_KEY, AuthEmulator
from .helpers import event_names
from .rewriting_proxy import RewritingProxy, as_is
from .server_helpers import eventually


def _google_key_error(status: int, message: str, kind: str, reason: str | None) -> dict[str, Any]:
    """Google's answer refusing a key, as the Secure Token API gives it."""
    error: dict[str, Any] = {"code": status, "message": message, "status": kind}
    if reason is not None:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
                "metadata": {"service": "securetoken.googleapis.com"},
            }
        ]
    return {"error": error}


_INVALID = "API key not valid. Please pass a valid API key."
_BLOCKED = "Requests to this API securetoken.googleapis.com method are blocked."
_REFUSED_KEYS = [
    pytest.param(400, _INVALID, "INVALID_ARGUMENT", "API_KEY_INVALID", id="invalid"),
    pytest.param(400, _INVALID, "INVALID_ARGUMENT", None, id="invalid-no-details"),
    pytest.param(
        400,
        "API key expired. Please renew the API key.",
        "INVALID_ARGUMENT",
        "API_KEY_EXPIRED",
        id="expired",
    ),
    pytest.param(403, _BLOCKED, "PERMISSION_DENIED", "API_KEY_SERVICE_BLOCKED", id="blocked"),
]


def _code(reason: str | None) -> str:
    """The code a refusal is raised with: Google's reason, or ours when it gave none."""
    return reason or "INVALID_API_KEY"


@pytest.mark.parametrize(("status", "message", "kind", "reason"), _REFUSED_KEYS)
def test_a_refused_key_is_a_client_authentication_error(
    status: int, message: str, kind: str, reason: str | None
) -> None:
    """Google's refusals of a key (its ErrorInfo reason, or the message alone) raise
    ClientAuthenticationError with that reason as the code, Google's text not passed on."""
    error = error_from(status, _google_key_error(status, message, kind, reason))
    assert type(error) is ClientAuthenticationError
    assert (error.code, error.status) == (_code(reason), status)
    assert "securetoken" not in str(error)


def test_a_key_reason_only_counts_for_an_api_key() -> None:
    """An ErrorInfo reason about anything but the key leaves Google's status as the code."""
    error = error_from(400, _google_key_error(400, "Bad.", "INVALID_ARGUMENT", "RATE_LIMIT"))
    assert (type(error), error.code) == (BackendError, "INVALID_ARGUMENT")


@pytest.fixture
async def proxy(firebase_emulator: AuthEmulator) -> AsyncIterator[RewritingProxy]:
    """A rewriting proxy in front of the emulator (answers as they are until told)."""
    async with RewritingProxy(firebase_emulator.url) as proxy:
        yield proxy


def _token_requests(proxy: RewritingProxy) -> int:
    return sum(path.endswith("/token") for path in proxy.paths)


@pytest.mark.parametrize(("status", "message", "kind", "reason"), _REFUSED_KEYS)
async def test_a_key_refused_on_refresh_keeps_the_user_and_stops_the_retries(
    proxy: RewritingProxy,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    status: int,
    message: str,
    kind: str,
    reason: str | None,
) -> None:
    """A refresh refused for the key raises ClientAuthenticationError; the user stays
    logged in (DEGRADED, the session stored as it was); the keeper tries once, logs
    session.refresh_refused_for_the_app and stops until the session changes (a refresh
    that works: RECOVERED, and the keeper renews again)."""
    caplog.set_level(logging.ERROR, logger="mimi_reactive")
    path = tmp_path / "session.json"
    backend = FirebaseBackend(API_KEY, emulator_host=proxy.host)
    async with MimiCore.start(backend=backend, storage=FileSessionStorage(path)) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        stored = await FileSessionStorage(path).load()
        refusal = _google_key_error(status, message, kind, reason)

        def refuse_key(path: str, answer_status: int, body: dict[str, Any]) -> tuple[int, Any]:
            return (status, refusal) if path.endswith("/token") else (answer_status, body)

        proxy.rewrite = refuse_key
        with pytest.raises(ClientAuthenticationError) as refused:
            await core.auth.refresh()
        assert refused.value.code == _code(reason)
        state = core.auth.state
        assert (state.user, state.transition, state.degraded) == (user, Transition.DEGRADED, True)
        assert isinstance(state.error, ClientAuthenticationError)
        assert await FileSessionStorage(path).load() == stored

        async def keeper_stopped() -> bool:
            return "session.refresh_refused_for_the_app" in event_names(caplog)

        async with asyncio.timeout(10):
            await eventually(keeper_stopped)
        assert _token_requests(proxy) == 2  # the app's refresh, then the keeper's one
        keeper = core._keeper
        assert keeper._next_refresh_at() is None
        assert keeper._timer is None
        assert (core.auth.current_user, await FileSessionStorage(path).load()) == (user, stored)

        proxy.rewrite = as_is  # the key allowed again, at the console
        await core.auth.refresh()
        assert core.auth.state.transition is Transition.RECOVERED
        assert keeper._next_refresh_at() is not None
