"""The session the core holds and its storage keeps, and the one rule for refreshing it."""

from __future__ import annotations

import attrs

from ._checks import (
    LATEST_INSTANT,
    instance_of,
    instant,
    lifetime,
    optional_text,
    refresh_interval,
    seconds,
    share,
    text,
)
from ._user import MimiUser
from ._values import field_setters, value_eq, value_hash, value_repr

__all__ = ["AuthTokens", "BackendSession", "RefreshPolicy", "Session"]


@attrs.frozen
class AuthTokens:
    """The tokens of one session. ``expires_in`` is the service's lifetime, in seconds (None:
    they never expire), from 0 to a century: more raises ``ValueError``, a wrong type
    ``TypeError`` (messages name the field, never a token)."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    access_token: str = attrs.field(repr=False, validator=text)
    refresh_token: str | None = attrs.field(default=None, repr=False, validator=optional_text)
    expires_in: float | None = attrs.field(default=None, validator=lifetime)


@attrs.frozen
class BackendSession:
    """A user and the tokens the service issued for them, as a backend returns them."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    user: MimiUser = attrs.field(validator=instance_of(MimiUser))
    tokens: AuthTokens = attrs.field(validator=instance_of(AuthTokens))


@attrs.frozen
class Session:
    """A logged-in user, their tokens, and when (on this machine's clock) the tokens came.

    Expiry is worked out from the service's lifetime (``tokens.expires_in``) and the local
    ``obtained_at``, never from the service's clock, so clock skew cannot cause refresh loops.
    An ``obtained_at`` ahead of the clock (it was set back since, or a stored time is wrong)
    counts as now: no token lives longer than its lifetime from now. ``obtained_at`` is a
    time from 0 up to the year 5000 (``ValueError`` beyond), so every session can be stored
    and read back.
    """

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    user: MimiUser = attrs.field(validator=instance_of(MimiUser))
    tokens: AuthTokens = attrs.field(validator=instance_of(AuthTokens))
    obtained_at: float = attrs.field(validator=instant)

    @classmethod
    def issued(cls, issued: BackendSession, obtained_at: float) -> Session:
        """The session a backend issued, stamped with the local time it arrived; a backend
        that answered anything but a ``BackendSession`` raises ``TypeError``."""
        if not isinstance(issued, BackendSession):
            raise TypeError(f"a backend must answer a BackendSession, not {type(issued).__name__}")
        # Every sign-in and switch passes here: the user and tokens were checked when the
        # BackendSession was made, so only the time is, and a float clock reading within
        # bounds needs no call (anything else goes to the validator, which raises or passes).
        if type(obtained_at) is not float or not 0.0 <= obtained_at <= LATEST_INSTANT:
            instant(None, _OBTAINED_AT, obtained_at)
        session = object.__new__(cls)
        _set_user(session, issued.user)
        _set_tokens(session, issued.tokens)
        _set_obtained_at(session, obtained_at)
        return session

    def expires_at(self, now: float) -> float | None:
        """Local time the access token expires, as seen at ``now``: the service's lifetime
        counted from ``obtained_at``, or from ``now`` if that lies ahead of it. None if the
        service gave it none."""
        expires_in = self.tokens.expires_in
        if expires_in is None:
            return None
        obtained_at = self.obtained_at  # no min(): this runs at every sign-in and switch
        return (obtained_at if obtained_at <= now else now) + expires_in


_OBTAINED_AT = attrs.fields(Session).obtained_at
_set_user, _set_tokens, _set_obtained_at = field_setters(Session)


@attrs.frozen
class RefreshPolicy:
    """When a session's tokens are due for refresh and when its access token stops being
    handed out. The guards, the keeper and the access-token path all ask this one object.

    Because the service rotates refresh tokens, refreshing too late loses a call and
    refreshing wrongly can cost the session: every caller must agree, so there is one rule.
    Every answer is for a time ``now`` on the local wall clock, which may have jumped since the
    tokens came: tokens obtained after ``now`` are of unknown age, so they are due at once.
    """

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    ahead: float = attrs.field(default=0.2, validator=share)
    """Refresh when this share (from 0 up to, not including, 1) of the lifetime is left."""
    leeway: float = attrs.field(default=30.0, validator=seconds)
    """Stop handing out an access token this many seconds before it expires (at most a tenth
    of its lifetime): a call made with it could reach the service after it expired."""
    min_interval: float = attrs.field(default=1.0, validator=refresh_interval)
    """However short the lifetimes a service hands out, the keeper refreshes in the
    background at most this often (seconds, 0.01 or more: 0 would let it loop)."""

    def usable_until(self, session: Session, now: float) -> float | None:
        """Local time after which the access token is not handed out, as seen at ``now``;
        None: never expires."""
        expires_in, expires_at = session.tokens.expires_in, session.expires_at(now)
        if expires_in is None or expires_at is None:
            return None
        return expires_at - min(self.leeway, expires_in * 0.1)

    def is_usable(self, session: Session, now: float) -> bool:
        """Whether the access token may be handed out at ``now``."""
        until = self.usable_until(session, now)
        return until is None or now < until

    def due_at(self, session: Session, now: float) -> float | None:
        """Local time the tokens are due for refresh, as seen at ``now``: when ``ahead`` of
        the lifetime is left, not before ``min_interval`` after they came, and never after
        they stop being usable; ``now`` if they came after ``now``. None if they never
        expire."""
        until = self.usable_until(session, now)
        expires_in = session.tokens.expires_in
        if until is None or expires_in is None:
            return None
        if session.obtained_at > now:
            # Counting from now would put the due time off for as long as the clock stays
            # behind; the refresh stamps tokens with this clock's time instead.
            return now
        ahead = session.obtained_at + expires_in * (1.0 - self.ahead)
        return min(max(ahead, session.obtained_at + self.min_interval), until)

    def is_due(self, session: Session, now: float) -> bool:
        """Whether the tokens are due for refresh at ``now``."""
        due = self.due_at(session, now)
        return due is not None and now >= due

    def next_refresh_at(self, session: Session, *, degraded: bool, now: float) -> float | None:
        """When the keeper should next refresh in the background: now for a degraded session
        (the keeper spaces retries out), else when due but never sooner than ``min_interval``
        after the tokens came, so a tiny lifetime cannot make a tight loop. None: never."""
        if degraded:
            return now
        due = self.due_at(session, now)
        if due is None or session.obtained_at > now:
            return due
        return max(due, session.obtained_at + self.min_interval)
