"""The session as the stream publishes it."""

from __future__ import annotations

import enum

import attrs

from ._exceptions import MimiCoreError
from ._user import MimiUser

__all__ = ["SessionState", "Transition"]


class Transition(enum.Enum):
    """What happened to reach a state."""

    INITIAL = "initial"
    """The core started with no user."""
    ANONYMOUS_CREATED = "anonymous_created"
    """A new anonymous user was created and logged in."""
    LOGGED_IN = "logged_in"
    """An existing user logged in (by anonymous id or credentials)."""
    SIGNED_UP = "signed_up"
    """A new credential user was created and logged in."""
    PROMOTED = "promoted"
    """The anonymous user got credentials and is no longer anonymous."""
    SWITCHED_USER = "switched_user"
    """A different user replaced the one logged in (who was logged out first)."""
    LOGGED_OUT = "logged_out"
    """The user logged out."""
    FAILED = "failed"
    """A command failed; ``error`` says why and the user is as before."""


@attrs.frozen
class SessionState:
    """One published state of the session.

    ``user`` is who is logged in now (None if nobody), ``previous_user`` who was before the
    transition, ``error`` the failure when ``transition`` is ``FAILED``.
    """

    user: MimiUser | None = None
    previous_user: MimiUser | None = None
    transition: Transition = Transition.INITIAL
    error: MimiCoreError | None = None

    @property
    def is_logged_in(self) -> bool:
        """Whether a user is logged in."""
        return self.user is not None
