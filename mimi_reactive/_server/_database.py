"""The ``IdentityDatabase`` seam every database implements, with its errors and shared rules.

SQLite implements it (``_sqlite.py``) for one process, PostgreSQL (``_postgres.py``) for
any number of workers; ``_stores.open_database`` opens the one a ``--database`` value names.
Each method is one transaction, but for a user's deletion and log-out everywhere, which end
its sessions in batches (``in_batches``). The records it takes and returns are in
``_records.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from ._records import Expired, NewSession, Rotation, SessionRecord, SigningKeyRecord, UserRecord

__all__ = [
    "SEEN_PRECISION",
    "USER_SESSIONS_BATCH",
    "EmailTakenError",
    "IdentityDatabase",
    "OtherClientError",
    "SchemaError",
    "SchemaTooNewError",
    "SessionGoneError",
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


class EmailTakenError(Exception):
    """The email belongs to another user."""


class SessionGoneError(Exception):
    """The session is gone (revoked, or deleted with its user): nothing was changed. The
    client's public ``SessionEndedError`` is another thing: a session ended on purpose."""


class OtherClientError(Exception):
    """The token belongs to a session issued to another client."""


class SchemaError(Exception):
    """The database's schema cannot be used or brought up to date."""


class SchemaTooNewError(SchemaError):
    """The database was written by a newer version of the server."""


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
        """After a sweep: hand back the space its deletions freed, where the database needs to."""
        ...

    async def ready(self, within: float) -> None:
        """Return once the database answers a trivial query within ``within`` seconds, is
        still the one opened (on PostgreSQL, takes writes); raise what failed (``GET /ready``)."""
        ...

    async def close(self) -> None: ...
