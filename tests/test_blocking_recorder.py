"""BlockingStateRecorder: recording a BlockingMimiCore's states from code that is not async."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from reactivex import operators as ops

from mimi_reactive import (
    AnonymousAuthManager,
    AuthRoute,
    BlockingAnonymousAuthManager,
    CommandFuture,
    ConfigurationError,
    LogOut,
    MimiCore,
    ReentrantCallError,
    SessionState,
    Transition,
)
from mimi_reactive.testing import BlockingStateRecorder, ScriptedBackend, StateRecorder

from .helpers import start_blocking as start

SIGN_UP = AuthRoute.sign_up_anonymously()


def wait_in_a_thread(
    pool: ThreadPoolExecutor, recorder: BlockingStateRecorder, transition: Transition
) -> Future[SessionState]:
    """``wait_for(transition)`` on another thread, returned once it is blocked waiting."""
    waiting = pool.submit(recorder.wait_for, transition, timeout=60)
    # The condition's waiters (CPython's threading.Condition keeps them in _waiters): the
    # thread is inside wait(), so what wakes it is what the test then does.
    waiters: list[object] = getattr(recorder._changed, "_waiters")  # noqa: B009
    deadline = time.monotonic() + 10
    while not waiters and not waiting.done():
        assert time.monotonic() < deadline, "wait_for never began waiting"
        time.sleep(0.001)
    return waiting


def test_the_recorder_captures_states_users_and_the_close() -> None:
    """It holds every state from its start, the current one first, and knows when the core
    closed; states is a copy, the recording stays after the close."""
    with start() as core:
        recorder = BlockingStateRecorder(core)
        user = core.auth.authenticate(SIGN_UP)
        core.auth.log_out()
        assert not recorder.completed
    assert recorder.transitions == [
        Transition.INITIAL,
        Transition.ANONYMOUS_CREATED,
        Transition.LOGGED_OUT,
    ]
    assert recorder.users == [None, user, None]
    assert recorder.completed
    assert not recorder.stopped
    recorder.states.clear()
    assert len(recorder.states) == 3


def test_wait_for_returns_the_first_state_a_dispatched_command_publishes() -> None:
    """wait_for blocks the calling thread until the core's thread publishes the state, and
    returns the first such state, not a later one."""
    with start(ScriptedBackend(latency=0.01)) as core, BlockingStateRecorder(core) as recorder:
        core.auth.dispatch(SIGN_UP)
        created = recorder.wait_for(Transition.ANONYMOUS_CREATED, timeout=10)
        assert created.user == core.auth.current_user
        core.auth.log_out()
        core.auth.authenticate(SIGN_UP)
        assert recorder.wait_for(Transition.ANONYMOUS_CREATED, timeout=0) is created
        assert recorder.wait_for(Transition.INITIAL, timeout=0) is recorder.states[0]


@pytest.mark.parametrize("timeout", [0, 0.05])
def test_wait_for_fails_after_its_timeout(timeout: float) -> None:
    """A state that never comes fails the wait with AssertionError once timeout passes."""
    with start() as core, BlockingStateRecorder(core) as recorder:
        began = time.monotonic()
        with pytest.raises(AssertionError, match=f"^no LOGGED_IN state within {timeout:g} s$"):
            recorder.wait_for(Transition.LOGGED_IN, timeout=timeout)
        assert time.monotonic() - began >= timeout


@pytest.mark.parametrize(
    ("timeout", "error"),
    [(-1, ConfigurationError), (float("nan"), ConfigurationError), ("5", TypeError)],
)
def test_a_wrong_timeout_is_refused(timeout: float, error: type[Exception]) -> None:
    """The timeout is a finite number of seconds, 0 or more."""
    with (
        start() as core,
        BlockingStateRecorder(core) as recorder,
        pytest.raises(error, match="timeout"),
    ):
        recorder.wait_for(Transition.INITIAL, timeout=timeout)


def test_a_waiting_wait_for_fails_when_the_core_closes() -> None:
    """A thread waiting is woken by the close with AssertionError; so is a later wait_for."""
    with ThreadPoolExecutor(1) as pool:
        core = start()
        recorder = BlockingStateRecorder(core)
        waiting = wait_in_a_thread(pool, recorder, Transition.LOGGED_IN)
        core.close()
        with pytest.raises(AssertionError, match=r"^the core closed without a LOGGED_IN state$"):
            waiting.result(timeout=10)
        assert recorder.completed
        with pytest.raises(AssertionError, match="closed without a LOGGED_OUT"):
            recorder.wait_for(Transition.LOGGED_OUT)


def test_a_waiting_wait_for_fails_when_the_recorder_stops() -> None:
    """A thread waiting is woken by stop() with AssertionError; so is a later wait_for for a
    state published after the stop, while a recorded one is still found."""
    with ThreadPoolExecutor(1) as pool, start() as core:
        recorder = BlockingStateRecorder(core)
        waiting = wait_in_a_thread(pool, recorder, Transition.ANONYMOUS_CREATED)
        recorder.stop()
        with pytest.raises(AssertionError, match=r"^the recorder stopped without a ANONYMOUS"):
            waiting.result(timeout=10)
        core.auth.authenticate(SIGN_UP)
        with pytest.raises(AssertionError, match="stopped"):
            recorder.wait_for(Transition.ANONYMOUS_CREATED)
        assert recorder.wait_for(Transition.INITIAL) is recorder.states[0]
        assert recorder.stopped
        assert recorder.transitions == [Transition.INITIAL]


def test_a_state_published_as_the_recorder_stops_is_not_recorded() -> None:
    """A subscriber ahead of the recorder stopping it on the core's thread: the state being
    published then is not recorded after stop()."""
    with start() as core:
        recorders: list[BlockingStateRecorder] = []
        core.auth.states.pipe(ops.skip(1)).subscribe(lambda _: recorders[0].stop())
        recorders.append(BlockingStateRecorder(core))
        core.auth.authenticate(SIGN_UP)
        assert recorders[0].stopped
        assert recorders[0].transitions == [Transition.INITIAL]


def test_wait_for_refuses_the_cores_own_thread() -> None:
    """In a subscriber (the core's thread) wait_for raises ReentrantCallError: the state it
    waits for could not be published while it blocks."""
    errors: list[BaseException] = []
    called = threading.Event()

    def wait_there(_: SessionState) -> None:
        try:
            recorder.wait_for(Transition.LOGGED_OUT, timeout=0.01)
        except (ReentrantCallError, AssertionError) as error:
            errors.append(error)
        called.set()

    with start() as core, BlockingStateRecorder(core) as recorder:
        core.auth.states.pipe(ops.skip(1)).subscribe(wait_there)
        core.auth.dispatch(SIGN_UP)
        assert called.wait(10)
    assert [type(error) for error in errors] == [ReentrantCallError]
    assert "own thread" in str(errors[0])


def test_waiting_on_the_main_thread_while_the_core_publishes() -> None:
    """The main thread waits while threads dispatch 120 commands and another reads the
    recording: it is woken as soon as the state comes (well before its timeout), and every
    read is what the core published, in its order."""
    with start() as core, BlockingStateRecorder(core) as recorder:
        published: list[SessionState] = []
        core.auth.states.subscribe(published.append)
        futures: list[CommandFuture] = []

        def dispatch() -> None:
            for index in range(40):
                futures.append(core.auth.dispatch(LogOut() if index % 2 else SIGN_UP))

        def read() -> int:
            reads = 0
            while not (len(futures) == 120 and all(f.done() for f in futures)):
                recorded, seen = recorder.states, list(published)
                common = min(len(recorded), len(seen))  # either may be one state ahead
                assert recorded[:common] == seen[:common]
                reads += 1
                time.sleep(0.0005)
            return reads

        with ThreadPoolExecutor(4) as pool:
            reading = pool.submit(read)
            for _ in range(3):
                pool.submit(dispatch)
            began = time.monotonic()
            logged_out = recorder.wait_for(Transition.LOGGED_OUT, timeout=30)
            assert time.monotonic() - began < 10
            assert reading.result(timeout=30) > 0
        assert logged_out is recorder.states[recorder.transitions.index(Transition.LOGGED_OUT)]
        assert recorder.states == published
        assert recorder.transitions.count(Transition.LOGGED_OUT) > 1


def use_blocking_core(use: Callable[[object], None]) -> None:
    """Call ``use`` with a running BlockingMimiCore."""
    with start() as core:
        use(core)


def use_async_core(use: Callable[[object], None]) -> None:
    """Call ``use`` with a running MimiCore, on its loop."""

    async def run() -> None:
        async with MimiCore.start(
            client_id="app", client_secret="s", backend=ScriptedBackend()
        ) as core:
            use(core)

    asyncio.run(run())


@pytest.mark.parametrize(
    ("taker", "with_core", "message"),
    [
        (
            StateRecorder,
            use_blocking_core,
            "core must be a MimiCore, not BlockingMimiCore: "
            "for a BlockingMimiCore, use BlockingStateRecorder",
        ),
        (
            BlockingStateRecorder,
            use_async_core,
            "core must be a BlockingMimiCore, not MimiCore: for a MimiCore, use StateRecorder",
        ),
        (
            AnonymousAuthManager,
            use_blocking_core,
            "core must be a MimiCore, not BlockingMimiCore: "
            "for a BlockingMimiCore, use BlockingAnonymousAuthManager",
        ),
        (
            BlockingAnonymousAuthManager,
            use_async_core,
            "core must be a BlockingMimiCore, not MimiCore: "
            "for a MimiCore, use AnonymousAuthManager",
        ),
    ],
    ids=[
        "StateRecorder",
        "BlockingStateRecorder",
        "AnonymousAuthManager",
        "BlockingAnonymousAuthManager",
    ],
)
def test_each_class_given_the_other_core_names_the_class_for_it(
    taker: Callable[[object], object],
    with_core: Callable[[Callable[[object], None]], None],
    message: str,
) -> None:
    """A recorder or anonymous-user manager given the wrong kind of core refuses it with
    TypeError naming the class that takes that kind."""

    def record(core: object) -> None:
        with pytest.raises(TypeError) as raised:
            taker(core)
        assert str(raised.value) == message

    with_core(record)
