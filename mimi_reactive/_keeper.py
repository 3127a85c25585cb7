"""Background work that keeps a session alive: refreshing ahead of expiry, and following the
session other processes store."""

from __future__ import annotations

import asyncio
import contextlib

from ._exceptions import CoreClosedError
from ._log import Log
from ._messages import RefreshSession, SyncSession
from ._retry import retrying
from ._storage import SessionStorage, SharedSessionStorage
from ._store import SessionStore

__all__ = ["SessionKeeper"]

_log = Log("mimi_reactive.session")


class _StillDegradedError(Exception):
    """A refresh attempt left the session degraded."""


class SessionKeeper:
    """Refreshes the store's session ahead of expiry, retrying network trouble with backoff,
    and feeds changes made by other processes sharing the storage back into the store."""

    def __init__(self, store: SessionStore, *, storage: SessionStorage) -> None:
        self._store = store
        self._retry = store.configuration.retry
        self._policy = store.configuration.refresh
        self._clock = store.clock
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._refresh_forever(), name="mimi_reactive.renewal")]
        if isinstance(storage, SharedSessionStorage):
            self._tasks.append(
                loop.create_task(self._follow(storage), name="mimi_reactive.storage_watch")
            )
        store.on_session_changed(self._wake.set)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _next_refresh_at(self) -> float | None:
        session = self._store.session
        if session is None or not self._store.can_refresh:
            return None
        degraded = self._store.state.degraded
        return self._policy.next_refresh_at(session, degraded=degraded, now=self._clock())

    async def _refresh_forever(self) -> None:
        with contextlib.suppress(CoreClosedError):
            await self._refresh_while_open()

    async def _refresh_while_open(self) -> None:
        gave_up = False
        while True:
            due = None if gave_up else self._next_refresh_at()
            if due is not None and due <= self._clock():
                gave_up = not await self._refresh_until_healthy()
                continue
            # Sleep until due, or until the session changes (sign-in, refresh, sync, call).
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
            timeout = None if due is None else due - self._clock()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
                self._wake.clear()
                gave_up = False

    async def _refresh_until_healthy(self) -> bool:
        """Refresh, retrying while the session stays degraded; False if it gave up."""
        from tenacity import RetryError  # imported when needed: costly, and rarely needed

        try:
            still_degraded = retrying(self._retry, lambda e: isinstance(e, _StillDegradedError))
            async for attempt in still_degraded:
                with attempt:
                    await self._store.run(RefreshSession())
                    if self._store.state.degraded:
                        raise _StillDegradedError
        except RetryError:
            _log.warning("session.refresh_gave_up", attempts=self._retry.max_attempts)
            return False
        return True

    async def _follow(self, storage: SharedSessionStorage) -> None:
        try:
            async for _ in storage.changes():
                # The store reads the storage when the command runs, in order with its own
                # writes, so a notice that raced our own save never rolls the session back.
                self._store.dispatch(SyncSession())
        except OSError as error:
            _log.error("storage.watch_failed", error=type(error).__name__)
