"""The keeper's timing: a wall clock that jumps, a Retry-After too long to honour, a
session change that ends a wait between retries, and an access token that stops being usable
while no renewal succeeds."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import pytest

from mimi_reactive import (
    AuthRoute,
    BackendCapabilities,
    BackendSession,
    MemorySessionStorage,
    MimiConfiguration,
    MimiCore,
    RateLimitedError,
    RetryPolicy,
    Session,
    Transition,
    TransportError,
    _retry,
)
from mimi_reactive._store import SessionStore
from mimi_reactive.testing import Reply, ScriptedBackend, StateRecorder

from .helpers import CountingBackend, TokenWatcher
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


class Unreachable(ScriptedBackend):
    """Its refreshes fail with ``TransportError`` while ``offline`` (the service down)."""

    def __init__(self, capabilities: BackendCapabilities | None = None) -> None:
        super().__init__(token_ttl=HOUR, capabilities=capabilities)
        self.offline = False

    async def refresh(self, session: Session) -> BackendSession:
        if self.offline:
            raise TransportError("the service is unreachable")
        return await super().refresh(session)


def replayed(core: MimiCore) -> str | None:
    """What a subscriber arriving now (a bot reconnecting its WebSocket) is handed."""
    late: list[str | None] = []
    core.auth.access_tokens.subscribe(late.append)
    assert len(late) == 1
    return late[0]


async def keeper_retries(core: MimiCore) -> None:
    """The keeper's next attempt, due within milliseconds, renews the session."""


async def app_refreshes(core: MimiCore) -> None:
    """The keeper waits minutes between attempts: the app's own refresh renews it."""
    await core.auth.refresh()


@pytest.mark.usefixtures("often")
@pytest.mark.parametrize(
    ("retry", "recover"),
    [
        (RetryPolicy(initial_delay=0.001, max_delay=0.01), keeper_retries),
        (RetryPolicy(initial_delay=600.0, max_delay=600.0), app_refreshes),
    ],
    ids=["retrying", "waiting-between-attempts"],
)
async def test_a_token_that_stops_being_usable_while_renewals_fail_is_taken_off(
    retry: RetryPolicy,
    recover: Callable[[MimiCore], Awaitable[None]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the service is unreachable, the access token stays on access_tokens until it is
    no longer usable, then None is published (and replayed to a late subscriber) with no
    new state; the renewed token follows once a renewal succeeds."""
    backend, clock = Unreachable(), Clock(time.time())
    checked = asyncio.Event()
    recheck_token = SessionStore.recheck_token

    def spy(store: SessionStore) -> None:
        recheck_token(store)
        checked.set()

    monkeypatch.setattr(SessionStore, "recheck_token", spy)
    async with start(CountingBackend(backend), clock, retry=retry) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        signed_up = await core.auth.access_token()
        expires_at = core.auth.access_token_expires_at
        assert expires_at is not None
        watcher, recorder = TokenWatcher(core), StateRecorder(core)
        backend.offline = True
        clock.now += 0.9 * HOUR  # due, still usable: the keeper's renewals fail
        async with asyncio.timeout(10):
            await recorder.wait_for(Transition.DEGRADED)
            for _ in range(2):  # the keeper looks at the token again and again meanwhile
                checked.clear()
                await checked.wait()
        assert replayed(core) == signed_up
        clock.now = expires_at - 10.0  # within the leeway (30 s): no longer handed out
        async with asyncio.timeout(10):
            await watcher.wait_for(lambda token: token is None)
        assert replayed(core) is None
        assert core.auth.state.degraded
        assert recorder.transitions[-1] is Transition.DEGRADED
        backend.offline = False
        await recover(core)
        async with asyncio.timeout(10):
            await watcher.wait_for(lambda token: token is not None)
        renewed = await core.auth.access_token()
        assert watcher.tokens == [signed_up, None, renewed]
        assert renewed != signed_up
        assert replayed(core) == renewed


@pytest.mark.usefixtures("often")
async def test_a_token_no_backend_renews_is_taken_off_when_no_longer_usable() -> None:
    """With a backend that cannot refresh, access_tokens publishes None once the token is
    no longer usable; a new sign-in publishes its token."""
    backend, clock = Unreachable(BackendCapabilities(refresh=False)), Clock(time.time())
    async with start(CountingBackend(backend), clock) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        signed_up = await core.auth.access_token()
        watcher = TokenWatcher(core)
        clock.now += HOUR - 10.0
        async with asyncio.timeout(10):
            await watcher.wait_for(lambda token: token is None)
        assert replayed(core) is None
        await core.auth.log_out()
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        signed_in = await core.auth.access_token()
        assert watcher.tokens == [signed_up, None, signed_in]
