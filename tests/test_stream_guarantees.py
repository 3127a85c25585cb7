"""The stream's guarantees: each scenario breaks on plain BehaviorSubject wiring and holds on ours.

Numbers follow docs/guarantees.md.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from reactivex.subject import BehaviorSubject

from mimi_reactive import (
    AuthRoute,
    AuthTokens,
    BackendSession,
    CoreClosedError,
    DeleteAccount,
    LogOut,
    MemorySessionStorage,
    MimiConfiguration,
    MimiCore,
    MimiCoreError,
    MimiUser,
    ReentrantCallError,
    Session,
    SessionRevokedError,
    SessionState,
    Transition,
)
from mimi_reactive._stream import Stream
from mimi_reactive.testing import Reply, ScriptedBackend, StateRecorder

from .helpers import library_events
from .plain_wiring import PlainWiring

ANONYMOUS_ONLY = MimiConfiguration(allow_anonymous_user_only=True)
SIGN_UP = AuthRoute.sign_up_anonymously()


@pytest.fixture
async def backend() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture
async def core(backend: ScriptedBackend) -> AsyncIterator[MimiCore]:
    async with MimiCore.start(
        client_id="app", client_secret="secret", backend=backend, configuration=ANONYMOUS_ONLY
    ) as started:
        yield started


async def settle(core: MimiCore) -> None:
    """Wait until every command queued so far, and any they queued, has run."""
    for _ in range(5):
        await core.auth.run(LogOut())  # goes to the back of the queue


# 1. Run to completion.


async def test_1_command_from_a_subscriber_is_queued_not_nested(core: MimiCore) -> None:
    """A command dispatched inside a callback runs after the callback, not inside it."""
    during: list[Transition] = []

    def log_out_when_created(state: SessionState) -> None:
        if state.transition is Transition.ANONYMOUS_CREATED:
            core.auth.dispatch(LogOut())
            during.append(core.auth.state.transition)

    core.auth.states.subscribe(log_out_when_created)
    await core.auth.run(SIGN_UP)
    await settle(core)
    assert during == [Transition.ANONYMOUS_CREATED]
    assert core.auth.state.transition is Transition.LOGGED_OUT

    plain = PlainWiring()
    plain_during: list[Transition] = []

    def plain_log_out_when_created(state: SessionState) -> None:
        if state.transition is Transition.ANONYMOUS_CREATED:
            plain.dispatch(LogOut())
            plain_during.append(plain.state.transition)

    plain.subject.subscribe(plain_log_out_when_created)
    plain.dispatch(SIGN_UP)
    assert plain_during == [Transition.LOGGED_OUT]  # nested: ran inside the callback


async def test_1_blocking_on_the_loop_thread_raises_instead_of_deadlocking(
    core: MimiCore,
) -> None:
    """Waiting for a command's result inside a callback raises ReentrantCallError."""
    errors: list[Exception] = []

    def wait_inside(state: SessionState) -> None:
        if state.transition is Transition.ANONYMOUS_CREATED:
            try:
                core.auth.dispatch(LogOut()).result(timeout=5)
            except ReentrantCallError as error:
                errors.append(error)

    core.auth.states.subscribe(wait_inside)
    started = time.monotonic()
    await core.auth.run(SIGN_UP)
    await settle(core)
    assert len(errors) == 1
    assert time.monotonic() - started < 4  # it did not sit out the timeout
    assert core.auth.state.transition is Transition.LOGGED_OUT  # the queued command ran


