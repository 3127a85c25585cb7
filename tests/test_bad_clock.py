"""A clock that gives no time is the clock's error, named, never blamed on the backend: at
start, in each command after start, and while a refresh is at the service (where it must not
spend the refresh token); a command close() stops as the clock goes wrong is still answered."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import cast

import pytest

from mimi_reactive import (
    AuthRoute,
    BackendCapabilities,
    BackendSession,
    ConfigurationError,
    CoreClosedError,
    LogOut,
    MemorySessionStorage,
    MimiConfiguration,
    MimiCore,
    RetryPolicy,
    Session,
    Transition,
)
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer
from mimi_reactive.testing import ScriptedBackend

from .conftest import CLIENT_ID
from .helpers import SIGN_UP, CountingBackend, TokenWatcher, event_names


def _broken_clock() -> float:
    raise RuntimeError("a broken clock")


BAD_CLOCKS: dict[str, Callable[[], object]] = {
    "NaN": lambda: math.nan,
    "infinity": lambda: math.inf,
    "past the year 5000": lambda: 1e300,
    "negative": lambda: -1.0,
    "a str": lambda: "now",
    "None": lambda: None,
    "raising": _broken_clock,
}


@pytest.mark.parametrize("clock", BAD_CLOCKS.values(), ids=BAD_CLOCKS.keys())
def test_a_clock_that_gives_no_time_is_refused_at_start_naming_the_clock(
    clock: Callable[[], float],
) -> None:
    """A clock that raises or gives no time since the epoch is a ConfigurationError naming
    the clock when the core starts, not an error later blamed on the backend."""
    with pytest.raises(ConfigurationError, match="the clock"):
        MimiCore.start(client_id="a", client_secret="s", backend=ScriptedBackend(), clock=clock)


class _GoingWrongClock:
    """A clock that reads ``now`` (1,000,000 unless moved) until ``wrong`` is set, then reads
    what it gives."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.wrong: Callable[[], object] | None = None

    def __call__(self) -> float:
        # Typed as the clock it poses as: gone wrong, it gives what it gives.
        return self.now if self.wrong is None else cast(float, self.wrong())


AFTER_START: dict[str, Callable[[MimiCore], Awaitable[object]]] = {
    "sign-up": lambda core: core.auth.authenticate(AuthRoute.sign_up_anonymously()),
    "refresh": lambda core: core.auth.refresh(),
    "access token": lambda core: core.auth.access_token(),
    "log-out": lambda core: core.auth.log_out(),
    "dispatched log-out": lambda core: core.auth.dispatch(LogOut()),
}
GONE_WRONG = {name: BAD_CLOCKS[name] for name in ("NaN", "infinity", "raising")}


@pytest.mark.parametrize("wrong", GONE_WRONG.values(), ids=GONE_WRONG.keys())
@pytest.mark.parametrize("command", AFTER_START.values(), ids=AFTER_START.keys())
async def test_a_clock_gone_wrong_after_start_fails_the_command_naming_the_clock(
    server: IdentityServer,
    client_secret: str,
    wrong: Callable[[], object],
    command: Callable[[MimiCore], Awaitable[object]],
) -> None:
    """A command reading a clock gone wrong since the start raises ConfigurationError naming
    the clock, not a backend error, calls no service and keeps the session."""
    clock = _GoingWrongClock()
    backend = CountingBackend(HttpBackend(server.url))
    async with MimiCore.start(
        client_id=CLIENT_ID, client_secret=client_secret, backend=backend, clock=clock
    ) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        before = (core.auth.state, core.auth.current_user, backend.total)
        clock.wrong = wrong
        with pytest.raises(ConfigurationError, match="the clock"):
            await command(core)
        assert (core.auth.state, core.auth.current_user, backend.total) == before
        clock.wrong = None
        await core.auth.refresh()  # the session lives on
        assert core.auth.current_user == before[1]


class _BreakingClockBackend(HttpBackend):
    """Breaks ``clock`` while its first refresh is at the service, the answer to come."""

    clock = _GoingWrongClock()
    breaks = True

    async def refresh(self, session: Session) -> BackendSession:
        issued = await super().refresh(session)
        if self.breaks:
            self.breaks = False
            self.clock.wrong = _broken_clock
        return issued


