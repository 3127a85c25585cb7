"""The session as the stream publishes it."""

from __future__ import annotations

import enum

import attrs

from ._exceptions import MimiCoreError
from ._user import MimiUser
from ._values import value_eq, value_hash, value_repr

__all__ = ["SessionState", "Transition"]


class Transition(enum.Enum):
    """What happened to reach a state."""

    INITIAL = "initial"
    """The core started with no user."""
    RESTORED = "restored"
    """The core started with the user of the stored session."""
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
    DELETED = "deleted"
    """The user deleted their account; nobody is logged in."""
    LOGGED_OUT = "logged_out"
    """The user logged out (here, or in another process sharing the storage)."""
    SESSION_EXPIRED = "session_expired"
    """The service refused to renew the session (ended on purpose, reused, or expired with
    no anonymous id to log back in by), or, with ``allow_anonymous_user_only``, answered
    with a user made non-anonymous elsewhere: nobody is logged in and ``error`` says why."""
    DEGRADED = "degraded"
    """The session could not be renewed for now (network or service trouble), its renewed
    tokens could not be saved, or the shared storage lost it (its file removed or unreadable:
    written back); the user stays logged in, ``degraded`` is set and the core keeps renewing."""
    RECOVERED = "recovered"
    """A renewal succeeded after the session was degraded, or the session a save failed to
    keep was written back to the storage (when no renewal has failed since)."""
    FAILED = "failed"
    """A command failed; ``error`` says why and the user is as before."""


@attrs.frozen
class SessionState:
    """One published state of the session.

    ``user`` is who is logged in now (None if nobody), ``previous_user`` who was before the
    transition, ``error`` the failure when ``transition`` is ``FAILED``, ``DEGRADED`` or
    ``SESSION_EXPIRED``, or a ``SessionStorageError`` beside any other transition whose
    change the storage could not keep. ``degraded`` stays set from ``DEGRADED`` (or a
    sign-in not kept) until a renewal succeeds and is kept.
    """

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    user: MimiUser | None = None
    previous_user: MimiUser | None = None
    transition: Transition = Transition.INITIAL
    error: MimiCoreError | None = None
    degraded: bool = False

    @property
    def is_logged_in(self) -> bool:
        """Whether a user is logged in."""
        return self.user is not None
