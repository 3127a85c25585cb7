"""The ways to subscribe beside reactivex (docs/guarantees.md): `async for` over updates(),
delivery on another scheduler with observe_on, and observers removed by their handle."""

from __future__ import annotations

import asyncio
import threading

from mimi_reactive import MimiCore, Transition
from mimi_reactive.testing import ScriptedBackend

from .conftest import ANONYMOUS_ONLY
from .helpers import SIGN_UP


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
