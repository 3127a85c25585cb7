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
    """

    allow_anonymous_user_only: bool = False
