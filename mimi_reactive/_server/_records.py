"""What the server stores, as records, and the ``IdentityDatabase`` seam every store implements.

SQLite implements it (``_sqlite.py``) for one process, PostgreSQL (``_postgres.py``) for
any number of workers. Each method is one transaction, but for a user's deletion and log-out
everywhere, which end its sessions in batches (``in_batches``).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import attrs

__all__ = [
    "SEEN_PRECISION",
    "USER_SESSIONS_BATCH",
    "AccessClaims",
    "EmailTakenError",
    "Expired",
    "IdentityDatabase",
    "NewSession",
    "OtherClientError",
    "Rotation",
    "SessionGoneError",
    "SessionRecord",
    "SigningKeyRecord",
    "SweepCounts",
    "SweepRules",
    "UserRecord",
    "in_batches",
]


SEEN_PRECISION = 3600.0
"""A user's ``last_seen_at`` is kept to within this many seconds: written at most once an
hour per user, so most log-ins and renewals leave the users table and its indexes alone.
Anonymous retention counts in days, so an hour is well inside what it needs."""


USER_SESSIONS_BATCH = 250
"""Sessions a user's deletion or log-out everywhere ends per transaction, as many as a sweep's
batch (``_sweeper.SWEEP_BATCH``): a user with a million sessions (log-ins by id are not
limited) is ended in short transactions that each fit the storage timeout, other requests
running between them, where one transaction over them all outran the timeout and was rolled
back every time."""


async def in_batches(step: Callable[[int], Awaitable[int]], size: int) -> int:
    """Run ``step(size)``, a batch of at most ``size`` rows in a transaction of its own that
    says how many it found, again until one finds fewer: rows that appear meanwhile are found
    by a later batch. How many were found in all."""
    found = 0
    while True:
        batch = await step(size)
        found += batch
        if batch < size:
            return found


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
    Its access token is signed after it is stored: the store keeps nothing of that token."""

    id: str
    client_id: str
    refresh_digest: str
    now: float


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


class EmailTakenError(Exception):
    """The email belongs to another user."""


class SessionGoneError(Exception):
    """The session is gone (revoked, or deleted with its user): nothing was changed. The
    client's public ``SessionEndedError`` is another thing: a session ended on purpose."""


class OtherClientError(Exception):
    """The token belongs to a session issued to another client."""


class IdentityDatabase(Protocol):
    """What the server needs from storage; SQLite and PostgreSQL implement it."""

    async def create_user(
        self,
        *,
        user_id: str,
        anonymous_id_digest: str | None,
        email: str | None,
        password_hash: str | None,
        session: NewSession,
        anonymous_only: bool = False,
    ) -> UserRecord: ...

    async def log_in_anonymously(
        self, anonymous_id_digest: str, session: NewSession, *, anonymous_only: bool = False
    ) -> UserRecord | None:
        """The user with this anonymous id, with ``session`` stored as a new session of it
        (and, for an ``anonymous_only`` client, the user marked so); None (and nothing stored)
        if there is no such user."""
        ...

    async def user_by_email(self, email: str) -> UserRecord | None: ...

    async def user_by_id(self, user_id: str) -> UserRecord | None: ...

    async def promote(
        self, user_id: str, *, session_id: str, email: str, password_hash: str
    ) -> UserRecord | None:
        """The user with these credentials, no longer anonymous; None (and nothing changed) if
        it cannot be promoted: not anonymous, or ``anonymous_only``. ``SessionGoneError``
        (nothing changed) unless ``session_id``, the caller's session, is a live session of
        the user in the same transaction: a log-out while the password hashed wins."""
        ...

    async def delete_user(self, user_id: str, *, batch: int = USER_SESSIONS_BATCH) -> bool:
        """Delete the user with every session and token; whether there was one. Its sessions
        go ``batch`` at a time (``in_batches``), then the user with any created meanwhile, so
        once it returns no session of the user is left; one that fails part way has ended
        some sessions only."""
        ...

    async def create_session(self, user_id: str, session: NewSession) -> SessionRecord | None:
        """``session`` stored as a new session of the user (seen now); None (and nothing
        stored) if there is no such user, as when it was deleted since it was looked up."""
        ...

    async def session_by_id(self, session_id: str) -> SessionRecord | None:
        """The session, unless it has ended (revoked, or deleted with its user)."""
        ...

    async def touch_session(self, session_id: str, now: float) -> None: ...

    async def rotate_refresh_token(
        self,
        refresh_digest: str,
        *,
        client_id: str,
        new_refresh_digest: str,
        now: float,
        idle_timeout: float,
        reuse_interval: float,
        anonymous_only: bool = False,
    ) -> tuple[Rotation, SessionRecord | None, UserRecord | None]:
        """Spend a refresh token for a new pair (see ``SqliteIdentityDatabase``); for an
        ``anonymous_only`` client, its user is marked so (users from before the mark existed)."""
        ...

    async def revoke_session(self, session_id: str, now: float) -> bool:
        """End the session (a log-out), unless it has ended; whether it did."""
        ...

    async def revoke_session_by_refresh_token(
        self, refresh_digest: str, now: float, *, client_id: str
    ) -> bool:
        """End the session this refresh token (spent or not) belongs to, as
        ``revoke_session``; ``OtherClientError`` (ending nothing) if that session was issued
        to another client than ``client_id``."""
        ...

    async def revoke_user_sessions(
        self, user_id: str, now: float, *, batch: int = USER_SESSIONS_BATCH
    ) -> int:
        """Revoke every live session of the user (a log-out everywhere), ``batch`` at a time
        (``in_batches``) until a batch finds fewer, so sessions created while it runs end too;
        how many it revoked. One that fails part way has ended some sessions only."""
        ...

    async def signing_keys(self) -> Sequence[SigningKeyRecord]: ...

    async def add_signing_key(self, key: SigningKeyRecord) -> None: ...

    async def ensure_signing_key(self, first: SigningKeyRecord) -> Sequence[SigningKeyRecord]: ...

    async def delete_batch(self, rule: Expired, before: float, limit: int) -> int:
        """Delete at most ``limit`` of the rows ``rule`` finds due by ``before``, in one
        transaction; how many (the rule's own table's rows, not those the foreign keys
        cascade to). The sweep (``_sweeper.sweep``) repeats it until it deletes fewer."""
        ...

    async def compact(self) -> None:
        """After a sweep: hand back the space its deletions freed, where the store needs to."""
        ...

    async def ready(self, within: float) -> None:
        """Return once the store answers a trivial query within ``within`` seconds, and is
        still the one opened; raise what failed (``GET /ready``)."""
        ...

    async def close(self) -> None: ...
