"""Where the reference server keeps users and sessions: SQLite, through aiosqlite.

Only digests of anonymous ids and tokens are stored, and Argon2 hashes of passwords.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import aiosqlite
import attrs

__all__ = [
    "EmailTakenError",
    "IdentityDatabase",
    "NewSession",
    "Rotation",
    "SessionRecord",
    "SqliteIdentityDatabase",
    "UserRecord",
]


@attrs.frozen
class UserRecord:
    """A stored user."""

    id: str
    is_anonymous: bool
    email: str | None
    password_hash: str | None = attrs.field(repr=False)


@attrs.frozen
class SessionRecord:
    """A stored, unrevoked session: one family of rotating refresh tokens."""

    id: str
    user_id: str
    access_expires_at: float
    last_used_at: float


class Rotation(enum.Enum):
    """What presenting a refresh token did."""

    ROTATED = "rotated"
    """It was current: it is spent now, and a new pair was stored."""
    UNKNOWN = "unknown"
    """No such token."""
    REVOKED = "revoked"
    """Its session had been revoked (log-out, reuse, idle)."""
    REUSED = "reused"
    """It had been spent already: the whole session is revoked now (OAuth 2.0 Security BCP)."""
    IDLE = "idle"
    """Its session was unused for longer than the idle timeout: revoked now."""
    REISSUED = "reissued"
    """It was spent within the reuse interval (a lost answer): a new pair was stored."""


@attrs.frozen
class NewSession:
    """The digests and expiry of a session's first token pair, to store."""

    access_digest: str
    refresh_digest: str
    access_expires_at: float
    now: float


class EmailTakenError(Exception):
    """The email belongs to another user."""