async def test_1_awaiting_a_command_inside_an_effect_raises(backend: ScriptedBackend) -> None:
    """A backend that awaits a command of its own core gets ReentrantCallError, not a hang."""
    seen: list[BaseException] = []

    class Reentrant(ScriptedBackend):
        async def authenticate(self, route: AuthRoute, session: Session | None) -> BackendSession:
            try:
                await started.auth.run(LogOut())
            except ReentrantCallError as error:
                seen.append(error)
            return await super().authenticate(route, session)

    async with MimiCore.start(
        client_id="app", client_secret="s", backend=Reentrant(), configuration=ANONYMOUS_ONLY
    ) as started:
        user = await asyncio.wait_for(started.auth.authenticate(SIGN_UP), 5)
        assert started.auth.current_user == user
    assert len(seen) == 1


# 2. Same sequence for everyone, ending at the current state.


async def test_2_every_subscriber_sees_the_same_sequence_ending_at_state(core: MimiCore) -> None:
    """With a re-entrant subscriber first, later subscribers still end at the current state."""

    def log_out_when_created(state: SessionState) -> None:
        if state.transition is Transition.ANONYMOUS_CREATED:
            core.auth.dispatch(LogOut())

    core.auth.states.subscribe(log_out_when_created)
    first, second = StateRecorder(core), StateRecorder(core)
    await core.auth.run(SIGN_UP)
    await settle(core)
    assert first.states == second.states
    assert first.states[-1] == core.auth.state
    assert first.transitions == [
        Transition.INITIAL,
        Transition.ANONYMOUS_CREATED,
        Transition.LOGGED_OUT,
    ]

    plain = PlainWiring()

    def plain_log_out_when_created(state: SessionState) -> None:
        if state.transition is Transition.ANONYMOUS_CREATED:
            plain.dispatch(LogOut())

    plain.subject.subscribe(plain_log_out_when_created)
    later: list[SessionState] = []
    plain.subject.subscribe(later.append)
    plain.dispatch(SIGN_UP)
    assert later[-1] != plain.state  # the later subscriber holds a stale state
    assert [s.transition for s in later][-2:] == [
        Transition.LOGGED_OUT,
        Transition.ANONYMOUS_CREATED,
    ]


# 3. No equal state twice in a row.


def test_3_an_equal_state_is_published_once() -> None:
    """Publishing a state equal to the current one reaches nobody; plain subjects repeat it."""
    user = MimiUser("u1", "anonymous-id-000000000")
    states = [SessionState(user, None, Transition.LOGGED_IN) for _ in range(3)]
    stream = Stream(SessionState())
    ours: list[SessionState] = []
    stream.observable.subscribe(ours.append)
    subject = BehaviorSubject(SessionState())
    plain: list[SessionState] = []
    subject.subscribe(plain.append)
    for state in states:
        stream.publish(state)
        subject.on_next(state)
    assert len(ours) == 2
    assert len(plain) == 4


# 4. A raising subscriber is isolated.


async def test_4_a_raising_subscriber_does_not_stop_the_others(
    core: MimiCore, caplog: pytest.LogCaptureFixture
) -> None:
    """The command completes, later subscribers get the state, the error is logged with
    the subscriber's traceback."""

    def explode(state: SessionState) -> None:
        raise RuntimeError("subscriber bug")

    caplog.set_level(logging.ERROR, logger="mimi_reactive")
    core.auth.states.subscribe(explode)
    recorder = StateRecorder(core)
    user = await core.auth.authenticate(SIGN_UP)
    assert recorder.users == [None, user]
    failed = [r for r in library_events(caplog) if r.getMessage().startswith("stream.")]
    assert len(failed) == 2  # the replay on subscribe, then the sign-up
    for record in failed:
        assert record.exc_info is not None
        assert record.exc_info[0] is RuntimeError
        assert "explode" in caplog.text  # the app's own frame is in the traceback

    plain = PlainWiring()
    plain.subject.subscribe(_raise_on_change)
    later: list[SessionState] = []
    plain.subject.subscribe(later.append)
    with pytest.raises(RuntimeError):
        plain.dispatch(SIGN_UP)  # the subscriber's error hits the emitter
    assert len(later) == 1  # and the later subscriber never got the state


