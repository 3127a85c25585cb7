"""A BlockingMimiCore whose loop stops (a subscriber's sys.exit(), a close) never leaves a
dispatched command's future unanswered."""

from __future__ import annotations

import gc
import logging
import threading
from concurrent.futures import Future

import pytest

from mimi_reactive import (
    AuthRoute,
    BlockingMimiCore,
    CoreClosedError,
    LogOut,
    Outcome,
    SessionState,
    Transition,
)
from mimi_reactive.testing import ScriptedBackend

ROUNDS = 20


def test_a_subscriber_exiting_answers_the_dispatched_and_the_queued_commands(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """sys.exit() in a subscriber while a dispatched log-out runs: its future and the one of
    a command queued behind it raise that SystemExit, and never hang (20 rounds)."""
    caplog.set_level(logging.ERROR, logger="mimi_reactive")
    for _ in range(ROUNDS):
        exit_while_a_dispatched_log_out_runs()


def exit_while_a_dispatched_log_out_runs() -> None:
    core = BlockingMimiCore.start(backend=ScriptedBackend())
    core.auth.authenticate(AuthRoute.sign_up_anonymously())
    queued: list[Future[Outcome]] = []

    def exit_on_log_out(state: SessionState) -> None:
        if state.transition is Transition.LOGGED_OUT:
            queued.append(core.auth.dispatch(AuthRoute.sign_up_anonymously()))
            raise SystemExit("logged out: bye")

    core.auth.states.subscribe(exit_on_log_out)
    running = core.auth.dispatch(LogOut())
    for future in (running, *queued):
        error = future.exception(timeout=10)  # TimeoutError if it hangs
        assert isinstance(error, SystemExit)
        assert str(error) == "logged out: bye"
    assert len(queued) == 1
    assert isinstance(core.auth.dispatch(LogOut()).exception(timeout=10), CoreClosedError)
    core.close()


def test_a_blocking_call_stopped_by_a_subscriber_leaves_asyncio_nothing_to_report(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The blocking log_out() a subscriber's sys.exit() stopped raises that SystemExit, and
    the task that ran it on the loop is not reported as an unretrieved error when it goes."""
    caplog.set_level(logging.ERROR)
    core = BlockingMimiCore.start(backend=ScriptedBackend())
    core.auth.authenticate(AuthRoute.sign_up_anonymously())

    def exit_on_log_out(state: SessionState) -> None:
        if state.transition is Transition.LOGGED_OUT:
            raise SystemExit("logged out: bye")

    core.auth.states.subscribe(exit_on_log_out)
    with pytest.raises(SystemExit, match="logged out: bye"):
        core.auth.log_out()
    core.close()
    del core
    gc.collect()  # asyncio reports a task's unretrieved error as the task goes
    assert "exception was never retrieved" not in caplog.text


def test_a_dispatch_after_the_loop_stopped_fails_at_once() -> None:
    """A dispatch landing after close() stopped the loop but before the loop is closed gets
    a future failed with CoreClosedError, not one left on a loop that will never run it
    (20 rounds; the loop's close is held open to land there)."""
    for _ in range(ROUNDS):
        dispatch_while_the_stopped_loop_is_closed()


def dispatch_while_the_stopped_loop_is_closed() -> None:
    core = BlockingMimiCore.start(backend=ScriptedBackend())
    loop = core._loop.loop
    stopped, go_on = threading.Event(), threading.Event()
    close_loop = loop.close

    def close_when_told() -> None:
        stopped.set()
        go_on.wait(10)
        close_loop()

    loop.close = close_when_told  # type: ignore[method-assign]
    closer = threading.Thread(target=core.close, daemon=True)
    closer.start()
    assert stopped.wait(10)
    try:
        late = core.auth.dispatch(LogOut())
    finally:
        go_on.set()
    assert isinstance(late.exception(timeout=10), CoreClosedError)
    closer.join(10)
    assert not closer.is_alive()
