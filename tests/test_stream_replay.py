"""A subscriber's replay interrupted by a request to stop (KeyboardInterrupt, SystemExit)
leaves the stream as if it had never subscribed."""

from __future__ import annotations

import pytest

from mimi_reactive._stream import Stream

# (the value whose delivery the interrupt stops, what stops it)
INTERRUPTS = [
    pytest.param(0, KeyboardInterrupt, id="replay-ctrl-c"),
    pytest.param(0, SystemExit, id="replay-exit"),
    pytest.param(1, KeyboardInterrupt, id="hand-over-ctrl-c"),
    pytest.param(1, SystemExit, id="hand-over-exit"),
]


@pytest.mark.parametrize("detach", [False, True])
@pytest.mark.parametrize(("stopped_at", "stop"), INTERRUPTS)
def test_an_interrupted_subscribe_is_undone(
    stopped_at: int, stop: type[BaseException], detach: bool
) -> None:
    """subscribe() raises the interrupt, the interrupted subscriber gets nothing more and is
    neither subscribed nor holding values published later; the others get every value."""
    stream = Stream(0, detach_failing_subscribers=detach)
    other: list[int] = []
    stream.observable.subscribe(other.append)
    seen: list[int] = []

    def interrupted(value: int) -> None:
        seen.append(value)
        if value == 0:
            stream.publish(1)  # held for this subscriber until its replay ends
        if value == stopped_at:
            raise stop()

    with pytest.raises(stop):
        stream.observable.subscribe(interrupted)
    for value in range(2, 1_002):
        stream.publish(value)
    assert seen == list(range(stopped_at + 1))
    assert other == list(range(1_002))
    subject = stream._subject
    assert subject._replaying == {}
    assert len(subject.observers) == 1


def test_one_observer_subscribed_twice_gets_each_value_once_per_subscription() -> None:
    """The same observer object subscribed twice, the second time from its own replay while
    values are held for the first: each subscription hands it every value once, in order."""
    stream = Stream(0)
    seen: list[int] = []

    def record(value: int) -> None:
        seen.append(value)
        if len(seen) == 1:
            stream.publish(1)  # held for the first subscription
            stream.observable.subscribe(record)  # replays 1, then gets 2 directly

    stream.observable.subscribe(record)
    stream.publish(2)
    assert seen == [0, 1, 1, 2, 2]