def _raise_on_change(state: SessionState) -> None:
    if state.transition is not Transition.INITIAL:
        raise RuntimeError("subscriber bug")


@pytest.mark.parametrize("detach", [False, True])
async def test_4_the_app_chooses_whether_a_faulty_subscriber_is_detached(detach: bool) -> None:
    """With detach_failing_subscribers the faulty subscriber hears nothing after it raised."""
    calls: list[Transition] = []

    def explode(state: SessionState) -> None:
        calls.append(state.transition)
        raise RuntimeError("subscriber bug")

    configuration = MimiConfiguration(
        allow_anonymous_user_only=True, detach_failing_subscribers=detach
    )
    async with MimiCore.start(
        client_id="app", client_secret="s", backend=ScriptedBackend(), configuration=configuration
    ) as core:
        core.auth.states.subscribe(explode)
        recorder = StateRecorder(core)
        await core.auth.authenticate(SIGN_UP)
        await core.auth.log_out()
    assert recorder.transitions[-1] is Transition.LOGGED_OUT
    expected = [Transition.INITIAL]
    if not detach:
        expected += [Transition.ANONYMOUS_CREATED, Transition.LOGGED_OUT]
    assert calls == expected


async def test_4_a_raising_observer_is_isolated(core: MimiCore) -> None:
    """An observer that raises does not stop other observers or the command."""
    heard: list[MimiUser | None] = []

    class Faulty:
        def auth_controller_did_update(self, *args: object) -> None:
            raise ValueError("observer bug")

    class Good:
        def auth_controller_did_update(self, controller, current, old, error):  # type: ignore[no-untyped-def]
            heard.append(current)

    core.auth.add_observer(Faulty())
    core.auth.add_observer(Good())
    user = await core.auth.authenticate(SIGN_UP)
    assert heard == [user]


# 5. Commands from other threads.


async def test_5_commands_from_threads_are_delivered_on_one_thread_in_one_order(
    core: MimiCore,
) -> None:
    """Eight threads dispatching at once: one delivery thread, no overlap, same order."""
    delivery_threads: set[int] = set()
    overlaps = 0
    inside = threading.Lock()
    seen: list[SessionState] = []

    def slow_subscriber(state: SessionState) -> None:
        nonlocal overlaps
        if not inside.acquire(blocking=False):
            overlaps += 1
            return
        try:
            delivery_threads.add(threading.get_ident())
            seen.append(state)
        finally:
            inside.release()

    core.auth.states.subscribe(slow_subscriber)
    other = StateRecorder(core)
    futures = []

    def hammer() -> None:
        for index in range(25):
            futures.append(core.auth.dispatch(LogOut() if index % 3 == 2 else SIGN_UP))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    await asyncio.to_thread(join_all, threads)
    await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
    assert len(futures) == 200
    assert overlaps == 0
    assert delivery_threads == {threading.get_ident()}
    assert seen == other.states
    assert seen[-1] == core.auth.state

    plain = PlainWiring()
    plain_threads: set[int] = set()
    plain_overlaps = 0
    plain_inside = threading.Lock()

    def plain_subscriber(state: SessionState) -> None:
        nonlocal plain_overlaps
        plain_threads.add(threading.get_ident())
        if not plain_inside.acquire(blocking=False):
            plain_overlaps += 1
            return
        time.sleep(0.002)
        plain_inside.release()

    plain.subject.subscribe(plain_subscriber)

    def plain_hammer() -> None:
        for index in range(25):
            try:
                plain.dispatch(LogOut() if index % 3 == 2 else SIGN_UP)
            except MimiCoreError:
                pass
            except RuntimeError:
                pass  # the reducer saw a state another thread changed under it

    plain_workers = [threading.Thread(target=plain_hammer) for _ in range(8)]
    for thread in plain_workers:
        thread.start()
    await asyncio.to_thread(join_all, plain_workers)
    assert len(plain_threads) > 1
    assert plain_overlaps > 0


