"""Closing a BlockingMimiCore from where it cannot wait (a signal handler, a subscriber), with
a thread dispatching in a loop, forgotten, or in a forked process."""

from __future__ import annotations

import gc
import threading
import time
import warnings
from collections.abc import Callable

import pytest

from mimi_reactive import (
    AuthRoute,
    BlockingAnonymousAuthManager,
    BlockingMimiCore,
    CoreClosedError,
    LogOut,
    SessionState,
    Success,
    Transition,
)
from mimi_reactive.testing import ScriptedBackend

from .helpers import run_python, start_blocking

ROUNDS = 20

_SIGNAL_SCRIPT = """
import faulthandler, os, signal, threading
from mimi_reactive import BlockingMimiCore, CoreClosedError, LogOut
from mimi_reactive.testing import ScriptedBackend
faulthandler.dump_traceback_later(30, exit=True)
for _ in range({rounds}):
    core = BlockingMimiCore.start(backend=ScriptedBackend())
    stopped = threading.Event()
    def on_term(signum, frame):
        core.close()
        stopped.set()
    signal.signal(signal.SIGTERM, on_term)
    threading.Timer(0.01, os.kill, (os.getpid(), signal.SIGTERM)).start()
    while not stopped.is_set():
        try:
            {call}
        except CoreClosedError:
            pass
    core.close()  # waits for the end the handler's close scheduled
    try:
        core.auth.dispatch(LogOut()).result()
    except CoreClosedError:
        pass
    else:
        raise AssertionError("a dispatch after close ran")
print("closed", threading.active_count())
"""


@pytest.mark.parametrize("call", ["core.auth.dispatch(LogOut())", "core.auth.run(LogOut())"])
def test_a_signal_handler_closing_the_core_mid_call_returns(call: str) -> None:
    """A SIGTERM handler calling close() while the main thread is inside a dispatch or a
    blocking call returns at once, and the core ends (20 rounds)."""
    done = run_python("-c", _SIGNAL_SCRIPT.format(rounds=ROUNDS, call=call))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "closed 1\n"


# One SIGALRM a round, at a random moment of the main thread's loop of calls: inside a
# dispatch, a command's result() (holding its future's lock, which the loop needs), or a call.
_SIGNAL_MID_CALL_SCRIPT = """
import faulthandler, random, signal
from mimi_reactive import AuthRoute, BlockingMimiCore, CoreClosedError, LogOut
from mimi_reactive.testing import ScriptedBackend
faulthandler.dump_traceback_later(40, exit=True)
for _ in range({rounds}):
    core = BlockingMimiCore.start(backend=ScriptedBackend())
    handled = []
    def on_alarm(signum, frame):
        {handler}
        handled.append(signum)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, random.uniform(0.0001, 0.003))
    while not handled:
        try:
            {call}
        except CoreClosedError:
            pass
    core.close()
print("done")
"""
_HANDLERS = {"close": "core.close()", "dispatch": "core.auth.dispatch(LogOut())"}
_CALLS = {
    "result": "core.auth.dispatch(AuthRoute.sign_up_anonymously()).result()",
    "dispatch": "core.auth.dispatch(LogOut())",
    "run": "core.auth.run(LogOut())",
}


