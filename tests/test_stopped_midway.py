"""A command stopped midway (close() cancelling it, or a CancelledError raised in it) after
it cleared the storage publishes that log-out; a subscriber's sys.exit() as it hears stops the
core as it does in a command: every caller is answered, none waits for ever."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from mimi_reactive import (
    BlockingMimiCore,
    CoreClosedError,
    LogOut,
    MimiCore,
    Session,
    SessionState,
    Transition,
)
from mimi_reactive.testing import ScriptedBackend

from .helpers import SIGN_UP, library_events


def _exit_on_log_out(state: SessionState) -> None:
    if state.transition is Transition.LOGGED_OUT:
        raise SystemExit("logged out: bye")


class _EverywhereNeverAnswered(ScriptedBackend):
    """Its log-out everywhere reaches the service (told on any thread) and is never answered;
    it counts its closes."""

    def __init__(self) -> None:
        super().__init__()
        self.at_the_service = threading.Event()
        self.closes = 0

    async def revoke(self, session: Session, *, everywhere: bool = False) -> None:
        self.at_the_service.set()
        await asyncio.Event().wait()

    async def close(self) -> None:
        self.closes += 1
        await super().close()


def test_a_subscriber_exiting_as_close_stops_a_dispatched_command_answers_it(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close(grace_period=0) stopping a dispatched log-out everywhere at the service, and a
    subscriber's sys.exit() as its cleared storage is published: the dispatched future raises
    that SystemExit (it is not left unanswered), the close still releases the backend, and
    the loop's end lets it finish before its own close, stopping neither midway (the one
    error logged is the thread stopped by SystemExit, no RuntimeError of a loop stopped
    before its work was done)."""
    caplog.set_level(logging.ERROR, logger="mimi_reactive")
    backend = _EverywhereNeverAnswered()
    core = BlockingMimiCore.start(backend=backend)
    closes: list[str] = []
    close = core._core.close

    async def recorded_close(*, grace_period: float | None = None) -> None:
        closes.append("begins")
        try:
            await close(grace_period=grace_period)
        finally:
            closes.append("ends")

    monkeypatch.setattr(core._core, "close", recorded_close)
    core.auth.authenticate(SIGN_UP)
    core.auth.states.subscribe(_exit_on_log_out)
    running = core.auth.dispatch(LogOut(everywhere=True))
    assert backend.at_the_service.wait(10)
    core.close(grace_period=0)
    error = running.exception(timeout=10)  # TimeoutError if it was left unanswered
    assert isinstance(error, SystemExit)
    assert str(error) == "logged out: bye"
    assert backend.closes == 1
    assert core.auth.current_user is None
    errors = [(record.getMessage(), record.levelname) for record in library_events(caplog)]
    assert errors == [("core.thread_stopped error=SystemExit", "ERROR")]
    assert closes == ["begins", "ends"] * 2  # the app's close, then the loop's end's


class _EverywhereCancelledAtOnce(ScriptedBackend):
    """Its log-out everywhere raises CancelledError itself, before any wait (raised, not
    delivered: the core cannot go on)."""

    async def revoke(self, session: Session, *, everywhere: bool = False) -> None:
        raise asyncio.CancelledError


async def test_a_subscriber_exiting_as_a_raised_cancellation_is_published_stops_the_core() -> None:
    """A log-out everywhere run at once whose backend raises CancelledError, and a
    subscriber's sys.exit() as its cleared storage is published: the caller hears that
    SystemExit, and the core stops as for the cancellation (later commands CoreClosedError,
    the streams complete)."""
    core = await MimiCore.start(backend=_EverywhereCancelledAtOnce())
    try:
        await core.auth.authenticate(SIGN_UP)
        completed: list[bool] = []
        core.auth.states.subscribe(_exit_on_log_out, on_completed=lambda: completed.append(True))
        with pytest.raises(SystemExit, match="logged out: bye"):
            await core.auth.run(LogOut(everywhere=True))
        assert core.auth.current_user is None
        assert completed == [True]
        with pytest.raises(CoreClosedError):
            await core.auth.run(LogOut())
    finally:
        await core.close()
