"""How the app configures the core."""

from __future__ import annotations

import attrs

from ._checks import count, flag, instance_of, seconds
from ._exceptions import ConfigurationError
from ._session import RefreshPolicy
from ._values import value_eq, value_hash, value_repr

__all__ = ["MimiConfiguration", "RetryPolicy"]


@attrs.frozen
class RetryPolicy:
    """Exponential backoff with full jitter, capped, for a bounded number of attempts.

    An ``initial_delay`` above ``max_delay`` raises ``ConfigurationError``: the cap would
    silently shorten the first wait the app asked for."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    initial_delay: float = attrs.field(default=1.0, validator=seconds)
    """Seconds the first wait may last at most."""
    max_delay: float = attrs.field(default=60.0, validator=seconds)
    """Seconds no wait exceeds."""
    max_attempts: int = attrs.field(default=10, validator=count)
    """Attempts with backoff for one refresh; after them the keeper tries once every
    ``max_delay`` until one works or the session changes (a call, a sign-in, another
    process), which starts a new run of attempts."""

    def __attrs_post_init__(self) -> None:  # after each field's own check
        if self.initial_delay > self.max_delay:
            raise ConfigurationError("initial_delay must not be above max_delay")


@attrs.frozen
class MimiConfiguration:
    """What the app allows.

    ``allow_anonymous_user_only``: the app lets people in only as anonymous users. Logging in
    by anonymous id needs it; with it, credential log-in, sign-up and promotion are refused,
    so an anonymous user never becomes a non-anonymous one.

    ``detach_failing_subscribers``: a subscriber that raises is always logged and never stops
    the others; with this set it is also unsubscribed.
    """

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    allow_anonymous_user_only: bool = attrs.field(default=False, validator=flag)
    detach_failing_subscribers: bool = attrs.field(default=False, validator=flag)
    """Stop delivering to a subscriber or observer once it raises (it is logged either way)."""
    refresh: RefreshPolicy = attrs.field(
        factory=RefreshPolicy, validator=instance_of(RefreshPolicy)
    )
    """When tokens are refreshed and stop being handed out."""
    retry: RetryPolicy = attrs.field(default=RetryPolicy(), validator=instance_of(RetryPolicy))
    """How refreshes and revocations that hit network trouble are retried."""
