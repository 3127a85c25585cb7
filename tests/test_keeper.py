"""The keeper's timing: a wall clock that jumps, a Retry-After too long to honour, and a
session change that ends a wait between retries."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import pytest

from mimi_reactive import (
    AuthRoute,
    MemorySessionStorage,
    MimiConfiguration,
    MimiCore,
    RateLimitedError,
    RetryPolicy,
    Session,
    Transition,
    _keeper,
    _retry,
)
from mimi_reactive.testing import Reply, ScriptedBackend, StateRecorder

from .helpers import CountingBackend
from .server_helpers import Clock

HOUR = 3600.0
# What a broken proxy's "Retry-After: <a date in 2099>" reads as.
DECADES = 2.3e9


def refuse_next_refresh_for_decades(backend: CountingBackend) -> None:
    """The next refresh is answered 429 with a Retry-After decades long (a broken proxy's)."""
    backend.inner.script(  # type: ignore[attr-defined]
        Reply.fail(
            RateLimitedError("rate_limited", "slow", status=429, retry_after=DECADES),
            only_for=("refresh",),
        )
    )


@pytest.fixture
def often(monkeypatch: pytest.MonkeyPatch) -> None:
    """The keeper looks at the wall clock every few milliseconds instead of every minute."""
    monkeypatch.setattr(_keeper, "_LONGEST_SLEEP", 0.005)


def start(
    backend: CountingBackend,
    clock: Clock,
    *,
    retry: RetryPolicy | None = None,
    storage: MemorySessionStorage | None = None,
) -> AbstractAsyncContextManager[MimiCore]:
    return MimiCore.start(
        client_id="a",
        client_secret="s",
        backend=backend,
        clock=clock,
        storage=storage,
        configuration=MimiConfiguration(retry=retry or RetryPolicy()),
    )


@pytest.mark.usefixtures("often")
async def test_a_forward_jump_of_the_wall_clock_is_noticed_without_a_call() -> None:
    """After the wall clock jumps past the tokens' due time (a resume from suspend, when the
    monotonic timers stood still), the keeper refreshes in the background and access_tokens
    publishes the new token."""
    backend, clock = CountingBackend(ScriptedBackend(token_ttl=HOUR)), Clock(time.time())
    async with start(backend, clock) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        signed_up = await core.auth.access_token()
        renewed = asyncio.Event()

        def publish(token: str | None) -> None:
            if token not in (signed_up, None):
                renewed.set()

        core.auth.access_tokens.subscribe(publish)
        clock.now += 2 * HOUR
        async with asyncio.timeout(10):
            await renewed.wait()
        assert backend.counts["refresh"] == 1
        assert core.auth.access_token_expires_at == clock.now + HOUR


@pytest.mark.usefixtures("often")
async def test_tokens_from_before_a_backward_jump_are_refreshed_at_once() -> None:
    """Tokens that arrived while the wall clock was a day ahead count from now, not from
    then, and the keeper refreshes them without waiting for a call."""
    backend, clock = CountingBackend(ScriptedBackend(token_ttl=HOUR)), Clock(time.time())
    clock.now += 24 * HOUR
    async with start(backend, clock) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        clock.now -= 24 * HOUR
        expires_at = core.auth.access_token_expires_at
        assert expires_at is not None
        assert expires_at <= clock.now + HOUR
        async with asyncio.timeout(10):
            await backend.wait_for_calls("refresh")
        assert await core.auth.access_token()


async def test_a_stored_session_from_the_future_is_refreshed_at_start() -> None:
    """A stored session obtained ten years from now is believed for no longer than its
    lifetime, and refreshed as soon as the core starts."""
    backend, clock = CountingBackend(ScriptedBackend(token_ttl=HOUR)), Clock(time.time())
    storage = MemorySessionStorage()
    clock.now += 10 * 365 * 24 * HOUR
    async with start(backend, clock, storage=storage) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    clock.now -= 10 * 365 * 24 * HOUR
    stored = await storage.load()
    assert isinstance(stored, Session)
    assert stored.obtained_at > clock.now
    async with start(backend, clock, storage=storage) as core:
        expires_at = core.auth.access_token_expires_at
        assert expires_at is not None
        assert expires_at <= clock.now + HOUR
        async with asyncio.timeout(10):
            await backend.wait_for_calls("refresh")


async def refresh(core: MimiCore) -> None:
    await core.auth.refresh()


async def sign_in_anew(core: MimiCore) -> None:
    await core.auth.log_out()
    await core.auth.authenticate(AuthRoute.sign_up_anonymously())


@pytest.mark.usefixtures("often")
@pytest.mark.parametrize("change", [refresh, sign_in_anew], ids=["recovery", "log-out-sign-up"])
async def test_a_session_change_ends_the_wait_a_retry_after_asked_for(
    change: Callable[[MimiCore], Awaitable[None]],
) -> None:
    """While the keeper waits out a long Retry-After, the app's own recovery or a new
    sign-in ends the wait: the next session is refreshed in the background when due."""
    backend, clock = CountingBackend(ScriptedBackend(token_ttl=HOUR)), Clock(time.time())
    async with start(backend, clock) as core:
        recorder = StateRecorder(core)
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        refuse_next_refresh_for_decades(backend)
        clock.now += 0.9 * HOUR
        async with asyncio.timeout(10):
            await recorder.wait_for(Transition.DEGRADED)
        await change(core)
        assert not core.auth.state.degraded
        before = backend.counts["refresh"]
        clock.now += 0.9 * HOUR
        async with asyncio.timeout(10):
            await backend.wait_for_calls("refresh", before + 1)


async def test_a_retry_after_is_honoured_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Retry-After decades long holds the keeper's next attempt back only up to
    LONGEST_ASKED_WAIT, then it recovers the session."""
    monkeypatch.setattr(_retry, "LONGEST_ASKED_WAIT", 0.05)
    backend, clock = CountingBackend(ScriptedBackend(token_ttl=HOUR)), Clock(time.time())
    retry = RetryPolicy(initial_delay=0.001, max_delay=0.001)
    async with start(backend, clock, retry=retry) as core:
        recorder = StateRecorder(core)
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        refuse_next_refresh_for_decades(backend)
        with pytest.raises(RateLimitedError):
            await core.auth.refresh()  # DEGRADED: the keeper takes over
        async with asyncio.timeout(10):
            await recorder.wait_for(Transition.RECOVERED)


@pytest.mark.parametrize(
    ("asked", "honoured"),
    [
        (5.0, 5.0),
        (0.0, 0.0),
        (-1.0, 0.0),
        (math.nan, 0.0),
        (math.inf, _retry.LONGEST_ASKED_WAIT),
        (DECADES, _retry.LONGEST_ASKED_WAIT),
    ],
)
def test_the_wait_honoured_of_what_the_service_asked(asked: float, honoured: float) -> None:
    """A wait asked for is honoured up to the bound; a negative or NaN one is ignored."""
    assert _retry.asked_wait(asked) == honoured
