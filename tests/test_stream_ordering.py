"""Guarantees 1-3 and 6: commands run one at a time, queued in call order, and every
subscriber sees one sequence with no repeats; cancelling a wait and close() leave whole states.

Each scenario breaks on plain BehaviorSubject wiring and holds on ours. Numbers follow
docs/guarantees.md.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from reactivex.subject import BehaviorSubject

from mimi_reactive import (
    AuthRoute,
    BackendSession,
    CoreClosedError,
    LogOut,
    MimiCore,
    MimiUser,
    ReentrantCallError,
    Session,
    SessionState,
    Transition,
)
from mimi_reactive._stream import Stream
from mimi_reactive.testing import Reply, ScriptedBackend, StateRecorder

from .conftest import ANONYMOUS_ONLY
from .helpers import SIGN_UP, settle
from .plain_wiring import PlainWiring

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
