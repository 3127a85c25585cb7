"""How ``serve`` hears the signals that stop it: cleanly once it listens, and at once while
it starts (a store that does not answer would otherwise hold a stopped service)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["STOP_SIGNALS", "StartStoppedError", "stoppable"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""What stops ``serve`` cleanly (requests answered, the database closed, SQLite's -wal and -shm
files removed): SIGHUP too, which a closed terminal or an SSH session that ends sends, and
which would otherwise kill the process where it stands."""


class StartStoppedError(Exception):
    """SIGTERM or SIGHUP came while ``serve`` was starting: the start was cancelled."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_T = TypeVar("_T")


async def stoppable(start: Awaitable[_T]) -> _T:
    """``start``'s result; SIGTERM or SIGHUP meanwhile cancels it (it cleans up after itself)
    and raises ``StartStoppedError``, as a Ctrl-C is asyncio.run's: a start waiting out a store
    that does not answer (up to --storage-timeout) or a migration's locks would otherwise hold
    a stopped service until it fails ("does not answer") or starts only to stop."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received: list[int] = []

    def stop(signum: int) -> None:
        if not received:  # one cancellation, so that one uncancel takes it back
            task.cancel()
        received.append(signum)

    stopping = [signal.SIGTERM, signal.SIGHUP]
    for signum in stopping:
        loop.add_signal_handler(signum, stop, signum)
    try:
        result = await start
    except asyncio.CancelledError:
        if not received:
            raise  # a Ctrl-C: asyncio.run's
    finally:
        for signum in stopping:
            loop.remove_signal_handler(signum)
    if received:  # the start ended (or finished) on the cancellation: what follows may wait
        task.uncancel()
        raise StartStoppedError(received[0])
    return result
