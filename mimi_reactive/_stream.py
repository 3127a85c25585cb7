"""The published states: a ``BehaviorSubject`` that dedupes at the source and isolates
subscribers from each other."""

from __future__ import annotations

from typing import Any

import reactivex
import structlog
from reactivex import abc
from reactivex.disposable import SingleAssignmentDisposable

from ._state import SessionState

__all__ = ["StateStream"]


class StateStream:
    """Holds the current state and hands each new one to every subscriber.

    ``observable`` replays the current state on subscribe. Only the store's worker publishes,
    so states go out one at a time, each to every subscriber before the next. A subscriber
    that raises is logged and skipped (and unsubscribed if ``detach_failing_subscribers``);
    the others still get the state and the publisher never sees the error. The stream never
    sends ``on_error``: failures are states.
    """

    def __init__(
        self,
        initial: SessionState,
        *,
        logger: structlog.typing.FilteringBoundLogger,
        detach_failing_subscribers: bool = False,
    ) -> None:
        self._subject = reactivex.subject.BehaviorSubject(initial)
        self._log = logger
        self._detach = detach_failing_subscribers
        self.observable: reactivex.Observable[SessionState] = reactivex.create(self._subscribe)

    @property
    def value(self) -> SessionState:
        """The state last published."""
        return self._subject.value

    def publish(self, state: SessionState) -> None:
        """Hand ``state`` to every subscriber, unless it equals the current one."""
        if state == self._subject.value:
            return
        self._subject.on_next(state)

    def complete(self) -> None:
        """End the stream: subscribers get ``on_completed``. Idempotent."""
        self._subject.on_completed()

    def _subscribe(
        self, observer: abc.ObserverBase[SessionState], scheduler: Any = None
    ) -> abc.DisposableBase:
        isolated = _IsolatedObserver(observer, self._log, detach=self._detach)
        isolated.subscription.disposable = self._subject.subscribe(isolated, scheduler=scheduler)
        return isolated.subscription


class _IsolatedObserver(abc.ObserverBase[SessionState]):
    """Forwards to an observer, logging what it raises instead of propagating it."""

    def __init__(
        self,
        observer: abc.ObserverBase[SessionState],
        log: structlog.typing.FilteringBoundLogger,
        *,
        detach: bool,
    ) -> None:
        self._observer = observer
        self._log = log
        self._detach = detach
        # Assigned once subscribed; disposing it early (a failure during the replay) still
        # takes effect when the assignment happens.
        self.subscription = SingleAssignmentDisposable()

    def on_next(self, value: SessionState) -> None:
        if self.subscription.is_disposed:
            return
        try:
            self._observer.on_next(value)
        except Exception as error:
            self._failed(error)

    def on_error(self, error: Exception) -> None:
        self._observer.on_error(error)

    def on_completed(self) -> None:
        try:
            self._observer.on_completed()
        except Exception as error:
            self._failed(error)

    def _failed(self, error: Exception) -> None:
        # Only the type: a subscriber's own message may quote a secret.
        self._log.error(
            "stream.subscriber_failed", error=type(error).__name__, detached=self._detach
        )
        if self._detach:
            self.subscription.dispose()
