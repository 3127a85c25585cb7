"""What the server stores, as records: users, sessions, signing keys, and what a sweep deletes.

``IdentityDatabase`` (``_database.py``) takes and returns these; SQLite (``_sqlite.py``) and
PostgreSQL (``_postgres.py``) implement it.
"""

from __future__ import annotations

import enum

import attrs

__all__ = [
    "AccessClaims",
    "Expired",
    "NewSession",
    "Rotation",
    "SessionRecord",
    "SigningKeyRecord",
    "SweepCounts",
    "SweepRules",
    "UserRecord",
]


@attrs.frozen
class UserRecord:
    """A stored user."""

    id: str
    is_anonymous: bool
    email: str | None
    password_hash: str | None = attrs.field(repr=False)
    anonymous_only: bool = False
    """An anonymous-only client made it or logged it in by id: no client may promote it."""


@attrs.frozen
class SessionRecord:
    """A stored, unrevoked session: one family of rotating refresh tokens."""

    id: str
    user_id: str
    last_used_at: float
    client_id: str | None = None


@attrs.frozen
class AccessClaims:
    """Who a new access token speaks for: what a signed token needs to say."""

    session_id: str
    user_id: str
    is_anonymous: bool
    client_id: str


class Rotation(enum.Enum):
    """What presenting a refresh token did."""

    ROTATED = "rotated"
    """It was current: it is spent now, and a new pair was stored."""
    UNKNOWN = "unknown"
    """No such token (or it belongs to another client)."""
    REVOKED = "revoked"
    """Its session had been ended on purpose (log-out, log-out everywhere, reuse)."""
    REUSED = "reused"
    """It had been spent already: the whole session is revoked now (OAuth 2.0 Security BCP).
    The rotation answers that session (its access tokens end now), for the log."""
    IDLE = "idle"
    """Its session was unused for longer than the idle timeout: revoked now, or earlier."""
    REISSUED = "reissued"
    """It was spent within the reuse interval (a lost answer): a new pair was stored; the
    first unspent token of the session presented next supersedes the others (presenting one
    of them then is reuse)."""

    @classmethod
    def ended(cls, revoked_reason: str | None) -> Rotation:
        """What presenting a token of a session revoked for ``revoked_reason`` did: an idle
        session stays idle and a reused one reused (a client may log back in by id after
        either); any other was ended on purpose."""
        return _ENDED_BY.get(revoked_reason or "", cls.REVOKED)


_ENDED_BY = {"idle": Rotation.IDLE, "refresh_token_reuse": Rotation.REUSED}
"""The rotation a session's stored ``revoked_reason`` answers its tokens with after."""


@attrs.frozen
class NewSession:
    """A new session's id, client, the digest of its first refresh token, and when it starts.
    Its access token is signed after it is stored: the database keeps nothing of that token."""

    id: str
    client_id: str
    refresh_digest: str
    now: float
    max_sessions: int = 0
    """The most live sessions its user may have, this one counted (``max_sessions_per_user``):
    storing it ends the user's least recently used others past that (0: no limit)."""


@attrs.frozen
class SigningKeyRecord:
    """A private key that signs access tokens from ``created_at`` on (a rotated-in key: from
    ``PUBLISH_LEAD`` after the rotation); ``retired_at``: set by the rotation that adds the
    next key, to the instant that key starts signing."""

    kid: str
    algorithm: str
    private_pem: str = attrs.field(repr=False)
    created_at: float
    retired_at: float | None = None


class Expired(enum.Enum):
    """The rules a sweep deletes by, in the order it runs them: each finds the rows of one
    table that are due by a cut-off time. A rule counts only what the rules before it kept:
    a deleted user's sessions, and a deleted session's tokens, go by the foreign keys
    uncounted. Revoked and idle sessions are separate rules: each then walks its own index,
    where one condition with OR scans the whole table, once per batch."""

    ANONYMOUS_USERS = "anonymous_users"
    """Anonymous users last seen before the cut-off."""
    REVOKED_SESSIONS = "revoked_sessions"
    """Sessions revoked before the cut-off (``spent_token_retention`` ago), with their tokens:
    until then a refresh of one says ``revoked`` or ``reused``, not ``unknown``."""
    IDLE_SESSIONS = "idle_sessions"
    """Sessions not revoked and last used before the cut-off, with their tokens."""
    SPENT_TOKENS = "spent_tokens"
    """Refresh tokens spent before the cut-off."""
    RETIRED_KEYS = "retired_keys"
    """Signing keys retired before the cut-off, while a key that signs remains."""


@attrs.frozen
class SweepRules:
    """What a sweep deletes, as cut-off times of the server clock."""

    idle_before: float
    """Sessions last used before this are idle-expired: deleted with their tokens."""
    spent_before: float
    """Spent refresh tokens spent before this, and sessions revoked before this, are deleted:
    until then presenting one says what ended it (reuse, a log-out), not ``unknown``."""
    keys_retired_before: float | None
    """Signing keys retired before this are deleted: every token they signed has expired, and
    the JWKS no longer publishes them (None: retired keys are kept, as when the access-token
    lifetime is not known). The unretired key, which signs, is never deleted."""
    batch: int = attrs.field(validator=attrs.validators.gt(0))
    """Rows deleted per transaction at most (at least 1: a batch of none never ends a rule);
    a rule repeats until a batch deletes fewer."""
    anonymous_unused_before: float | None = None
    """Anonymous users last seen before this are deleted (None: never)."""


@attrs.frozen
class SweepCounts:
    """What one sweep deleted."""

    sessions: int
    refresh_tokens: int
    users: int
    signing_keys: int = 0
