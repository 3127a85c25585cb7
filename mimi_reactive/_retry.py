"""The retry policy for network trouble: what is worth retrying, and backoff with jitter."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ._config import RetryPolicy
from ._exceptions import BackendError, TransportError

if TYPE_CHECKING:
    from tenacity import AsyncRetrying

__all__ = ["retrying", "worth_retrying"]


def retrying(policy: RetryPolicy, retry_on: Callable[[BaseException], bool]) -> AsyncRetrying:
    """Capped exponential backoff with full jitter, for a bounded number of attempts."""
    # Imported here: only a retry needs it, and it is costly to import and to build.
    from tenacity import (
        AsyncRetrying,
        retry_if_exception,
        stop_after_attempt,
        wait_random_exponential,
    )

    return AsyncRetrying(
        wait=wait_random_exponential(multiplier=policy.initial_delay, max=policy.max_delay),
        stop=stop_after_attempt(policy.max_attempts),
        retry=retry_if_exception(retry_on),
    )


def worth_retrying(error: BaseException) -> bool:
    """Network trouble and server errors may pass; a refusal will not."""
    if isinstance(error, TransportError):
        return True
    return isinstance(error, BackendError) and (error.status is None or error.status >= 500)
