"""The retry policy for network trouble: what is worth retrying, and backoff with jitter."""

from __future__ import annotations

from collections.abc import Callable
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

__all__ = ["retrying", "worth_retrying"]


def retrying(
    policy: RetryPolicy,
    retry_on: Callable[[BaseException], bool],
    *,
    at_least: Callable[[], float] | None = None,
) -> AsyncRetrying:
    """Capped exponential backoff with full jitter, for a bounded number of attempts.

    ``at_least`` gives the shortest wait the service asked for (``Retry-After``) before the
    next attempt, read when each wait begins.
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
            return max(backoff(retry_state), floor())

    return AsyncRetrying(
        wait=backoff if at_least is None else wait,
        stop=stop_after_attempt(policy.max_attempts),
        retry=retry_if_exception(retry_on),
    )


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