def test_5_a_replay_may_wait_on_the_publisher_and_misses_nothing() -> None:
    """The replay runs on the subscribing thread outside the stream's lock: it can wait for
    another thread's publishing (a blocking core call does), which is not held up; what was
    published meanwhile follows the replay, in order, once, then the completion."""
    stream = Stream(0)
    earlier: list[object] = []
    stream.observable.subscribe(earlier.append, on_completed=lambda: earlier.append("done"))
    seen: list[object] = []

    def publish_and_complete() -> None:
        stream.publish(1)
        stream.publish(2)
        stream.complete()

    publisher = threading.Thread(target=publish_and_complete, daemon=True)

    def wait_on_the_publisher(value: int) -> None:
        seen.append(value)
        if value == 0:
            publisher.start()
            publisher.join(10)
            seen.append("published" if not publisher.is_alive() else "held up")

    stream.observable.subscribe(wait_on_the_publisher, on_completed=lambda: seen.append("done"))
    assert seen == [0, "published", 1, 2, "done"]
    assert earlier == [0, 1, 2, "done"]


def test_5_a_subscriber_joining_during_a_burst_sees_each_later_value_once() -> None:
    """Subscribing while another thread publishes: the subscriber's values go up by one from
    the replayed one to the last, none twice, none skipped, even as the publisher goes on
    while what piled up during the replay is handed over (20 rounds)."""
    for _ in range(20):
        seen = _join_during_a_burst(last=20_000)
        assert seen == list(range(seen[0], 20_001))


def _join_during_a_burst(*, last: int) -> list[int]:
    stream = Stream(0)
    replaying, piled_up = threading.Event(), threading.Event()
    handing_over, went_on = threading.Event(), threading.Event()

    def burst() -> None:
        for value in range(1, last + 1):
            stream.publish(value)
            if value == 100:
                replaying.wait(10)  # the subscriber joins here
            elif value == 5_000:
                piled_up.set()
                handing_over.wait(10)  # the rest races the hand-over
            elif value == 6_000:
                went_on.set()

    publisher = threading.Thread(target=burst, daemon=True)
    publisher.start()
    seen: list[int] = []

    def record(value: int) -> None:
        seen.append(value)
        if len(seen) == 1:  # a replay that waits while values pile up for it
            replaying.set()
            piled_up.wait(10)
        elif len(seen) == 2:  # the hand-over waits while the publisher goes on
            handing_over.set()
            went_on.wait(10)

    stream.observable.subscribe(record)
    publisher.join(10)
    assert not publisher.is_alive()
    return seen


def test_5_a_replay_that_fails_detached_gets_nothing_published_meanwhile() -> None:
    """With detach, a subscriber whose replay raised hears none of the values published
    while it ran; without, it hears them after the replay."""
    for detach in (True, False):
        stream = Stream(0, detach_failing_subscribers=detach)
        seen: list[int] = []

        def fail_on_replay(
            value: int, stream: Stream[int] = stream, seen: list[int] = seen
        ) -> None:
            seen.append(value)
            if value == 0:
                stream.publish(1)  # held for this subscriber until its replay ends
                raise RuntimeError("subscriber bug")

        stream.observable.subscribe(fail_on_replay)
        stream.publish(2)
        assert seen == ([0] if detach else [0, 1, 2])


# 6. Concurrency policy.


async def test_6_calls_take_effect_in_call_order(core: MimiCore, backend: ScriptedBackend) -> None:
    """A slow call made first still lands first; the last call made decides the end state."""
    backend.script(Reply.succeed(delay=0.05), Reply.succeed())
    slow = asyncio.ensure_future(core.auth.authenticate(SIGN_UP))
    fast = asyncio.ensure_future(core.auth.authenticate(SIGN_UP))
    await asyncio.gather(slow, fast)
    assert core.auth.current_user == fast.result()

    plain_backend = ScriptedBackend()
    plain = PlainWiring(plain_backend)
    plain_backend.script(Reply.succeed(delay=0.05), Reply.succeed())
    first, last = await asyncio.gather(plain.authenticate(SIGN_UP), plain.authenticate(SIGN_UP))
    assert plain.state.user == first != last  # the first call made, landing last, won