class IdentityDatabase(Protocol):
    """What the server needs from storage; SQLite implements it, PostgreSQL can later."""

    async def create_user(
        self,
        *,
        anonymous_id_digest: str | None,
        email: str | None,
        password_hash: str | None,
        session: NewSession,
    ) -> UserRecord: ...

    async def user_by_anonymous_id(self, anonymous_id_digest: str) -> UserRecord | None: ...

    async def user_by_email(self, email: str) -> UserRecord | None: ...

    async def user_by_id(self, user_id: str) -> UserRecord | None: ...

    async def promote(self, user_id: str, *, email: str, password_hash: str) -> UserRecord: ...

    async def create_session(self, user_id: str, session: NewSession) -> SessionRecord: ...

    async def session_by_access_token(self, access_digest: str) -> SessionRecord | None: ...

    async def touch_session(self, session_id: str, now: float) -> None: ...

    async def rotate_refresh_token(
        self,
        refresh_digest: str,
        *,
        new_refresh_digest: str,
        new_access_digest: str,
        access_expires_at: float,
        now: float,
        idle_timeout: float,
        reuse_interval: float,
    ) -> tuple[Rotation, SessionRecord | None]: ...

    async def revoke_session_by_token(self, token_digest: str, now: float) -> bool: ...

    async def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    anonymous_id_digest TEXT UNIQUE,
    email TEXT UNIQUE,
    password_hash TEXT,
    is_anonymous INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    access_digest TEXT NOT NULL UNIQUE,
    access_expires_at REAL NOT NULL,
    created_at REAL NOT NULL,
    last_used_at REAL NOT NULL,
    revoked_at REAL,
    revoked_reason TEXT
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    digest TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    created_at REAL NOT NULL,
    used_at REAL
);
CREATE INDEX IF NOT EXISTS refresh_tokens_by_session ON refresh_tokens(session_id);
"""


class SqliteIdentityDatabase:
    """``IdentityDatabase`` on one SQLite file (created if missing, 0600).

    Every operation is one explicit transaction, run alone on the shared connection (an
    ``asyncio.Lock`` keeps another request's statements out of it), so a crash at any point
    leaves the operation wholly done or wholly undone.
    """

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str | Path) -> SqliteIdentityDatabase:
        """Open (or create) the database at ``path``; ``":memory:"`` for a throwaway one."""
        if str(path) != ":memory:":
            _create_private_file(Path(path))
        # isolation_level=None: no implicit transactions; each operation says BEGIN itself.
        connection = await aiosqlite.connect(path, isolation_level=None)
        try:
            connection.row_factory = sqlite3.Row
            await connection.execute("PRAGMA foreign_keys = ON")
            await connection.execute("PRAGMA journal_mode = WAL")
            await connection.executescript(_SCHEMA)
        except BaseException:
            await connection.close()
            raise
        return cls(connection)

    async def close(self) -> None:
        await self._db.close()

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One operation, alone on the connection: committed whole or rolled back whole."""
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    await asyncio.shield(self._db.execute("ROLLBACK"))
                raise
            await self._db.execute("COMMIT")

    async def create_user(
        self,
        *,
        anonymous_id_digest: str | None,
        email: str | None,
        password_hash: str | None,
        session: NewSession,
    ) -> UserRecord:
        """Store a new user and its first session together."""
        user = UserRecord(str(uuid.uuid4()), email is None, email, password_hash)
        async with self._transaction() as db:
            try:
                await db.execute(
                    "INSERT INTO users (id, anonymous_id_digest, email, password_hash,"
                    " is_anonymous, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        user.id,
                        anonymous_id_digest,
                        email,
                        password_hash,
                        user.is_anonymous,
                        time.time(),
                    ),
                )
            except sqlite3.IntegrityError as error:
                raise EmailTakenError from error
            await _insert_session(db, user.id, session)
        return user

    async def user_by_anonymous_id(self, anonymous_id_digest: str) -> UserRecord | None:
        return await self._user_where("anonymous_id_digest = ?", anonymous_id_digest)

    async def user_by_email(self, email: str) -> UserRecord | None:
        return await self._user_where("email = ?", email)

    async def user_by_id(self, user_id: str) -> UserRecord | None:
        return await self._user_where("id = ?", user_id)

    async def promote(self, user_id: str, *, email: str, password_hash: str) -> UserRecord:
        # The anonymous id stops being a way in: a promoted user logs in with credentials.
        async with self._transaction() as db:
            try:
                await db.execute(
                    "UPDATE users SET email = ?, password_hash = ?, is_anonymous = 0,"
                    " anonymous_id_digest = NULL WHERE id = ?",
                    (email, password_hash, user_id),
                )
            except sqlite3.IntegrityError as error:
                raise EmailTakenError from error
        return UserRecord(user_id, False, email, password_hash)

    async def create_session(self, user_id: str, session: NewSession) -> SessionRecord:
        async with self._transaction() as db:
            return await _insert_session(db, user_id, session)

    async def session_by_access_token(self, access_digest: str) -> SessionRecord | None:
        async with (
            self._transaction() as db,
            db.execute(
                "SELECT id, user_id, access_expires_at, last_used_at FROM sessions"
                " WHERE access_digest = ? AND revoked_at IS NULL",
                (access_digest,),
            ) as cursor,
        ):
            row = await cursor.fetchone()
        return None if row is None else SessionRecord(*row)

    async def touch_session(self, session_id: str, now: float) -> None:
        async with self._transaction() as db:
            await db.execute("UPDATE sessions SET last_used_at = ? WHERE id = ?", (now, session_id))

    async def rotate_refresh_token(
        self,
        refresh_digest: str,
        *,
        new_refresh_digest: str,
        new_access_digest: str,
        access_expires_at: float,
        now: float,
        idle_timeout: float,
        reuse_interval: float,
    ) -> tuple[Rotation, SessionRecord | None]:
        """Spend a refresh token for a new pair, in one transaction.

        A token spent less than ``reuse_interval`` seconds ago, when no newer token of its
        session has been spent since, is the retry of a client whose answer was lost: it gets
        a new pair too. Any other reuse revokes the whole session.
        """
        async with self._transaction() as db:
            async with db.execute(
                "SELECT s.id, s.user_id, s.last_used_at, s.revoked_at, t.used_at, t.rowid"
                " FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id"
                " WHERE t.digest = ?",
                (refresh_digest,),
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return Rotation.UNKNOWN, None
            session_id, user_id, last_used_at, revoked_at, used_at, token_row = row
            if revoked_at is not None:
                return Rotation.REVOKED, None
            if now - last_used_at > idle_timeout:
                await _revoke(db, session_id, now, "idle")
                return Rotation.IDLE, None
            rotation = Rotation.ROTATED
            if used_at is not None:
                if now - used_at >= reuse_interval or await _newer_token_spent(
                    db, session_id, token_row
                ):
                    await _revoke(db, session_id, now, "refresh_token_reuse")
                    return Rotation.REUSED, None
                rotation = Rotation.REISSUED
            else:
                await db.execute(
                    "UPDATE refresh_tokens SET used_at = ? WHERE digest = ?", (now, refresh_digest)
                )
            await db.execute(
                "INSERT INTO refresh_tokens (digest, session_id, created_at) VALUES (?, ?, ?)",
                (new_refresh_digest, session_id, now),
            )
            await db.execute(
                "UPDATE sessions SET access_digest = ?, access_expires_at = ?, last_used_at = ?"
                " WHERE id = ?",
                (new_access_digest, access_expires_at, now, session_id),
            )
        return rotation, SessionRecord(session_id, user_id, access_expires_at, now)

    async def revoke_session_by_token(self, token_digest: str, now: float) -> bool:
        async with self._transaction() as db:
            async with db.execute(
                "SELECT id FROM sessions WHERE access_digest = ? AND revoked_at IS NULL"
                " UNION SELECT session_id FROM refresh_tokens WHERE digest = ?",
                (token_digest, token_digest),
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return False
            return await _revoke(db, row[0], now, "log_out")

    async def _user_where(self, condition: str, value: str) -> UserRecord | None:
        async with (
            self._transaction() as db,
            db.execute(
                f"SELECT id, is_anonymous, email, password_hash FROM users WHERE {condition}",  # noqa: S608
                (value,),
            ) as cursor,
        ):
            row = await cursor.fetchone()
        if row is None:
            return None
        return UserRecord(row["id"], bool(row["is_anonymous"]), row["email"], row["password_hash"])


def _create_private_file(path: Path) -> None:
    """Create the database file 0600 before SQLite does (its WAL and SHM files follow its mode)."""
    descriptor = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(descriptor)


async def _insert_session(db: aiosqlite.Connection, user_id: str, new: NewSession) -> SessionRecord:
    record = SessionRecord(str(uuid.uuid4()), user_id, new.access_expires_at, new.now)
    await db.execute(
        "INSERT INTO sessions (id, user_id, access_digest, access_expires_at, created_at,"
        " last_used_at) VALUES (?, ?, ?, ?, ?, ?)",
        (record.id, user_id, new.access_digest, new.access_expires_at, new.now, new.now),
    )
    await db.execute(
        "INSERT INTO refresh_tokens (digest, session_id, created_at) VALUES (?, ?, ?)",
        (new.refresh_digest, record.id, new.now),
    )
    return record


async def _newer_token_spent(db: aiosqlite.Connection, session_id: str, token_row: int) -> bool:
    """Whether a token issued after this one (so, from it on) was spent: then this one's
    reuse is a stolen copy, not the retry of a lost answer."""
    async with db.execute(
        "SELECT 1 FROM refresh_tokens WHERE session_id = ? AND rowid > ? AND used_at IS NOT NULL"
        " LIMIT 1",
        (session_id, token_row),
    ) as cursor:
        return await cursor.fetchone() is not None


async def _revoke(db: aiosqlite.Connection, session_id: str, now: float, reason: str) -> bool:
    cursor = await db.execute(
        "UPDATE sessions SET revoked_at = ?, revoked_reason = ?"
        " WHERE id = ? AND revoked_at IS NULL",
        (now, reason, session_id),
    )
    return cursor.rowcount > 0
