"""``GET /ready``'s check, run at most once per ``READY_CACHE`` seconds in each process.

Anyone may ask ``/ready`` (it is public, on the public port), and each check is a database
query and, while a limit is on, a write to the rate-limit storage: a flood of probes would
take the database pool from real calls and make readiness flap. So each process keeps its
last answer ``READY_CACHE`` seconds, as the JWKS keeps its keys (``KEY_READ_THROTTLE``), and
probes that arrive while a check runs wait for that check rather than start their own: a
flood costs one check a second.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

from ._limits import RateLimitStorageError, limits_on

if TYPE_CHECKING:
    from ._context import ServerState

__all__ = ["READY_CACHE", "Readiness"]

READY_CACHE = 1.0
"""Seconds a process keeps its last readiness answer: far below a load balancer's probe
interval (5 to 30 s), so an outage is still seen at the next probe."""


class Readiness:
    """The last readiness answer of this process, and when (by the server clock) it was
    checked."""

    def __init__(self) -> None:
        self._checked_at = -math.inf
        self._ready = False
        self._lock = asyncio.Lock()

    def _fresh(self, now: float) -> bool:
        return 0 <= now - self._checked_at < READY_CACHE

    async def ready(self, state: ServerState) -> bool:
        """Whether this process is ready, checked again once the last answer is
        ``READY_CACHE`` old (a clock moved back checks again too)."""
        if self._fresh(state.settings.clock()):
            return self._ready
        async with self._lock:
            if not self._fresh(state.settings.clock()):  # no other probe checked meanwhile
                self._ready = await _check(state)
                self._checked_at = state.settings.clock()
        return self._ready


async def _check(state: ServerState) -> bool:
    """The database answers a trivial query within ``storage_timeout`` and is still the one
    opened (a SQLite file removed or replaced is not) and takes writes (a PostgreSQL standby
    does not), and while a limit is on the rate-limit
    storage takes a write in that time too (each sign-up and log-in counts there: a
    read-only replica or a full Redis answers them all 503). Each failure is logged once per
    check, at warning."""
    try:
        await state.database.ready(state.settings.storage_timeout)
        await state.tokens.ensure_loaded(state.database)  # a worker started during an outage
    except Exception as error:
        state.log.warning("database.not_ready", error=type(error).__name__)
        return False
    if limits_on(state.settings):
        try:
            await state.limiter.ready()
        except RateLimitStorageError as error:
            state.log.warning(
                "rate_limit.storage_failed",
                route="/ready",
                storage=error.storage,
                timed_out=error.timed_out,
            )
            return False
    return True