async def test_6_cancelling_a_wait_leaves_a_whole_state(
    core: MimiCore, backend: ScriptedBackend
) -> None:
    """Cancel a running call and a queued one: the first completes, the second never runs."""
    backend.script(Reply.succeed(delay=0.05))
    recorder = StateRecorder(core)
    running = asyncio.ensure_future(core.auth.authenticate(SIGN_UP))
    queued = asyncio.ensure_future(core.auth.log_out())
    await asyncio.sleep(0.01)
    running.cancel()
    queued.cancel()
    await asyncio.sleep(0.1)
    assert recorder.transitions == [Transition.INITIAL, Transition.ANONYMOUS_CREATED]
    assert backend.calls == ["sign_up_anonymously"]


async def test_6_close_fails_queued_calls_and_later_calls_raise(backend: ScriptedBackend) -> None:
    """close() fails what is queued, completes the stream, and later calls raise at once."""
    core = await MimiCore.start(
        client_id="app", client_secret="s", backend=backend, configuration=ANONYMOUS_ONLY
    )
    backend.script(Reply.succeed(delay=0.05))
    recorder = StateRecorder(core)
    running = core.auth.dispatch(SIGN_UP)
    queued = core.auth.dispatch(SIGN_UP)
    await asyncio.sleep(0.01)
    await core.close()
    assert running.result().state.transition is Transition.ANONYMOUS_CREATED
    with pytest.raises(CoreClosedError):
        queued.result()
    assert recorder.completed
    with pytest.raises(CoreClosedError):
        await asyncio.wait_for(core.auth.authenticate(SIGN_UP), 1)
    with pytest.raises(CoreClosedError):
        await asyncio.wait_for(asyncio.wrap_future(core.auth.dispatch(SIGN_UP)), 1)
    updates = [state async for state in core.auth.updates()]
    assert updates == []  # a closed core's updates end at once

    plain = PlainWiring()
    plain.subject.on_completed()
    plain.dispatch(SIGN_UP)  # no error for the caller...
    assert plain.state.user is None  # ...yet the sign-in was silently dropped


# 7. The stream never errors.


async def test_7_a_backend_fault_becomes_a_failed_state(
    core: MimiCore, backend: ScriptedBackend
) -> None:
    """A fault in the backend is a FAILED state; the stream lives on and later commands run."""
    backend.script(Reply.fail(RuntimeError("backend bug")))
    errors: list[Exception] = []
    core.auth.states.subscribe(on_error=errors.append)
    recorder = StateRecorder(core)
    with pytest.raises(MimiCoreError) as raised:
        await core.auth.authenticate(SIGN_UP)
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert recorder.states[-1].transition is Transition.FAILED
    assert recorder.states[-1].error is raised.value
    await core.auth.authenticate(SIGN_UP)
    assert recorder.transitions[-1] is Transition.ANONYMOUS_CREATED
    assert errors == []

    plain_backend = ScriptedBackend()
    plain = PlainWiring(plain_backend)
    plain_backend.script(Reply.fail(RuntimeError("backend bug")))
    plain_errors: list[Exception] = []
    plain.subject.subscribe(on_error=plain_errors.append)
    await plain.authenticate(SIGN_UP)
    await plain.authenticate(SIGN_UP)
    assert len(plain_errors) == 1
    assert plain.subject.is_stopped  # nothing after the fault is ever published


