"""The retry policy for network trouble: what is worth retrying, and backoff with jitter."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ._config import RetryPolicy
from ._exceptions import (
    BackendError,
    ClientAuthenticationError,
    ConflictError,
    InvalidCredentialsError,
    SessionRevokedError,
    SignInMethodDisabledError,
    TransportError,
    WeakPasswordError,
)

if TYPE_CHECKING:
    from tenacity import AsyncRetrying

__all__ = ["LONGEST_ASKED_WAIT", "asked_wait", "retrying", "worth_retrying"]

LONGEST_ASKED_WAIT = 300.0
"""Seconds a wait the service asks for (``Retry-After``) is honoured up to. A broken proxy's
date decades away, or an honest hour, would otherwise park background work long after the
service is back; a wait still longer than our own backoff is kept, so a busy service is
not hammered."""


def retrying(
    policy: RetryPolicy,
    retry_on: Callable[[BaseException], bool],
    *,
    at_least: Callable[[], float] | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> AsyncRetrying:
    """Capped exponential backoff with full jitter, for a bounded number of attempts.

    ``at_least`` gives the shortest wait the service asked for (``Retry-After``) before the
    next attempt, read when each wait begins and honoured up to ``LONGEST_ASKED_WAIT``.
    ``sleep`` waits between attempts (``asyncio.sleep`` if not given); it may raise to stop.
    """
    # Imported here: only a retry needs it, and it is costly to import and to build.
    from tenacity import (
        AsyncRetrying,
        RetryCallState,
        retry_if_exception,
        stop_after_attempt,
        wait_random_exponential,
    )

    backoff = wait_random_exponential(multiplier=policy.initial_delay, max=policy.max_delay)
    if at_least is not None:
        floor = at_least

        def wait(retry_state: RetryCallState) -> float:
            return max(backoff(retry_state), asked_wait(floor()))

    return AsyncRetrying(
        wait=backoff if at_least is None else wait,
        stop=stop_after_attempt(policy.max_attempts),
        retry=retry_if_exception(retry_on),
        sleep=asyncio.sleep if sleep is None else sleep,
    )


def asked_wait(seconds: float) -> float:
    """The part of a wait the service asked for that is honoured: none for a negative or NaN
    one (an app's backend may pass anything), at most ``LONGEST_ASKED_WAIT``."""
    if math.isnan(seconds) or seconds <= 0.0:
        return 0.0
    return min(seconds, LONGEST_ASKED_WAIT)


_REFUSALS = (
    ClientAuthenticationError,
    ConflictError,
    InvalidCredentialsError,
    SessionRevokedError,
    SignInMethodDisabledError,
    WeakPasswordError,
)
"""Answers that say no: asking again gets the same, whatever status a backend gave them (a
test double's errors have none)."""


def worth_retrying(error: BaseException) -> bool:
    """Network trouble and server errors may pass; a refusal will not."""
    if isinstance(error, TransportError):
        return True
    if isinstance(error, _REFUSALS):
        return False
    return isinstance(error, BackendError) and (error.status is None or error.status >= 500)
