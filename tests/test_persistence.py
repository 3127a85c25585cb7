"""Sessions that survive, over the reference server: restored at start, a log-out or an
unreadable file remembered as nobody, tokens renewed before they expire (once for many
callers, whatever the server's clock says) and saved before they are handed out."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from mimi_reactive import (
    AuthRoute,
    FileSessionStorage,
    NotLoggedInError,
    RefreshPolicy,
    Transition,
)
from mimi_reactive.backends.http import HttpBackend

from .conftest import Service, make_service
from .helpers import CountingBackend, event_names, library_events


async def test_restart_restores_the_user_without_a_logged_out_flash(
    service: Service, tmp_path: Path
) -> None:
    """A new core on the same file starts RESTORED with the user: no INITIAL state first."""
    storage = FileSessionStorage(tmp_path / "session.json")
    async with service.core(storage) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    async with service.core(FileSessionStorage(tmp_path / "session.json")) as core:
        first: list[Any] = []
        core.auth.states.subscribe(first.append)
        assert first[0].transition is Transition.RESTORED
        assert first[0].user == user
        assert core.auth.current_user == user
        token = await core.auth.access_token()
        _status, answer = await service.post("/v1/token/introspect", {"token": token})
        assert answer["active"] is True


async def test_debug_logs_the_first_state_as_every_later_one(
    service: Service, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG the state a core starts in (INITIAL, then RESTORED after a restart) is logged
    as session.state, as every later state is: a restore shows in the log."""
    caplog.set_level(logging.DEBUG, logger="mimi_reactive")
    for expected in ("initial", "restored"):
        caplog.clear()
        async with service.core(FileSessionStorage(tmp_path / "session.json")) as core:
            if core.auth.current_user is None:
                await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        logged = [
            getattr(r, "transition", None)
            for r in library_events(caplog)
            if getattr(r, "event", None) == "session.state"
        ]
        assert logged[:1] == [expected]


async def test_log_out_is_remembered(service: Service, tmp_path: Path) -> None:
    """After a log-out, the next start has nobody logged in."""
    async with service.core(FileSessionStorage(tmp_path / "s.json")) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        await core.auth.log_out()
    async with service.core(FileSessionStorage(tmp_path / "s.json")) as core:
        assert core.auth.state.transition is Transition.INITIAL
        with pytest.raises(NotLoggedInError):
            await core.auth.access_token()


async def test_tokens_are_renewed_before_they_expire(short_lived: Service) -> None:
    """With half the lifetime left the core renews on its own; the token never lapses."""
    backend = CountingBackend(HttpBackend(short_lived.url))
    async with short_lived.core(backend=backend, refresh=RefreshPolicy(ahead=0.5)) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        first = await core.auth.access_token()
        first_expires_at = core.auth.access_token_expires_at
        assert first_expires_at is not None
        renewed_on_its_own = asyncio.Event()
        renewed_at: list[float] = []

        def on_token(token: str | None) -> None:
            if token not in (None, first):
                renewed_at.append(time.time())  # the core's clock
                renewed_on_its_own.set()

        core.auth.access_tokens.subscribe(on_token)
        async with asyncio.timeout(10):  # due at 1 s, half the 2 s lifetime
            await renewed_on_its_own.wait()
        assert renewed_at[0] < first_expires_at
        assert backend.counts["refresh"] == 1
        renewed = await core.auth.access_token()
        assert renewed != first
        assert backend.counts["refresh"] == 1  # the renewed token was handed out as is
        _, answer = await short_lived.post("/v1/token/introspect", {"token": renewed})
        assert answer["active"] is True
        assert core.auth.state.transition is Transition.ANONYMOUS_CREATED  # no state noise


async def test_fifty_concurrent_callers_share_one_renewal(service: Service) -> None:
    """50 access_token() calls on an expired token cause exactly one refresh."""
    backend = CountingBackend(HttpBackend(service.url))
    now = [time.time()]
    # The core's clock jumps an hour (the token's lifetime) while its keeper sleeps on the
    # real clock: the callers alone find the token expired.
    async with service.core(backend=backend, clock=lambda: now[0]) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        old = await core.auth.access_token()
        now[0] += 3600
        tokens = await asyncio.gather(*(core.auth.access_token() for _ in range(50)))
        assert backend.counts["refresh"] == 1
        assert set(tokens) == {tokens[0]}
        assert tokens[0] != old


@pytest.mark.parametrize("skew", [-3600.0, 3600.0])
async def test_server_clock_skew_causes_no_renewal_loop(
    tmp_path: Path, client_secret: str, skew: float
) -> None:
    """An hour of skew either way: renewals stay one per lifetime and tokens stay valid."""
    settings: dict[str, Any] = {
        "access_token_ttl": 2.0,
        "clock": lambda: time.time() + skew,
    }
    async for service in make_service(tmp_path, client_secret, **settings):
        backend = CountingBackend(HttpBackend(service.url))
        async with service.core(backend=backend, refresh=RefreshPolicy(ahead=0.5)) as core:
            await core.auth.authenticate(AuthRoute.sign_up_anonymously())
            await asyncio.sleep(2.5)
            assert 1 <= backend.counts["refresh"] <= 3
            token = await core.auth.access_token()
            _, answer = await service.post("/v1/token/introspect", {"token": token})
            assert answer["active"] is True


async def test_unreadable_session_file_starts_logged_out(
    service: Service, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A corrupt session file is moved aside and the core starts with nobody, warned."""
    path = tmp_path / "session.json"
    path.write_text('{"schema": 1, "session": {"user": "torn')
    caplog.set_level(logging.WARNING, logger="mimi_reactive")
    async with service.core(FileSessionStorage(path)) as core:
        assert core.auth.state.transition is Transition.INITIAL
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    assert "storage.unreadable_session_moved_aside" in event_names(caplog)
    assert len(list(tmp_path.glob("session.json.unreadable-*"))) == 1


async def test_renewed_tokens_are_saved_before_they_are_handed_out(
    service: Service, tmp_path: Path
) -> None:
    """After a renewal the stored tokens are the ones access_token() gives."""
    storage = FileSessionStorage(tmp_path / "session.json")
    async with service.core(storage) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        before = await storage.load()
        await core.auth.refresh()
        after = await storage.load()
        assert before is not None
        assert after is not None
        assert after.tokens != before.tokens
        assert after.tokens.access_token == await core.auth.access_token()
