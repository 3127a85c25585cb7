"""When a core an app dropped unclosed is released: a lifetime held by the core and by every
object an app may keep instead of it (its auth controller, an anonymous auth manager).

It holds none of them, so dropping the last one frees it at once (a back-reference from the
controller to its core would make a cycle, left to the cycle collector: the core's thread
and connections would live on until some later collection, or the process's exit)."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

from ._keeper import SessionKeeper
from ._loop_thread import LoopThread
from ._store import SessionStore

__all__ = ["BlockingCoreLifetime", "CoreLifetime"]


class CoreLifetime:
    """A ``MimiCore``'s: once dropped unclosed, it warns and releases the core's parts on
    their loop, if that still runs."""

    __slots__ = ("_grace_period", "_keeper", "_store", "closed")

    def __init__(self, store: SessionStore, keeper: SessionKeeper, grace_period: float) -> None:
        self._store = store
        self._keeper = keeper
        self._grace_period = grace_period
        self.closed = False

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if self.closed or self._store.forked:
            return  # closed, or a forked copy: the core is the parent's to close
        _warn(
            "a MimiCore was never closed: use `async with MimiCore.start(...)` or "
            "`await core.close()`",
            ResourceWarning,
            stacklevel=2,
        )
        # Close what it holds on its loop, if that still runs, so the backend's connections
        # are released instead of reported by the HTTP library as leaked.
        loop = self._store.loop
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to release
            loop.call_soon_threadsafe(_release, self._keeper, self._store, self._grace_period)


class BlockingCoreLifetime:
    """A ``BlockingMimiCore``'s: once dropped unclosed, it warns and schedules the close of
    the core inside, which then stops its thread."""

    __slots__ = ("_close", "_loop")

    def __init__(self, loop: LoopThread, close: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._loop = loop
        self._close = close

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        loop = self._loop
        if loop.closing or loop.forked:
            return
        _warn(
            "a BlockingMimiCore was never closed: use `with BlockingMimiCore.start(...)` or "
            "`core.close()`",
            ResourceWarning,
            stacklevel=2,
        )
        loop.close(self._close, wait=False)  # its thread and connections are released


def _release(keeper: SessionKeeper, store: SessionStore, grace_period: float) -> None:
    """Close an abandoned core's parts in the background, on their loop."""

    async def release() -> None:
        await keeper.close()
        await store.close(grace_period=grace_period)
        await store.close_backend()

    task = asyncio.get_running_loop().create_task(release(), name="mimi_reactive.release")
    _RELEASING.add(task)
    task.add_done_callback(_RELEASING.discard)


_RELEASING: set[asyncio.Task[None]] = set()  # strong references until they finish
