"""The published states: a ``BehaviorSubject`` that dedupes at the source and isolates
subscribers from each other."""

from __future__ import annotations

from typing import Any

import reactivex
import structlog
from reactivex import abc
from reactivex.subject import BehaviorSubject

from ._state import SessionState

__all__ = ["StateStream"]


class StateStream:
    """Holds the current state and hands each new one to every subscriber.

    ``observable`` replays the current state on subscribe. A subscriber that raises is
    logged and skipped; the others still get the state and the publisher never sees it.
    """

    def __init__(
        self, initial: SessionState, *, logger: structlog.typing.FilteringBoundLogger
    ) -> None:
        self._subject = BehaviorSubject(initial)
        self._log = logger
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
        """End the stream: subscribers get ``on_completed``."""
        self._subject.on_completed()

    def _subscribe(
        self, observer: abc.ObserverBase[SessionState], scheduler: Any = None
    ) -> abc.DisposableBase:
        return self._subject.subscribe(_IsolatedObserver(observer, self._log), scheduler=scheduler)


class _IsolatedObserver(abc.ObserverBase[SessionState]):
    """Forwards to an observer, logging what it raises instead of propagating it."""

    def __init__(
        self, observer: abc.ObserverBase[SessionState], log: structlog.typing.FilteringBoundLogger
    ) -> None:
        self._observer = observer
        self._log = log

    def on_next(self, value: SessionState) -> None:
        try:
            self._observer.on_next(value)
        except Exception as error:
            # Only the type: a subscriber's own message may quote a secret.
            self._log.error("stream.subscriber_failed", error=type(error).__name__)

    def on_error(self, error: Exception) -> None:
        self._observer.on_error(error)

    def on_completed(self) -> None:
        try:
            self._observer.on_completed()
        except Exception as error:
            self._log.error("stream.subscriber_failed", error=type(error).__name__)