class MisbuildingBackend(ScriptedBackend):
    """A custom backend with a bug in one method: it copies the service's JSON fields as they
    come (strings), so building its answer raises, or it answers None instead of a session."""

    def __init__(self, broken: str, *, answers_none: bool) -> None:
        super().__init__()
        self.broken = ""  # set once the user is in: the method that misbuilds from then on
        self._will_break = broken
        self._answers_none = answers_none

    def break_now(self) -> None:
        self.broken = self._will_break

    def _misbuilt(self, method: str, issued: BackendSession) -> BackendSession:
        if self.broken != method:
            return issued
        if self._answers_none:
            return None  # type: ignore[return-value]
        user = issued.user
        flag: Any = "false"  # as the JSON had it
        return BackendSession(MimiUser(user.id, user.anonymous_id, flag), issued.tokens)

    async def authenticate(self, route: AuthRoute, session: Session | None) -> BackendSession:
        return self._misbuilt("authenticate", await super().authenticate(route, session))

    async def refresh(self, session: Session) -> BackendSession:
        return self._misbuilt("refresh", await super().refresh(session))

    async def revoke(self, session: Session, *, everywhere: bool = False) -> None:
        self._build_wrongly("revoke")
        await super().revoke(session, everywhere=everywhere)

    async def delete(self, session: Session) -> None:
        self._build_wrongly("delete")
        await super().delete(session)

    def _build_wrongly(self, method: str) -> None:
        """What a call answering nothing may build: a value of the service's JSON."""
        if self.broken == method:
            lifetime: Any = "3600"
            AuthTokens("access", "refresh", lifetime)


async def _run(core: MimiCore, command: AuthRoute | LogOut | DeleteAccount | None) -> Any:
    """The error ``command`` ended with (None: a forced refresh, through ``refresh()``)."""
    if command is not None:
        return (await core.auth.run(command)).error
    try:
        await core.auth.refresh()
    except MimiCoreError as error:
        return error
    return None


# (backend method, the command that calls it, whether the user stays, the state published)
_MISBUILT_CALLS: dict[
    str, tuple[str, AuthRoute | LogOut | DeleteAccount | None, bool, Transition]
] = {
    "sign-up": ("authenticate", SIGN_UP, False, Transition.FAILED),
    "promotion": (
        "authenticate",
        AuthRoute.promote(email="a@b.test", password="password1"),
        True,
        Transition.FAILED,
    ),
    "refresh": ("refresh", None, True, Transition.DEGRADED),
    "log-in by id after a refused refresh": ("authenticate", None, True, Transition.DEGRADED),
    "log-out everywhere": ("revoke", LogOut(everywhere=True), False, Transition.LOGGED_OUT),
    "account deletion": ("delete", DeleteAccount(), True, Transition.FAILED),
}


# Each call building its answer wrongly (raising) and answering None, but revoke and delete,
# which answer nothing: they raise while building, or not at all.
_MISBUILT_CASES = [
    pytest.param(*call, answers_none, id=f"{name}-{'answers-none' if answers_none else 'raises'}")
    for name, call in _MISBUILT_CALLS.items()
    for answers_none in (False, True)
    if not (answers_none and call[0] in ("revoke", "delete"))
]


