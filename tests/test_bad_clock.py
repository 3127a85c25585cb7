"""A clock that gives no time is the clock's error, named, never blamed on the backend: at
start, in each command after start, and while a refresh is at the service (where it must not
spend the refresh token)."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import cast

import pytest

from mimi_reactive import (
    AuthRoute,
    BackendSession,
    ConfigurationError,
    LogOut,
    MimiCore,
    Session,
    Transition,
)
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer
from mimi_reactive.testing import ScriptedBackend

from .conftest import CLIENT_ID
from .helpers import CountingBackend


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
    """A clock that reads 1,000,000 until ``wrong`` is set, then reads what it gives."""

    def __init__(self) -> None:
        self.wrong: Callable[[], object] | None = None

    def __call__(self) -> float:
        # Typed as the clock it poses as: gone wrong, it gives what it gives.
        return 1_000_000.0 if self.wrong is None else cast(float, self.wrong())


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
