"""No secret reaches a log line, a repr or an error message, client or server, at DEBUG."""

from __future__ import annotations

import contextlib
import logging
import secrets
import subprocess
import sys
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from mimi_reactive import (
    AnonymousAuthManager,
    AuthRoute,
    AuthTokens,
    FileSessionStorage,
    LogIn,
    MimiConfiguration,
    MimiCore,
    MimiUser,
    SessionState,
    Success,
)
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer

from .conftest import CLIENT_ID
from .helpers import CountingBackend, event_names

PASSWORD = "a password nobody may read"
EMAIL = "secret.person@example.test"


@contextlib.contextmanager
def structlog_captured() -> Iterator[list[MutableMapping[str, Any]]]:
    """structlog's capture_logs, leaving structlog unconfigured after if it was before: once
    configured, every later in-process server would log through structlog, not stdlib."""
    configured = structlog.is_configured()
    try:
        with capture_logs() as events:
            yield events
    finally:
        if not configured:
            structlog.reset_defaults()


def divide_by_zero(state: SessionState) -> None:
    """A subscriber with a bug."""
    print(1 / 0)


async def test_full_flow_logs_no_secret(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """Run every route, renewal, storage, failures and a raising subscriber: no log line
    holds a secret."""
    caplog.set_level(logging.DEBUG)
    client_secret = secrets.token_urlsafe(32)
    unknown_id = secrets.token_urlsafe(32)
    seen_reprs: list[str] = []
    with structlog_captured() as events:
        async with IdentityServer(client_id=CLIENT_ID, client_secret=client_secret) as server:
            anonymous = CountingBackend(HttpBackend(server.url))
            async with MimiCore.start(
                client_id=CLIENT_ID,
                client_secret=client_secret,
                backend=anonymous,
                configuration=MimiConfiguration(allow_anonymous_user_only=True),
                storage=FileSessionStorage(tmp_path / "session.json"),
            ) as core:
                core.auth.states.subscribe(lambda state: seen_reprs.append(repr(state)))
                core.auth.states.subscribe(divide_by_zero)  # a faulty subscriber
                manager = AnonymousAuthManager(core)
                first = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
                await core.auth.refresh()
                await core.auth.access_token()
                await core.auth.log_out()
                result = await manager.authenticate_anonymous_user(first.anonymous_id)
                assert isinstance(result, Success)
                seen_reprs.append(repr(result))
                second = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
                await manager.authenticate_anonymous_user(first.anonymous_id)
                failure = await manager.authenticate_anonymous_user(unknown_id)
                seen_reprs.append(repr(failure))
                refused = await core.auth.run(AuthRoute.log_in(email=EMAIL, password=PASSWORD))
                seen_reprs.append(repr(refused))
            credentials = CountingBackend(HttpBackend(server.url))
            async with MimiCore.start(
                client_id=CLIENT_ID, client_secret=client_secret, backend=credentials
            ) as core:
                await core.auth.authenticate(AuthRoute.sign_up_anonymously())
                await core.auth.authenticate(AuthRoute.promote(email=EMAIL, password=PASSWORD))
                await core.auth.log_out()
                await core.auth.authenticate(AuthRoute.log_in(email=EMAIL, password=PASSWORD))
                wrong = await core.auth.run(LogIn(email=EMAIL, password=PASSWORD + "!"))
                seen_reprs.append(repr(wrong))
                seen_reprs.append(str(wrong.error))
            async with MimiCore.start(
                client_id=CLIENT_ID,
                client_secret="wrong " + client_secret,
                backend=HttpBackend(server.url),
            ) as core:
                rejected = await core.auth.run(AuthRoute.sign_up_anonymously())
                seen_reprs.append(repr(rejected))

    tokens = [
        token
        for session in anonymous.sessions + credentials.sessions
        for token in (session.tokens.access_token, session.tokens.refresh_token)
        if token
    ]
    secret_values = [
        first.anonymous_id,
        second.anonymous_id,
        unknown_id,
        client_secret,
        PASSWORD,
        *tokens,
    ]
    assert len(tokens) >= 8
    assert events, "the server logged nothing: the test would prove nothing"
    assert "stream.subscriber_failed" in event_names(caplog)
    assert "session.command" in event_names(caplog), "the library logged nothing at DEBUG"
    formatter = logging.Formatter()  # with tracebacks, as an app's handler would show them
    texts = [repr(event) for event in events] + [formatter.format(r) for r in caplog.records]
    texts += seen_reprs
    for secret in secret_values:
        assert secret is not None
        for text in texts:
            assert secret not in text


def test_value_reprs_mask_secrets() -> None:
    """Users, routes, tokens and results never show a whole secret."""
    anonymous_id = secrets.token_urlsafe(32)
    token = secrets.token_urlsafe(32)
    values = [
        MimiUser(id="u1", anonymous_id=anonymous_id, email=EMAIL),
        AuthRoute.log_in_anonymously(anonymous_id),
        AuthRoute.log_in(email=EMAIL, password=PASSWORD),
        AuthRoute.sign_up(email=EMAIL, password=PASSWORD),
        AuthRoute.promote(email=EMAIL, password=PASSWORD),
        AuthTokens(token, token, 3600),
        Success(anonymous_id),
    ]
    for value in values:
        text = repr(value)
        for secret in (anonymous_id, token, PASSWORD, EMAIL):
            assert secret not in text, text


def test_library_does_not_configure_logging() -> None:
    """Importing and running the library leaves structlog and logging as the app set them."""
    program = """
import asyncio, logging, secrets, structlog
from mimi_reactive import AuthRoute, MimiCore
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer

async def main():
    secret = secrets.token_urlsafe(32)
    async with IdentityServer(client_id="c", client_secret=secret) as server:
        async with MimiCore.start(client_id="c", client_secret=secret,
                                  backend=HttpBackend(server.url)) as core:
            await core.auth.authenticate(AuthRoute.sign_up_anonymously())

asyncio.run(main())
print(structlog.is_configured(), logging.getLogger().handlers)
"""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip().splitlines()[-1] == "False []"