@pytest.mark.parametrize("handler", _HANDLERS.values(), ids=list(_HANDLERS))
@pytest.mark.parametrize("call", _CALLS.values(), ids=list(_CALLS))
def test_a_signal_handler_closing_or_dispatching_mid_call_never_hangs(
    handler: str, call: str
) -> None:
    """A signal handler's close() or dispatch, landing anywhere in the main thread's
    dispatch, result() or blocking call, returns, and so does the call (300 rounds)."""
    script = _SIGNAL_MID_CALL_SCRIPT.format(rounds=300, handler=handler, call=call)
    done = run_python("-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n"


_SLOW_COMMAND_SCRIPT = """
import faulthandler, os, signal, threading, time
from mimi_reactive import AuthRoute, BlockingMimiCore, CoreClosedError, ReentrantCallError
from mimi_reactive.testing import Reply, ScriptedBackend
faulthandler.dump_traceback_later(40, exit=True)
backend = ScriptedBackend()
backend.script(Reply.never())
core = BlockingMimiCore.start(backend=backend, close_grace_period=0.5)
told = []
def on_alarm(signum, frame):
    try:
        core.auth.log_out()
    except ReentrantCallError:
        told.append("refused")
    began = time.monotonic()
    core.close()
    told.append("prompt" if time.monotonic() - began < 0.4 else "waited")
signal.signal(signal.SIGALRM, on_alarm)
waiting = core.auth.dispatch(AuthRoute.sign_up_anonymously())
threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGALRM)).start()
try:
    waiting.result()
except CoreClosedError:
    told.append("closed")
core.close()
print(*told)
"""


def test_a_signal_handler_closes_at_once_while_a_command_result_waits() -> None:
    """A handler interrupting result() on a command the backend never answers: its own
    blocking call is refused (ReentrantCallError), its close() returns at once, and the
    waiting result() raises CoreClosedError once the grace period is over."""
    done = run_python("-c", _SLOW_COMMAND_SCRIPT)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "refused prompt closed\n"


def test_closing_while_another_thread_dispatches_in_a_loop_returns_soon() -> None:
    """close() while a thread dispatches as fast as it can refuses the dispatches from then
    on (CoreClosedError) and returns within seconds (20 rounds)."""
    for _ in range(ROUNDS):
        core = BlockingMimiCore.start(backend=ScriptedBackend(), close_grace_period=0.1)
        stop = threading.Event()
        refused = threading.Event()
        flooding = threading.Thread(target=flood, args=(core, stop, refused), daemon=True)
        flooding.start()
        assert core.auth.dispatch(LogOut()).result(timeout=10)  # the flood is under way
        began = time.monotonic()
        core.close()
        took = time.monotonic() - began
        assert refused.wait(10)
        stop.set()
        flooding.join(10)
        assert took < 3.0, f"close took {took:.1f} s"


def flood(core: BlockingMimiCore, stop: threading.Event, refused: threading.Event) -> None:
    """Dispatch as fast as possible until ``stop``; set ``refused`` once one is refused."""
    while not stop.is_set():
        core.auth.dispatch(AuthRoute.sign_up_anonymously())
        if isinstance(core.auth.dispatch(LogOut()).exception(), CoreClosedError):
            refused.set()


def test_close_from_a_subscriber_schedules_it_and_returns() -> None:
    """A subscriber closing the core on log-out and again as the streams complete returns at
    once each time, with no error; the core then ends (20 rounds)."""
    for _ in range(ROUNDS):
        quitting = Quitting(BlockingMimiCore.start(backend=ScriptedBackend()))
        core = quitting.core
        core.auth.states.subscribe(quitting.on_state, on_completed=quitting.on_completed)
        core.auth.authenticate(AuthRoute.sign_up_anonymously())
        core.auth.log_out()
        assert quitting.completed.wait(10)
        core.close()
        assert quitting.errors == []
        with pytest.raises(CoreClosedError):
            core.auth.access_token()


class Quitting:
    """An app's subscriber that closes the core on log-out and as the streams complete."""

    def __init__(self, core: BlockingMimiCore) -> None:
        self.core = core
        self.errors: list[BaseException] = []
        self.completed = threading.Event()

    def on_state(self, state: SessionState) -> None:
        if state.transition is Transition.LOGGED_OUT:
            self.close()

    def on_completed(self) -> None:
        self.close()
        self.completed.set()

    def close(self) -> None:
        try:
            self.core.close()
        except BaseException as error:  # the test looks at what it is
            self.errors.append(error)


def core_threads() -> int:
    return sum(thread.name == "mimi_reactive.core" for thread in threading.enumerate())


def test_a_forgotten_core_warns_and_its_thread_ends() -> None:
    """A BlockingMimiCore dropped unclosed warns ResourceWarning (naming it, not the MimiCore
    inside, which it closes) and its thread ends (20 rounds)."""
    before = core_threads()
    # What the suite holds already is set aside (gc.freeze), so each collection looks only at
    # what a round made: a full one over the whole suite's heap took 0.1 s or more.
    gc.collect()
    gc.freeze()
    try:
        for _ in range(ROUNDS):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                core = BlockingMimiCore.start(backend=ScriptedBackend())
                core.auth.authenticate(AuthRoute.sign_up_anonymously())
                del core
                gc.collect()
                deadline = time.monotonic() + 10
                while core_threads() > before and time.monotonic() < deadline:
                    time.sleep(0.01)
                gc.collect()
            assert core_threads() == before
            assert [str(warning.message).split(":")[0] for warning in caught] == [
                "a BlockingMimiCore was never closed"
            ]
            assert caught[0].category is ResourceWarning
    finally:
        gc.unfreeze()


def kept_auth(core: BlockingMimiCore) -> Callable[[str], object]:
    """What an app that keeps only ``core.auth`` logs in with."""
    auth = core.auth
    return lambda anonymous_id: Success(
        auth.authenticate(AuthRoute.log_in_anonymously(anonymous_id)).anonymous_id or ""
    )


def kept_manager(core: BlockingMimiCore) -> Callable[[str], object]:
    """What an app that keeps only the core's anonymous auth manager logs in with."""
    return BlockingAnonymousAuthManager(core).authenticate_anonymous_user


@pytest.mark.parametrize("keep", [kept_auth, kept_manager], ids=["core.auth", "manager"])
def test_a_core_the_app_holds_only_a_part_of_closes_only_with_it(
    keep: Callable[[BlockingMimiCore], Callable[[str], object]],
) -> None:
    """An app that keeps only core.auth or the core's BlockingAnonymousAuthManager keeps the
    core open (closed under it, its calls would raise CoreClosedError); once it drops that
    too, the core warns and its thread ends, at once: no cycle waits for the collector."""
    backend = ScriptedBackend()
    anonymous_id = backend.add_anonymous_user().anonymous_id
    assert anonymous_id is not None
    before = core_threads()
    gc.disable()  # what is freed must be freed by its last reference going
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            core = start_blocking(backend)
            log_in = keep(core)
            del core
            gc.collect()
            assert log_in(anonymous_id) == Success(anonymous_id)
            assert caught == []
            del log_in
            assert [str(warning.message).split(":")[0] for warning in caught] == [
                "a BlockingMimiCore was never closed"
            ]
        deadline = time.monotonic() + 10
        while core_threads() > before and time.monotonic() < deadline:
            time.sleep(0.01)  # polling a condition, bounded by the deadline
        assert core_threads() == before
    finally:
        gc.enable()


_FORK_SCRIPT = """
import asyncio, os
from concurrent.futures import ThreadPoolExecutor
from mimi_reactive import AuthRoute, BlockingMimiCore, CoreClosedError, LogOut, MimiCore
from mimi_reactive.testing import ScriptedBackend

def in_child(check):
    pid = os.fork()
    if pid == 0:
        try:
            check()
        except BaseException as error:
            print("child:", type(error).__name__, error, flush=True)
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status

def refused(call):
    try:
        call()
    except CoreClosedError as error:
        assert "start the core after forking" in str(error), error
    else:
        raise AssertionError("the call ran")

blocking = BlockingMimiCore.start(backend=ScriptedBackend())
blocking.auth.authenticate(AuthRoute.sign_up_anonymously())

def use_the_blocking_core():
    refused(blocking.auth.access_token)
    refused(lambda: blocking.auth.dispatch(LogOut()).result(timeout=5))
    blocking.close()

async def main():
    async with MimiCore.start(backend=ScriptedBackend()) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())

        def use_the_async_core():
            refused(lambda: core.auth.dispatch(LogOut()).result(timeout=5))
            with ThreadPoolExecutor() as other:  # from another thread, as a worker would
                other.submit(refused, lambda: core.auth.dispatch(LogOut()).result(5)).result()

        for _ in range({rounds}):
            in_child(use_the_blocking_core)
            in_child(use_the_async_core)
        assert await core.auth.access_token()  # the parent's core still works

asyncio.run(main())
assert blocking.auth.access_token()
blocking.close()
print("ok")
"""


def test_a_core_used_in_a_forked_child_refuses_at_once() -> None:
    """In a process forked from the one that started it, a blocking or an async core's calls
    and dispatches raise CoreClosedError saying to start it after forking, and close() does
    nothing; the parent's core goes on (20 forks of each)."""
    done = run_python("-c", _FORK_SCRIPT.format(rounds=ROUNDS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == "ok\n"
