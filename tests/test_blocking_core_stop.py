"""A BlockingMimiCore whose loop stops (a subscriber's sys.exit(), a close) never leaves a
dispatched command's future or a waiting call unanswered; Ctrl-C in a call leaves its with
block at once."""

from __future__ import annotations

import asyncio
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
    MimiCore,
    Outcome,
    SessionState,
    Transition,
)
from mimi_reactive.testing import ScriptedBackend

from .helpers import event_names, finishes, run_python, start_blocking

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


# An app's asyncio.run() ends with the core unclosed while an executor thread waits on a
# dispatched command: asyncio.run waits for that thread, so an unanswered future hangs the
# program at exit. Each script ends only if the thread's dispatch fails with CoreClosedError.
_UNCLOSED_AT_EXIT = """
import asyncio, threading
from mimi_reactive import CoreClosedError, LogOut, AuthRoute, MimiCore
from mimi_reactive.testing import Reply, ScriptedBackend

def wait(future, ready=None):
    if ready is not None:
        ready.wait()
        future = future()
    try:
        future.result()
    except CoreClosedError:
        print("closed")

async def main():
    backend = ScriptedBackend()
    core = await MimiCore.start(client_id="app", client_secret="s", backend=backend)
    loop = asyncio.get_running_loop()
    {case}

asyncio.run(main())
"""
_CASES = {
    # the worker has ended (its streams completed) when the thread dispatches
    "after the worker ended": """ended = threading.Event()
    core.auth.states.subscribe(on_completed=ended.set)
    loop.run_in_executor(None, wait, lambda: core.auth.dispatch(LogOut()), ended)""",
    # queued behind a command that never ends when the loop cancels the worker
    "queued behind a running command": """backend.script(Reply.never())
    loop.create_task(core.auth.authenticate(AuthRoute.sign_up_anonymously()))
    await asyncio.sleep(0)
    loop.run_in_executor(None, wait, core.auth.dispatch(LogOut()))""",
}


@pytest.mark.parametrize("case", _CASES.values(), ids=list(_CASES))
def test_an_unclosed_core_answers_a_waiting_thread_as_asyncio_run_ends(case: str) -> None:
    """asyncio.run() ending with the core unclosed fails a thread's dispatched command with
    CoreClosedError (queued, or dispatched after), so the program exits instead of hanging."""
    done = run_python("-W", "ignore", "-c", _UNCLOSED_AT_EXIT.format(case=case))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "closed\n"


def test_a_thread_dispatching_after_the_worker_ended_is_refused_at_once() -> None:
    """Once the loop cancelled the worker of an unclosed core, a thread's dispatch fails with
    CoreClosedError at once: handed to the loop, it could be lost as the loop closes."""
    loop = asyncio.new_event_loop()
    try:
        core = loop.run_until_complete(MimiCore.start(backend=ScriptedBackend()))
        tasks = asyncio.all_tasks(loop)
        for task in tasks:  # what asyncio.run does as the app's main() returns
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        futures: list[Future[Outcome]] = []
        thread = threading.Thread(target=lambda: futures.append(core.auth.dispatch(LogOut())))
        thread.start()
        thread.join()
        refused = futures[0].done()  # before the loop runs again to close the core
        loop.run_until_complete(core.close())
    finally:
        loop.close()
    assert refused
    assert isinstance(futures[0].exception(), CoreClosedError)


_CTRL_C_SCRIPT = """
import os, signal, threading, time
from mimi_reactive import AuthRoute, BlockingMimiCore
from mimi_reactive.testing import Reply, ScriptedBackend

class Hanging(ScriptedBackend):
    async def authenticate(self, route, session):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the service does not answer
        return await super().authenticate(route, session)

began = time.monotonic()
for _ in range({rounds}):
    backend = Hanging()
    backend.script(Reply.never())
    try:
        with BlockingMimiCore.start(backend=backend, close_grace_period=60) as core:
            {call}
    except KeyboardInterrupt:
        assert core.auth.state.transition.name == "INITIAL", core.auth.state
        assert threading.active_count() == 1, threading.enumerate()
    else:
        raise AssertionError("the call returned")
print("interrupted", round(time.monotonic() - began))
"""


@pytest.mark.parametrize(
    "call",
    [
        "core.auth.authenticate(AuthRoute.sign_up_anonymously())",
        "core.auth.dispatch(AuthRoute.sign_up_anonymously()).result()",
    ],
)
def test_ctrl_c_in_a_call_leaves_the_with_block_at_once(call: str) -> None:
    """Ctrl-C while a call waits on a service that never answers ends the with block at
    once, the command cancelled and the core's thread ended, not after the 60 s grace period
    (20 rounds; the script would time out at 60 s)."""
    done = run_python("-c", _CTRL_C_SCRIPT.format(rounds=ROUNDS, call=call))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("interrupted"), done.stdout


def test_a_subscriber_exiting_stops_the_core_and_the_waiting_call_raises_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """sys.exit() in a subscriber ends the core, as it would an async app's loop: the call
    waiting raises that SystemExit, later calls CoreClosedError, and close() returns."""
    caplog.set_level(logging.ERROR, logger="mimi_reactive")
    core = start_blocking()

    def exit_on_log_out(state: SessionState) -> None:
        if state.transition is Transition.LOGGED_OUT:
            raise SystemExit("logged out: bye")

    core.auth.states.subscribe(exit_on_log_out)
    core.auth.authenticate(AuthRoute.sign_up_anonymously())
    raised: list[BaseException] = []

    def log_out() -> None:
        try:
            core.auth.log_out()
        except BaseException as error:  # the test looks at what it is
            raised.append(error)

    assert finishes(log_out)
    assert [str(error) for error in raised] == ["logged out: bye"]
    assert isinstance(raised[0], SystemExit)
    with pytest.raises(CoreClosedError):
        core.auth.access_token()
    assert finishes(core.close)
    assert "core.thread_stopped" in event_names(caplog)


def test_a_script_whose_subscriber_exits_ends_with_its_message() -> None:
    """A script blocked in log_out() whose subscriber calls sys.exit("...") exits with it."""
    script = (
        "import sys\n"
        "from mimi_reactive import AuthRoute, BlockingMimiCore, Transition\n"
        "from mimi_reactive.testing import ScriptedBackend\n"
        "core = BlockingMimiCore.start(backend=ScriptedBackend())\n"
        "def on_state(state):\n"
        "    if state.transition is Transition.LOGGED_OUT:\n"
        "        sys.exit('logged out: bye')\n"
        "core.auth.states.subscribe(on_state)\n"
        "core.auth.authenticate(AuthRoute.sign_up_anonymously())\n"
        "core.auth.log_out()\n"
        "print('log_out returned')\n"
    )
    done = run_python("-c", script)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip().endswith("logged out: bye")
