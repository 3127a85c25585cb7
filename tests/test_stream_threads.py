"""Guarantee 5: commands from other threads are delivered on the loop's thread in one order,
and a new subscriber's replay on its own thread misses nothing published meanwhile.

Each scenario breaks on plain BehaviorSubject wiring and holds on ours. Numbers follow
docs/guarantees.md.
"""

from __future__ import annotations

import asyncio
import threading
import time

from mimi_reactive import LogOut, MimiCore, MimiCoreError, SessionState
from mimi_reactive._stream import Stream
from mimi_reactive.testing import StateRecorder

from .helpers import SIGN_UP, join_all
from .plain_wiring import PlainWiring

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
