"""core.auth.access_tokens: the current access token as a stream."""

from __future__ import annotations

import asyncio
import time

import pytest

from mimi_reactive import (
    AuthRoute,
    BackendSession,
    LogOut,
    MemorySessionStorage,
    MimiCore,
    Session,
)
from mimi_reactive.testing import ScriptedBackend

from .server_helpers import Clock


async def test_sign_in_and_each_refresh_emit_the_new_token_once() -> None:
    """Subscribing replays None; a sign-in and each refresh emit the new token once."""
    async with MimiCore.start(client_id="a", client_secret="s", backend=ScriptedBackend()) as core:
        tokens: list[str | None] = []
        core.auth.access_tokens.subscribe(tokens.append)
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        first = await core.auth.access_token()
        await core.auth.refresh()
        second = await core.auth.access_token()
        await core.auth.access_token()  # fresh: no refresh, no emission
        assert tokens == [None, first, second]
        assert first != second


async def test_log_out_emits_none() -> None:
    """Logging out emits None, and a late subscriber gets None replayed."""
    async with MimiCore.start(client_id="a", client_secret="s", backend=ScriptedBackend()) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        token = await core.auth.access_token()
        tokens: list[str | None] = []
        core.auth.access_tokens.subscribe(tokens.append)
        await core.auth.log_out()
        assert tokens == [token, None]
        late: list[str | None] = []
        core.auth.access_tokens.subscribe(late.append)
        assert late == [None]


async def test_a_restored_session_replays_its_token() -> None:
    """A core that restores a stored session replays that session's token."""
    storage = MemorySessionStorage()
    backend = ScriptedBackend()
    async with MimiCore.start(
        client_id="a", client_secret="s", backend=backend, storage=storage
    ) as first:
        await first.auth.authenticate(AuthRoute.sign_up_anonymously())
        token = await first.auth.access_token()
    async with MimiCore.start(
        client_id="a", client_secret="s", backend=backend, storage=storage
    ) as second:
        tokens: list[str | None] = []
        second.auth.access_tokens.subscribe(tokens.append)
        assert tokens == [token]


async def test_a_restored_token_that_expired_is_not_replayed() -> None:
    """A stored session whose access token expired while the app was closed replays None;
    the renewed token follows once the core has it."""
    storage = MemorySessionStorage()
    backend = ScriptedBackend(token_ttl=60.0)
    async with MimiCore.start(
        client_id="a", client_secret="s", backend=backend, storage=storage
    ) as first:
        await first.auth.authenticate(AuthRoute.sign_up_anonymously())
        stale = await first.auth.access_token()
    later = time.time() + 3600  # the app comes back an hour later
    async with MimiCore.start(
        client_id="a", client_secret="s", backend=backend, storage=storage, clock=lambda: later
    ) as second:
        tokens: list[str | None] = []
        second.auth.access_tokens.subscribe(tokens.append)
        assert tokens[0] is None
        renewed = await second.auth.access_token()
        assert renewed != stale
        assert tokens[-1] == renewed
        assert stale not in tokens


async def test_a_slow_or_raising_subscriber_harms_no_one(caplog: pytest.LogCaptureFixture) -> None:
    """A subscriber that raises is logged and skipped, a slow one only delays; the others
    get every token in order, and the commands complete."""

    def explode(token: str | None) -> None:
        raise RuntimeError("subscriber bug")

    def dawdle(token: str | None) -> None:
        time.sleep(0.01)  # a consumer doing slow work on each token

    async with MimiCore.start(client_id="a", client_secret="s", backend=ScriptedBackend()) as core:
        core.auth.access_tokens.subscribe(explode)
        core.auth.access_tokens.subscribe(dawdle)
        tokens: list[str | None] = []
        core.auth.access_tokens.subscribe(tokens.append)
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        first = await core.auth.access_token()
        await core.auth.refresh()
        second = await core.auth.access_token()
        await core.auth.log_out()
        assert tokens == [None, first, second, None]
    assert "stream.subscriber_failed" in caplog.text


async def test_expires_at_is_the_lifetime_from_when_the_token_arrived() -> None:
    """access_token_expires_at is the service's lifetime counted on the client's clock from
    the sign-in or the refresh that brought the token, and None with nobody logged in."""
    now = [1_000_000.0]
    backend = ScriptedBackend(token_ttl=600.0)
    async with MimiCore.start(
        client_id="a", client_secret="s", backend=backend, clock=lambda: now[0]
    ) as core:
        assert core.auth.access_token_expires_at is None
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        assert core.auth.access_token_expires_at == 1_000_600.0
        now[0] += 100.0
        await core.auth.refresh()
        assert core.auth.access_token_expires_at == 1_000_700.0
        await core.auth.log_out()
        assert core.auth.access_token_expires_at is None


async def test_a_token_without_a_lifetime_never_expires() -> None:
    """A service that gives no lifetime: the token has no expiry to show."""
    async with MimiCore.start(
        client_id="a", client_secret="s", backend=ScriptedBackend(token_ttl=None)
    ) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        assert core.auth.access_token_expires_at is None


class HeldRefreshBackend(ScriptedBackend):
    """Its refreshes wait until released, and it keeps the access tokens they issue."""

    def __init__(self) -> None:
        super().__init__(token_ttl=100.0)
        self.refreshing, self.released = asyncio.Event(), asyncio.Event()
        self.refreshed: list[str] = []

    async def refresh(self, session: Session) -> BackendSession:
        self.refreshing.set()
        await self.released.wait()
        fresh = await super().refresh(session)
        self.refreshed.append(fresh.tokens.access_token)
        return fresh


@pytest.mark.parametrize(
    "queued_behind",
    [LogOut(), AuthRoute.sign_up_anonymously()],
    ids=["log_out", "switch_user"],
)
async def test_access_token_returns_its_refresh_token_when_a_command_queued_behind_it_ran(
    queued_behind: LogOut | AuthRoute,
) -> None:
    """access_token() that must renew returns the token its own refresh got, even when a
    log-out or a switch of user queued right behind that refresh has run by the time it
    resumes (it used to re-read the store's session: an AssertionError, or the next user's)."""
    backend, clock = HeldRefreshBackend(), Clock(time.time())
    async with MimiCore.start(
        client_id="a", client_secret="s", backend=backend, clock=clock
    ) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        clock.now += 95.0  # the token is no longer handed out: access_token() renews it
        token = asyncio.ensure_future(core.auth.access_token())
        async with asyncio.timeout(10):
            await backend.refreshing.wait()
            after = core.auth.dispatch(queued_behind)
            backend.released.set()
            assert await token == backend.refreshed[-1]
            assert (await after).error is None