async def test_a_clock_going_wrong_during_a_refresh_spends_no_token(
    server: IdentityServer, client_secret: str
) -> None:
    """A clock that breaks while a refresh is at the service: the refresh raises the clock's
    ConfigurationError, but the renewed tokens are kept (stamped with the time read before
    the call), so the next refresh does not present the spent refresh token."""
    backend = _BreakingClockBackend(server.url)
    backend.clock = clock = _GoingWrongClock()
    async with MimiCore.start(
        client_id=CLIENT_ID, client_secret=client_secret, backend=backend, clock=clock
    ) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        with pytest.raises(ConfigurationError, match="the clock"):
            await core.auth.refresh()
        clock.wrong = None
        await core.auth.refresh()  # presents the renewed refresh token, not the spent one
        assert core.auth.current_user == user
        assert core.auth.state.transition is Transition.ANONYMOUS_CREATED  # nothing ended


class _BreakingClockScripted(ScriptedBackend):
    """Breaks ``clock`` as it signs a user up, answering at once (no wait on the loop)."""

    clock = _GoingWrongClock()

    async def authenticate(self, route: AuthRoute, session: Session | None) -> BackendSession:
        issued = await super().authenticate(route, session)
        self.clock.wrong = lambda: math.nan
        return issued


async def test_a_clock_going_wrong_in_a_command_run_at_once_is_the_clocks_error() -> None:
    """A sign-up that never waits, the clock gone wrong as it ends: ConfigurationError naming
    the clock (not 'the command failed unexpectedly'), and the user signed up is held."""
    backend = _BreakingClockScripted()
    backend.clock = clock = _GoingWrongClock()
    async with MimiCore.start(backend=backend, clock=clock) as core:
        with pytest.raises(ConfigurationError, match="the clock"):
            await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        assert core.auth.state.transition is Transition.ANONYMOUS_CREATED
        assert core.auth.current_user is not None


class _FailedReadings:
    """A clock's fault (it raises) that counts the readings it failed and lets a test wait
    for them."""

    def __init__(self) -> None:
        self.count = 0
        self._read = asyncio.Event()

    def __call__(self) -> object:
        self.count += 1
        self._read.set()
        return _broken_clock()

    async def wait_for(self, count: int) -> None:
        """Wait until ``count`` readings failed (bound it with a timeout)."""
        while self.count < count:
            self._read.clear()
            await self._read.wait()


HOUR = 3600.0
# The keeper's slow pause after a failure: 10 ms, so it reads the clock again and again.
QUICK_RETRY = MimiConfiguration(retry=RetryPolicy(initial_delay=0.001, max_delay=0.01))


async def _signed_up_then_clock_failing(
    core: MimiCore, clock: _GoingWrongClock, caplog: pytest.LogCaptureFixture
) -> tuple[str, TokenWatcher]:
    """Sign up, then make ``clock`` fail until the keeper has read it three times (again
    after its pause, twice), logged once: the access token signed up with, and a watcher of
    the tokens published from then on."""
    await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    signed_up = await core.auth.access_token()
    tokens, failed = TokenWatcher(core), _FailedReadings()
    clock.wrong = failed
    async with asyncio.timeout(10):
        await failed.wait_for(3)
    assert event_names(caplog).count("session.clock_failed") == 1
    return signed_up, tokens


@pytest.mark.usefixtures("often")
async def test_a_clock_gone_wrong_while_a_renewal_is_awaited_stops_no_renewal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A clock that goes wrong while the keeper waits for the tokens to fall due is logged
    once (session.clock_failed) however often the keeper reads it; once it recovers, the
    keeper renews the due tokens without a call and access_tokens publishes the new token."""
    caplog.set_level(logging.WARNING, logger="mimi_reactive")
    clock, backend = _GoingWrongClock(), CountingBackend(ScriptedBackend(token_ttl=HOUR))
    async with MimiCore.start(backend=backend, clock=clock, configuration=QUICK_RETRY) as core:
        signed_up, tokens = await _signed_up_then_clock_failing(core, clock, caplog)
        clock.now += 0.9 * HOUR  # due: the keeper renews, nothing else does
        clock.wrong = None
        async with asyncio.timeout(10):
            await tokens.wait_for(lambda token: token not in (signed_up, None))
        assert backend.counts["refresh"] == 1
        assert core.auth.access_token_expires_at == clock.now + HOUR
        clock.wrong = _FailedReadings()  # a second run of failures is logged again
        async with asyncio.timeout(10):
            await clock.wrong.wait_for(1)
        assert event_names(caplog).count("session.clock_failed") == 2
        clock.wrong = None


@pytest.mark.usefixtures("often")
async def test_a_clock_gone_wrong_while_a_token_is_watched_stops_no_publishing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With a backend that cannot refresh, a clock that goes wrong while the keeper watches
    the access token is logged once; once it recovers, access_tokens publishes None when
    the token is no longer usable, without a call."""
    caplog.set_level(logging.WARNING, logger="mimi_reactive")
    clock = _GoingWrongClock()
    backend = ScriptedBackend(token_ttl=HOUR, capabilities=BackendCapabilities(refresh=False))
    async with MimiCore.start(backend=backend, clock=clock, configuration=QUICK_RETRY) as core:
        signed_up, tokens = await _signed_up_then_clock_failing(core, clock, caplog)
        clock.now += HOUR - 10.0  # within the leeway: no longer handed out
        clock.wrong = None
        async with asyncio.timeout(10):
            await tokens.wait_for(lambda token: token is None)
        assert tokens.tokens == [signed_up, None]


