"""The published streams (states, access tokens): a ``BehaviorSubject`` whose every subscriber
is isolated from the others, at the cost of one ``try`` per delivery."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import reactivex
from reactivex import abc
from reactivex.disposable import Disposable
from reactivex.subject import BehaviorSubject
from reactivex.subject.innersubscription import InnerSubscription

from ._log import Log

__all__ = ["Stream"]

_log = Log("mimi_reactive.stream")

T = TypeVar("T")


class Stream(Generic[T]):
    """Holds the current value and hands each new one to every subscriber.

    ``observable`` replays the current value on subscribe, on the subscribing thread. Only
    the store publishes, on its loop's thread, so values go out one at a time, each handed to every
    subscriber before the next, except a subscriber whose replay is still running: what is
    published meanwhile waits for it and follows the replay on its thread, in order, before
    it gets anything directly. Every subscriber thus sees the same values in the same
    order, but one still replaying may see a value after ``publish`` returned. A subscriber
    that raises is logged with its traceback and skipped (and unsubscribed if
    ``detach_failing_subscribers``); the others still get the value and the publisher never
    sees the error. The stream never sends ``on_error``: failures are states.
    """

    def __init__(self, initial: T, *, detach_failing_subscribers: bool = False) -> None:
        self._subject = _IsolatingSubject(initial, detach=detach_failing_subscribers)
        # Read-only to subscribers: they get an Observable, never the subject's on_next.
        self.observable: reactivex.Observable[T] = reactivex.Observable(
            self._subject.subscribe_isolated
        )
        self.publish = self._subject.push
        """Make a value the current one and hand it to every subscriber (one still replaying
        gets it after its replay), unless it equals the current one or the stream is
        complete; True if it is the value now."""
        self.complete = self._subject.complete
        """End the stream: subscribers get ``on_completed`` (one still replaying, after
        what is held for it). Idempotent."""

    @property
    def value(self) -> T:
        """The value last published."""
        return self._subject.value


class _IsolatingSubject(BehaviorSubject[T]):
    """A ``BehaviorSubject`` that catches what each observer raises (one ``try`` per
    delivery, no wrapper), logs it, and goes on with the others.

    A new observer's replay runs outside the lock, so it may block on the publisher (a
    blocking core call from the replay on the subscribing thread). Until it returns, what is
    published for that observer waits in its buffer; the subscribing thread then hands it
    over, in order, before the observer gets anything directly. The publisher pays for this
    one truth test per value while no replay is running.
    """

    def __init__(self, initial: T, *, detach: bool) -> None:
        super().__init__(initial)
        self._detach = detach
        # id(observer) -> what was published for it while its replay ran (_COMPLETED last
        # if the stream completed meanwhile). Ids cannot collide: an entry lives only while
        # its subscribe call runs, which holds the observer, and reactivex's subscribe wraps
        # every subscription in an observer of its own, even for the same observer twice.
        self._replaying: dict[int, list[Any]] = {}

    def push(self, state: T) -> bool:
        with self.lock:
            if state is self.value or state == self.value or self.is_stopped:
                return False
            self.value = state
            observers = self.observers.copy()
            if self._replaying:
                observers = self._hold(observers, state)
        for observer in observers:
            try:
                observer.on_next(state)
            except Exception as error:
                self._failed(observer, error)
        return True

    def complete(self) -> None:
        with self.lock:
            if self.is_stopped:
                return
            self.is_stopped = True
            observers = self.observers.copy()
            self.observers.clear()
            if self._replaying:
                observers = self._hold(observers, _COMPLETED)
        for observer in observers:
            try:
                observer.on_completed()
            except Exception as error:
                self._failed(observer, error)

    def subscribe_isolated(
        self,
        observer: abc.ObserverBase[T],
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase:
        held: list[Any] = []
        with self.lock:
            stopped = self.is_stopped
            if not stopped:
                self.observers.append(observer)
                # Whatever is published from now on waits here until the replay is done.
                self._replaying[id(observer)] = held
                replay = self.value
        if stopped:
            observer.on_completed()
            return Disposable()
        subscription = InnerSubscription(self, observer)
        try:
            if self._deliver(observer, replay):
                self._hand_over(observer, held)
            else:  # detached by its failure: nothing more for it
                with self.lock:
                    del self._replaying[id(observer)]
        except BaseException:  # KeyboardInterrupt in a blocking call the replay made, say
            # subscribe() raises, so its caller never holds the subscription: left
            # subscribed, the observer would only pile up values it is never handed.
            with self.lock:
                self._replaying.pop(id(observer), None)
                if observer in self.observers:
                    self.observers.remove(observer)
            raise
        return subscription

    def _hold(self, observers: list[abc.ObserverBase[T]], value: Any) -> list[Any]:
        """Keep ``value`` for the observers whose replay is running (called under the lock);
        the others, to deliver it to now."""
        now = []
        for observer in observers:
            held = self._replaying.get(id(observer))
            if held is None:
                now.append(observer)
            else:
                held.append(value)
        return now

    def _hand_over(self, observer: abc.ObserverBase[T], held: list[Any]) -> None:
        """Deliver what was published during the replay, until nothing is left; from then
        on the publisher delivers directly."""
        while True:
            with self.lock:
                if not held:
                    del self._replaying[id(observer)]
                    return
                values = held.copy()
                held.clear()
            for value in values:
                if value is _COMPLETED:
                    try:
                        observer.on_completed()
                    except Exception as error:
                        self._failed(observer, error)
                elif not self._deliver(observer, value):
                    with self.lock:
                        del self._replaying[id(observer)]
                    return

    def _deliver(self, observer: abc.ObserverBase[T], value: Any) -> bool:
        """Hand ``value`` to ``observer``; False if it raised and was detached for it."""
        try:
            observer.on_next(value)
        except Exception as error:
            self._failed(observer, error)
            return not self._detach
        return True

    def _failed(self, observer: Any, error: Exception) -> None:
        # The subscriber is the app's own code: its traceback helps, and holds no secret of
        # ours (states and users mask their secrets in their reprs).
        _log.error("stream.subscriber_failed", exc_info=error, detached=self._detach)
        if self._detach:
            with self.lock:
                if observer in self.observers:
                    self.observers.remove(observer)


_COMPLETED = object()
"""Held for an observer whose replay ran when the stream completed."""
