"""BlockingMimiCore: the core from code that is not async."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from reactivex import operators as ops
from reactivex.scheduler import EventLoopScheduler

from mimi_reactive import (
    AuthRoute,
    BlockingAnonymousAuthManager,
    BlockingAuthController,
    BlockingMimiCore,
    CommandFuture,
    ConfigurationError,
    CoreClosedError,
    InvalidCredentialsError,
    LogOut,
    MimiConfiguration,
    MimiCore,
    MimiUser,
    ReentrantCallError,
    SessionState,
    Skipped,
    Success,
    Transition,
)
from mimi_reactive.testing import ScriptedBackend

from .helpers import finishes, run_python
from .helpers import start_blocking as start

ANONYMOUS_ONLY = MimiConfiguration(allow_anonymous_user_only=True)


def test_the_whole_flow_from_plain_synchronous_code() -> None:
    """Sign up, subscribe, get a token and its expiry, log back in by id and log out, each
    call blocking."""
    with start() as core:
        seen: list[Transition] = []
        core.auth.states.subscribe(lambda state: seen.append(state.transition))
        user = core.auth.authenticate(AuthRoute.sign_up_anonymously())
        assert core.auth.current_user == user
        assert core.auth.access_token()
        expires_at = core.auth.access_token_expires_at
        assert expires_at is not None
        assert expires_at > time.time()
        core.auth.log_out()
        assert core.auth.access_token_expires_at is None
        manager = BlockingAnonymousAuthManager(core)
        assert manager.authenticate_anonymous_user(user.anonymous_id) == Success(
            user.anonymous_id or ""
        )
        assert manager.authenticate_anonymous_user(None) == Skipped()
        assert seen == [
            Transition.INITIAL,
            Transition.ANONYMOUS_CREATED,
            Transition.LOGGED_OUT,
            Transition.LOGGED_IN,
        ]


def test_an_account_is_deleted_from_blocking_code() -> None:
    """delete_account() blocks until the user is gone and the state says DELETED."""
    backend = ScriptedBackend()
    with start(backend) as core:
        user = core.auth.authenticate(AuthRoute.sign_up_anonymously())
        core.auth.delete_account()
        assert core.auth.state.transition is Transition.DELETED
        assert core.auth.state.previous_user == user
        with pytest.raises(InvalidCredentialsError):
            core.auth.authenticate(AuthRoute.log_in_anonymously(user.anonymous_id))


def test_errors_are_raised_as_the_async_core_raises_them() -> None:
    """An unknown anonymous id raises InvalidCredentialsError in the calling thread."""
    with start() as core, pytest.raises(InvalidCredentialsError):
        core.auth.authenticate(AuthRoute.log_in_anonymously("an-id-nobody-has-0000000"))


def test_several_threads_at_once_see_one_order() -> None:
    """Commands from eight threads all complete, and two subscribers see the same states."""
    backend = ScriptedBackend()
    with start(backend) as core:
        users = [backend.add_anonymous_user() for _ in range(8)]
        first: list[SessionState] = []
        second: list[SessionState] = []
        core.auth.states.subscribe(first.append)
        core.auth.states.subscribe(second.append)

        def log_in(index: int) -> str:
            return core.auth.authenticate(
                AuthRoute.log_in_anonymously(users[index].anonymous_id)
            ).id

        with ThreadPoolExecutor(max_workers=8) as pool:
            logged_in = list(pool.map(log_in, range(8)))
        assert sorted(logged_in) == sorted(user.id for user in users)
        assert first == second
        assert first[-1] == core.auth.state


def test_subscribers_run_on_the_core_thread_and_observe_on_moves_them() -> None:
    """Delivery happens on the core's thread; observe_on hands it to the app's scheduler."""
    with start() as core:
        plain: list[str] = []
        moved: list[str] = []
        delivered = threading.Event()
        # Ends its thread when idle: disposing it while it still delivers fails that thread.
        scheduler = EventLoopScheduler(exit_if_empty=True)
        core.auth.states.subscribe(lambda _: plain.append(threading.current_thread().name))

        def on_app_thread(state: SessionState) -> None:
            moved.append(threading.current_thread().name)
            if state.transition is Transition.ANONYMOUS_CREATED:
                delivered.set()

        core.auth.states.pipe(ops.observe_on(scheduler)).subscribe(on_app_thread)
        core.auth.authenticate(AuthRoute.sign_up_anonymously())
        assert delivered.wait(10)
    assert plain[-1] == "mimi_reactive.core"
    assert moved
    assert "mimi_reactive.core" not in moved


async def test_calling_it_inside_a_running_event_loop_is_refused() -> None:
    """Blocking inside async code would stall the loop: it is refused with a clear error."""
    with pytest.raises(ReentrantCallError, match="use MimiCore"):
        start()
    core = await asyncio.to_thread(start)
    try:
        with pytest.raises(ReentrantCallError, match="use MimiCore"):
            core.auth.authenticate(AuthRoute.sign_up_anonymously())
    finally:
        await asyncio.to_thread(core.close)


@pytest.mark.parametrize(
    ("call", "advice"),
    [
        (lambda core: core.auth.log_out(), "use core.auth.dispatch(...) there"),
        (lambda core: core.auth.dispatch(LogOut()).result(), "let the states stream tell"),
    ],
    ids=["log_out()", "dispatch(...).result()"],
)
def test_a_blocking_call_from_a_subscriber_is_refused(
    call: Callable[[BlockingMimiCore], object], advice: str
) -> None:
    """A subscriber's blocking call would never return: refused, with advice it can follow."""
    with start() as core:
        errors: list[BaseException] = []

        def calls_back(state: SessionState) -> None:
            if state.transition is Transition.ANONYMOUS_CREATED:
                try:
                    call(core)
                except ReentrantCallError as error:
                    errors.append(error)

        core.auth.states.subscribe(calls_back)
        core.auth.authenticate(AuthRoute.sign_up_anonymously())
        assert [str(error).split("; ")[1][: len(advice)] for error in errors] == [advice]


