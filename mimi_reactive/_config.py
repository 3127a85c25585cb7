"""How the app configures the core."""

from __future__ import annotations

import attrs

__all__ = ["MimiConfiguration"]


@attrs.frozen
class MimiConfiguration:
    """What the app allows.

    ``allow_anonymous_user_only``: the app lets people in only as anonymous users. Logging in
    by anonymous id needs it; with it, credential log-in, sign-up and promotion are refused,
    so an anonymous user never becomes a non-anonymous one.

    ``detach_failing_subscribers``: a subscriber that raises is always logged and never stops
    the others; with this set it is also unsubscribed.
    """

    allow_anonymous_user_only: bool = False
    detach_failing_subscribers: bool = False
    """Stop delivering to a subscriber or observer once it raises (it is logged either way)."""
