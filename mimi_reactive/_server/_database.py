"""Where the reference server keeps users and sessions: SQLite, through aiosqlite.

Only digests of anonymous ids and tokens are stored, and Argon2 hashes of passwords.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path
from typing import Protocol

import aiosqlite
import attrs

__all__ = ["IdentityDatabase", "SessionRecord", "SqliteIdentityDatabase", "UserRecord"]


@attrs.frozen
class UserRecord:
    """A stored user."""

    id: str
    is_anonymous: bool
    email: str | None
    password_hash: str | None = attrs.field(repr=False)


@attrs.frozen
class SessionRecord:
    """A stored, unrevoked session."""

    id: str
    user_id: str
    access_expires_at: float


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
        self, user_id: str, *, access_digest: str, refresh_digest: str, access_ttl: float
    ) -> SessionRecord: ...

    async def session_by_access_token(self, access_digest: str) -> SessionRecord | None: ...

    async def revoke_session_by_token(self, token_digest: str) -> bool: ...

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
    refresh_digest TEXT NOT NULL UNIQUE,
    access_expires_at REAL NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
);
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
        self, user_id: str, *, access_digest: str, refresh_digest: str, access_ttl: float
    ) -> SessionRecord:
        now = time.time()
        record = SessionRecord(str(uuid.uuid4()), user_id, now + access_ttl)
        await self._db.execute(
            "INSERT INTO sessions (id, user_id, access_digest, refresh_digest,"
            " access_expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (record.id, user_id, access_digest, refresh_digest, record.access_expires_at, now),
        )
        await self._db.commit()
        return record

    async def session_by_access_token(self, access_digest: str) -> SessionRecord | None:
        async with self._db.execute(
            "SELECT id, user_id, access_expires_at FROM sessions"
            " WHERE access_digest = ? AND revoked_at IS NULL",
            (access_digest,),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        return SessionRecord(row["id"], row["user_id"], row["access_expires_at"])

    async def revoke_session_by_token(self, token_digest: str) -> bool:
        cursor = await self._db.execute(
            "UPDATE sessions SET revoked_at = ? WHERE revoked_at IS NULL"
            " AND (access_digest = ? OR refresh_digest = ?)",
            (time.time(), token_digest, token_digest),
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
