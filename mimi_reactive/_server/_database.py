"""Where the reference server keeps users and sessions: SQLite, through aiosqlite.

Only digests of anonymous ids and tokens are stored, and Argon2 hashes of passwords.
"""

from __future__ import annotations

import enum
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Protocol

import aiosqlite
import attrs

__all__ = [
    "EmailTakenError",
    "IdentityDatabase",
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


class EmailTakenError(Exception):
    """The email belongs to another user."""


class IdentityDatabase(Protocol):
    """What the server needs from storage; SQLite implements it, PostgreSQL can later."""

    async def create_user(
        self, *, anonymous_id_digest: str | None, email: str | None, password_hash: str | None
    ) -> UserRecord: ...

    async def user_by_anonymous_id(self, anonymous_id_digest: str) -> UserRecord | None: ...

    async def user_by_email(self, email: str) -> UserRecord | None: ...

    async def user_by_id(self, user_id: str) -> UserRecord | None: ...

    async def promote(self, user_id: str, *, email: str, password_hash: str) -> UserRecord: ...

    async def create_session(
        self,
        user_id: str,
        *,
        access_digest: str,
        refresh_digest: str,
        access_expires_at: float,
        now: float,
    ) -> SessionRecord: ...

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
    """``IdentityDatabase`` on one SQLite file (created if missing)."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection

    @classmethod
    async def open(cls, path: str | Path) -> SqliteIdentityDatabase:
        """Open (or create) the database at ``path``; ``":memory:"`` for a throwaway one."""
        connection = await aiosqlite.connect(path)
        connection.row_factory = sqlite3.Row
        await connection.execute("PRAGMA foreign_keys = ON")
        await connection.execute("PRAGMA journal_mode = WAL")
        await connection.executescript(_SCHEMA)
        await connection.commit()
        return cls(connection)

    async def close(self) -> None:
        await self._db.close()

    async def create_user(
        self, *, anonymous_id_digest: str | None, email: str | None, password_hash: str | None
    ) -> UserRecord:
        user = UserRecord(str(uuid.uuid4()), email is None, email, password_hash)
        try:
            await self._db.execute(
                "INSERT INTO users (id, anonymous_id_digest, email, password_hash, is_anonymous,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?)",
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
        await self._db.commit()
        return user

    async def user_by_anonymous_id(self, anonymous_id_digest: str) -> UserRecord | None:
        return await self._user_where("anonymous_id_digest = ?", anonymous_id_digest)

    async def user_by_email(self, email: str) -> UserRecord | None:
        return await self._user_where("email = ?", email)

    async def user_by_id(self, user_id: str) -> UserRecord | None:
        return await self._user_where("id = ?", user_id)

    async def promote(self, user_id: str, *, email: str, password_hash: str) -> UserRecord:
        # The anonymous id stops being a way in: a promoted user logs in with credentials.
        try:
            await self._db.execute(
                "UPDATE users SET email = ?, password_hash = ?, is_anonymous = 0,"
                " anonymous_id_digest = NULL WHERE id = ?",
                (email, password_hash, user_id),
            )
        except sqlite3.IntegrityError as error:
            raise EmailTakenError from error
        await self._db.commit()
        return UserRecord(user_id, False, email, password_hash)

    async def create_session(
        self,
        user_id: str,
        *,
        access_digest: str,
        refresh_digest: str,
        access_expires_at: float,
        now: float,
    ) -> SessionRecord:
        record = SessionRecord(str(uuid.uuid4()), user_id, access_expires_at, now)
        await self._db.execute(
            "INSERT INTO sessions (id, user_id, access_digest, access_expires_at, created_at,"
            " last_used_at) VALUES (?, ?, ?, ?, ?, ?)",
            (record.id, user_id, access_digest, access_expires_at, now, now),
        )
        await self._db.execute(
            "INSERT INTO refresh_tokens (digest, session_id, created_at) VALUES (?, ?, ?)",
            (refresh_digest, record.id, now),
        )
        await self._db.commit()
        return record

    async def session_by_access_token(self, access_digest: str) -> SessionRecord | None:
        async with self._db.execute(
            "SELECT id, user_id, access_expires_at, last_used_at FROM sessions"
            " WHERE access_digest = ? AND revoked_at IS NULL",
            (access_digest,),
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else SessionRecord(*row)

    async def touch_session(self, session_id: str, now: float) -> None:
        await self._db.execute(
            "UPDATE sessions SET last_used_at = ? WHERE id = ?", (now, session_id)
        )
        await self._db.commit()

    async def rotate_refresh_token(
        self,
        refresh_digest: str,
        *,
        new_refresh_digest: str,
        new_access_digest: str,
        access_expires_at: float,
        now: float,
        idle_timeout: float,
    ) -> tuple[Rotation, SessionRecord | None]:
        async with self._db.execute(
            "SELECT s.id, s.user_id, s.access_expires_at, s.last_used_at, s.revoked_at"
            " FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.digest = ?",
            (refresh_digest,),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return Rotation.UNKNOWN, None
        session_id, user_id, _, last_used_at, revoked_at = row
        if revoked_at is not None:
            return Rotation.REVOKED, None
        if now - last_used_at > idle_timeout:
            await self._revoke(session_id, now, "idle")
            return Rotation.IDLE, None
        # Spend the token in one statement, so two concurrent uses cannot both succeed.
        spent = await self._db.execute(
            "UPDATE refresh_tokens SET used_at = ? WHERE digest = ? AND used_at IS NULL",
            (now, refresh_digest),
        )
        if spent.rowcount != 1:
            await self._revoke(session_id, now, "refresh_token_reuse")
            return Rotation.REUSED, None
        await self._db.execute(
            "INSERT INTO refresh_tokens (digest, session_id, created_at) VALUES (?, ?, ?)",
            (new_refresh_digest, session_id, now),
        )
        await self._db.execute(
            "UPDATE sessions SET access_digest = ?, access_expires_at = ?, last_used_at = ?"
            " WHERE id = ?",
            (new_access_digest, access_expires_at, now, session_id),
        )
        await self._db.commit()
        return Rotation.ROTATED, SessionRecord(session_id, user_id, access_expires_at, now)

    async def revoke_session_by_token(self, token_digest: str, now: float) -> bool:
        async with self._db.execute(
            "SELECT id FROM sessions WHERE access_digest = ? AND revoked_at IS NULL"
            " UNION SELECT session_id FROM refresh_tokens WHERE digest = ?",
            (token_digest, token_digest),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return False
        return await self._revoke(row[0], now, "log_out")

    async def _revoke(self, session_id: str, now: float, reason: str) -> bool:
        cursor = await self._db.execute(
            "UPDATE sessions SET revoked_at = ?, revoked_reason = ?"
            " WHERE id = ? AND revoked_at IS NULL",
            (now, reason, session_id),
        )
        await self._db.commit()
        return cursor.rowcount > 0

    async def _user_where(self, condition: str, value: str) -> UserRecord | None:
        async with self._db.execute(
            f"SELECT id, is_anonymous, email, password_hash FROM users WHERE {condition}",  # noqa: S608
            (value,),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        return UserRecord(row["id"], bool(row["is_anonymous"]), row["email"], row["password_hash"])