def test_a_forgotten_close_does_not_keep_the_process_alive() -> None:
    """The core's thread is a daemon: a script that never closes still exits."""
    script = (
        "from mimi_reactive import AuthRoute, BlockingMimiCore\n"
        "from mimi_reactive.testing import ScriptedBackend\n"
        "core = BlockingMimiCore.start(client_id='a', client_secret='s', "
        "backend=ScriptedBackend())\n"
        "core.auth.authenticate(AuthRoute.sign_up_anonymously())\n"
        "print('done')\n"
    )
    done = run_python("-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n"


def test_close_is_idempotent_and_later_calls_fail_cleanly() -> None:
    """Closing twice is fine; a command after close raises instead of hanging."""
    core = start()
    core.close()
    core.close()
    with pytest.raises(CoreClosedError):
        core.auth.access_token()


def test_start_takes_exactly_the_arguments_of_the_async_start() -> None:
    """BlockingMimiCore.start has MimiCore.start's parameters: names, kinds, defaults, types."""
    blocking = inspect.signature(BlockingMimiCore.start).parameters
    async_ = inspect.signature(MimiCore.start).parameters
    assert list(blocking.values()) == list(async_.values())


def test_start_needs_no_client_credentials_when_the_backend_needs_none() -> None:
    """As with MimiCore.start, client_id and client_secret may be left out (Firebase holds
    its API key itself)."""
    with BlockingMimiCore.start(backend=ScriptedBackend()) as core:
        assert core.auth.authenticate(AuthRoute.sign_up_anonymously()).is_anonymous


def test_a_wrong_argument_to_start_is_refused_and_leaves_no_thread() -> None:
    """A negative grace period raises ConfigurationError and the core's thread is gone."""
    before = {thread.name for thread in threading.enumerate()}
    with pytest.raises(ConfigurationError, match="close_grace_period"):
        BlockingMimiCore.start(backend=ScriptedBackend(), close_grace_period=-5)
    assert {thread.name for thread in threading.enumerate()} == before


def test_a_subscriber_may_make_a_blocking_call_while_handling_its_first_state() -> None:
    """ "Sign in if nobody is" from the replay, which runs on the subscribing thread: the call
    returns, and the states published meanwhile follow the first one, in order, once."""
    seen: list[Transition] = []

    def subscribe_and_sign_in() -> None:
        with start() as core:

            def sign_in_if_nobody(state: SessionState) -> None:
                seen.append(state.transition)
                if state.user is None:
                    core.auth.authenticate(AuthRoute.sign_up_anonymously())

            core.auth.states.subscribe(sign_in_if_nobody)
            assert core.auth.current_user is not None
            core.auth.log_out()

    assert finishes(subscribe_and_sign_in)
    assert seen == [
        Transition.INITIAL,
        Transition.ANONYMOUS_CREATED,
        Transition.LOGGED_OUT,
    ]


def test_calls_racing_close_run_or_raise_core_closed_never_hang() -> None:
    """A thread calling over and over while another closes gets CoreClosedError in the end,
    never a call left on a stopped loop (20 rounds)."""
    for _ in range(20):
        core = start()
        core.auth.authenticate(AuthRoute.sign_up_anonymously())
        calling = threading.Event()
        errors: list[BaseException] = []
        caller = threading.Thread(
            target=call_until_closed, args=(core, calling, errors), daemon=True
        )
        caller.start()
        assert calling.wait(10)
        core.close()
        caller.join(10)
        assert not caller.is_alive(), "a call hung on the stopped loop"
        assert [type(error) for error in errors] == [CoreClosedError]


def call_until_closed(
    core: BlockingMimiCore, calling: threading.Event, errors: list[BaseException]
) -> None:
    try:
        while True:
            core.auth.refresh()
            calling.set()
    except BaseException as error:  # the test looks at what it is
        errors.append(error)


def test_close_from_two_threads_at_once_returns_in_both() -> None:
    """Two threads closing together (an atexit hook and a UI's quit) both return, without
    error, once the core is closed (20 rounds)."""
    for _ in range(20):
        core = start()
        both = threading.Barrier(2)
        errors: list[BaseException] = []
        closers = [
            threading.Thread(target=close_together, args=(core, both, errors), daemon=True)
            for _ in range(2)
        ]
        for closer in closers:
            closer.start()
        for closer in closers:
            closer.join(10)
        assert not any(closer.is_alive() for closer in closers), "a close() hung"
        assert errors == []
        with pytest.raises(CoreClosedError):
            core.auth.access_token()


def close_together(
    core: BlockingMimiCore, both: threading.Barrier, errors: list[BaseException]
) -> None:
    both.wait()
    try:
        core.close()
    except BaseException as error:  # the test looks at what it is
        errors.append(error)


def test_an_observer_of_a_blocking_core_is_given_the_blocking_controller() -> None:
    """add_observer on a BlockingMimiCore passes the observer its BlockingAuthController
    (not the async one, whose log_out() would be a coroutine never awaited): a blocking call
    from the observer raises ReentrantCallError, and a dispatch from it runs."""
    with start() as core:
        given: list[object] = []
        refused: list[BaseException] = []
        dispatched: list[CommandFuture] = []

        class Observer:
            def auth_controller_did_update(
                self,
                controller: BlockingAuthController,
                current_user: MimiUser | None,
                old_user: MimiUser | None,
                error: Exception | None,
            ) -> None:
                given.append(controller)
                if current_user is None:
                    return
                try:
                    controller.log_out()
                except ReentrantCallError as error:
                    refused.append(error)
                dispatched.append(controller.dispatch(LogOut()))

        core.auth.add_observer(Observer())
        core.auth.authenticate(AuthRoute.sign_up_anonymously())
        assert len(refused) == 1
        [log_out] = dispatched
        assert log_out.result(timeout=10).error is None
        assert core.auth.current_user is None
        assert given == [core.auth, core.auth]