async def test_a_clock_going_wrong_as_a_session_is_applied_still_tells_everyone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A clock that goes wrong as a sign-up's session is applied: the command raises the
    clock's error, yet the keeper hears of the session (session.clock_failed at once), no
    token is handed out meanwhile, and once the clock recovers access_tokens publishes it."""
    caplog.set_level(logging.WARNING, logger="mimi_reactive")
    backend = _BreakingClockScripted(token_ttl=HOUR)
    backend.clock = clock = _GoingWrongClock()
    async with MimiCore.start(backend=backend, clock=clock, configuration=QUICK_RETRY) as core:
        tokens = TokenWatcher(core)
        with pytest.raises(ConfigurationError, match="the clock"):
            await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        assert core.auth.current_user is not None
        assert event_names(caplog).count("session.clock_failed") == 1  # the keeper was told
        assert tokens.tokens == [None]
        clock.wrong = None
        async with asyncio.timeout(10):
            await tokens.wait_for(lambda token: token is not None)
        assert tokens.tokens[-1] == await core.auth.access_token()


class _StuckOnceArmed(ScriptedBackend):
    """Once ``armed``, a sign-up or log-out everywhere that reaches the service breaks
    ``clock`` and is never answered."""

    def __init__(self, clock: _GoingWrongClock) -> None:
        super().__init__()
        self.clock = clock
        self.armed = False
        self.at_the_service = asyncio.Event()

    async def authenticate(self, route: AuthRoute, session: Session | None) -> BackendSession:
        await self._stuck()
        return await super().authenticate(route, session)

    async def revoke(self, session: Session, *, everywhere: bool = False) -> None:
        await self._stuck()
        await super().revoke(session, everywhere=everywhere)

    async def _stuck(self) -> None:
        if self.armed:
            self.clock.wrong = _broken_clock
            self.at_the_service.set()
            await asyncio.Event().wait()


# The command close() stops at the service, from a user logged in (or not): a log-out
# everywhere (the storage cleared already: a log-out to publish), a sign-up (nothing stored).
STOPPED: dict[str, tuple[bool, Callable[[MimiCore], Awaitable[object]]]] = {
    "log-out everywhere": (True, lambda core: core.auth.log_out(everywhere=True)),
    "sign-up": (False, lambda core: core.auth.authenticate(SIGN_UP)),
}


@pytest.mark.parametrize("case", STOPPED.values(), ids=STOPPED.keys())
async def test_a_command_close_stops_as_the_clock_goes_wrong_is_answered(
    case: tuple[bool, Callable[[MimiCore], Awaitable[object]]],
) -> None:
    """close(grace_period=0) stopping a command at the service after the clock went wrong:
    close returns, the caller hears CoreClosedError (not the clock's error, nor nothing),
    and the last state published says what the storage holds (nobody)."""
    logged_in, command = case
    clock = _GoingWrongClock()
    backend, storage = _StuckOnceArmed(clock), MemorySessionStorage()
    core = await MimiCore.start(backend=backend, clock=clock, storage=storage)
    if logged_in:
        await core.auth.authenticate(SIGN_UP)
    completed: list[bool] = []
    core.auth.states.subscribe(on_completed=lambda: completed.append(True))
    backend.armed = True
    running = asyncio.ensure_future(command(core))
    async with asyncio.timeout(10):
        await backend.at_the_service.wait()
        await core.close(grace_period=0)
        with pytest.raises(CoreClosedError):
            await running
    assert core.auth.current_user is None
    assert await storage.load() is None
    assert completed == [True]
