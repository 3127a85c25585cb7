"""Background work that keeps a session alive: renewing ahead of expiry, and following the
session other processes store."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from tenacity import RetryError

from ._commands import RefreshSession, SyncSession
from ._config import RetryPolicy
from ._effects import retrying
from ._exceptions import CoreClosedError
from ._storage import SessionStorage, SharedSessionStorage
from ._store import SessionStore

__all__ = ["SessionKeeper"]


class _StillDegradedError(Exception):
    """A renewal attempt left the session degraded."""


class SessionKeeper:
    """Renews the store's session ahead of expiry, retrying network trouble with backoff,
    and feeds changes made by other processes sharing the storage back into the store."""

    def __init__(
        self,
        store: SessionStore,
        *,
        storage: SessionStorage,
        retry: RetryPolicy,
        logger: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._store = store
        self._retry = retry
        self._log = logger
        self._clock = store.clock
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._renew_forever(), name="mimi_reactive.renewal")]
        if isinstance(storage, SharedSessionStorage):
            self._tasks.append(
                loop.create_task(self._follow(storage), name="mimi_reactive.storage_watch")
            )
        store.on_session_changed(self._wake.set)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _renew_forever(self) -> None:
        with contextlib.suppress(CoreClosedError):
            await self._renew_while_open()

    async def _renew_while_open(self) -> None:
        gave_up = False
        while True:
            due = None if gave_up else self._store.refresh_due_at()
            if due is not None and due <= self._clock():
                gave_up = not await self._renew_until_healthy()
                continue
            # Sleep until due, or until the session changes (sign-in, renewal, sync, call).
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
            timeout = None if due is None else due - self._clock()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
                self._wake.clear()
                gave_up = False

    async def _renew_until_healthy(self) -> bool:
        """Renew, retrying while the session stays degraded; False if it gave up."""
        try:
            still_degraded = retrying(self._retry, lambda e: isinstance(e, _StillDegradedError))
            async for attempt in still_degraded:
                with attempt:
                    await self._store.execute(RefreshSession())
                    if self._store.state.degraded:
                        raise _StillDegradedError
        except RetryError:
            self._log.warning("session.renewal_gave_up", attempts=self._retry.max_attempts)
            return False
        return True

    async def _follow(self, storage: SharedSessionStorage) -> None:
        try:
            async for _ in storage.changes():
                # The store reads the storage when the command runs, in order with its own
                # writes, so a notice that raced our own save never rolls the session back.
                self._store.dispatch(SyncSession())
        except OSError as error:
            self._log.error("storage.watch_failed", error=type(error).__name__)