@pytest.mark.parametrize(
    ("method", "command", "user_stays", "transition", "answers_none"), _MISBUILT_CASES
)
async def test_7_a_backend_building_a_wrong_answer_fails_the_command_and_the_stream_goes_on(
    method: str,
    command: AuthRoute | LogOut | DeleteAccount | None,
    user_stays: bool,
    transition: Transition,
    answers_none: bool,
) -> None:
    """At every call the core makes, a backend whose answer is of the wrong type (a value built
    from JSON strings, refused at construction, or None) ends the command with a
    MimiCoreError caused by the TypeError, naming no secret; the stream goes on, nothing
    wrong is held or stored, and the next command runs."""
    backend = MisbuildingBackend(method, answers_none=answers_none)
    storage = MemorySessionStorage()
    async with MimiCore.start(backend=backend, storage=storage) as core:
        errors: list[Exception] = []
        core.auth.states.subscribe(on_error=errors.append)
        user = None if command == SIGN_UP else await core.auth.authenticate(SIGN_UP)
        if method == "authenticate" and command is None:  # refused, not ended: log in by id
            backend.script(Reply.fail(SessionRevokedError("invalid_grant", "expired unused")))
        backend.break_now()
        error = await _run(core, command)
        assert isinstance(error, MimiCoreError)
        assert isinstance(error.__cause__, TypeError)
        assert user is None or str(user.anonymous_id) not in str(error.__cause__)
        state = core.auth.state
        assert state.transition is transition
        assert state.user == (user if user_stays else None)
        assert isinstance(state.user is None or state.user.is_anonymous, bool)
        assert (await storage.load() is not None) is user_stays
        backend.broken = ""
        assert (await core.auth.run(LogOut())).error is None
        assert (await core.auth.run(SIGN_UP)).state.transition is Transition.ANONYMOUS_CREATED
        assert errors == []


# Ways to subscribe.


async def test_updates_replays_then_follows_and_ends_on_close(backend: ScriptedBackend) -> None:
    """`async for` gets the current state, then changes, and stops when the core closes."""
    core = await MimiCore.start(
        client_id="app", client_secret="s", backend=backend, configuration=ANONYMOUS_ONLY
    )
    received: list[Transition] = []

    async def consume() -> None:
        async for state in core.auth.updates():
            received.append(state.transition)

    consumer = asyncio.ensure_future(consume())
    await asyncio.sleep(0)
    await core.auth.authenticate(SIGN_UP)
    await asyncio.sleep(0)
    await core.auth.log_out()
    await asyncio.sleep(0)
    await core.close()
    await asyncio.wait_for(consumer, 1)
    assert received == [Transition.INITIAL, Transition.ANONYMOUS_CREATED, Transition.LOGGED_OUT]


async def test_updates_conflates_for_a_slow_consumer(core: MimiCore) -> None:
    """A consumer that falls behind gets the latest state, not a backlog."""
    updates = core.auth.updates()
    assert (await anext(updates)).transition is Transition.INITIAL
    for _ in range(10):
        await core.auth.authenticate(SIGN_UP)
    latest = await anext(updates)
    assert latest == core.auth.state
    await updates.aclose()


async def test_states_can_be_delivered_on_an_asyncio_scheduler(core: MimiCore) -> None:
    """observe_on(AsyncIOThreadSafeScheduler) delivers on the loop, after the publisher."""
    from reactivex import operators as ops
    from reactivex.scheduler.eventloop import AsyncIOThreadSafeScheduler

    loop = asyncio.get_running_loop()
    delivered: list[tuple[Transition, int]] = []
    core.auth.states.pipe(ops.observe_on(AsyncIOThreadSafeScheduler(loop))).subscribe(
        lambda state: delivered.append((state.transition, threading.get_ident()))
    )
    assert delivered == []  # not even the replay is delivered inside subscribe()
    await core.auth.authenticate(SIGN_UP)
    await asyncio.sleep(0.05)
    assert delivered == [
        (Transition.INITIAL, threading.get_ident()),
        (Transition.ANONYMOUS_CREATED, threading.get_ident()),
    ]


async def test_observer_handle_removes_the_observer(core: MimiCore) -> None:
    """add_observer returns a handle whose remove() stops the notifications."""
    heard: list[object] = []

    class Observer:
        def auth_controller_did_update(self, *args: object) -> None:
            heard.append(args)

    handle = core.auth.add_observer(Observer())
    await core.auth.authenticate(SIGN_UP)
    handle.remove()
    handle.remove()
    await core.auth.log_out()
    assert len(heard) == 1


def join_all(threads: list[threading.Thread]) -> None:
    """Wait for every thread to finish."""
    for thread in threads:
        thread.join()
