"""Where the reference server keeps users and sessions: SQLite, through aiosqlite.

Only digests of anonymous ids and tokens are stored, and Argon2 hashes of passwords. The
access-token signing keys are kept here too, in the same 0600 file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import aiosqlite

from ._records import (
    AccessClaims,
    EmailTakenError,
    IdentityDatabase,
    NewSession,
    Rotation,
    SessionRecord,
    SigningKeyRecord,
    SweepCounts,
    SweepRules,
    UserRecord,
)
from ._schema import migrate

__all__ = [
    "EmailTakenError",
    "IdentityDatabase",
    "NewSession",
    "Rotation",
    "SessionRecord",
    "SqliteIdentityDatabase",
    "UserRecord",
]

_SESSION_COLUMNS = "id, user_id, access_expires_at, last_used_at, client_id"
_KEYS = (
    "SELECT kid, algorithm, private_pem, created_at, retired_at FROM signing_keys"
    " ORDER BY created_at DESC, rowid DESC"
)


class SqliteIdentityDatabase:
    """``IdentityDatabase`` on one SQLite file (created if missing, 0600).

    Every operation is one explicit transaction, run alone on the shared connection (an
    ``asyncio.Lock`` keeps another request's statements out of it), so a crash at any point
    leaves the operation wholly done or wholly undone.
    """

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection
        self._lock = asyncio.Lock()
        self.schema_found = 0
        """The schema version the database had when opened (before migrating)."""

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
            # Only takes effect on a new file: swept pages go back to the OS, not just reused.
            await connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
            await connection.execute("PRAGMA journal_mode = WAL")
            found = await migrate(connection)
        except BaseException:
            await connection.close()
            raise
        opened = cls(connection)
        opened.schema_found = found
        return opened

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
        user_id: str,
        anonymous_id_digest: str | None,
        email: str | None,
        password_hash: str | None,
        session: NewSession,
    ) -> UserRecord:
        """Store a new user and its first session together."""
        user = UserRecord(user_id, email is None, email, password_hash)
        async with self._transaction() as db:
            try:
                await db.execute(
                    "INSERT INTO users (id, anonymous_id_digest, email, password_hash,"
                    " is_anonymous, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        user.id,
                        anonymous_id_digest,
                        email,
                        password_hash,
                        user.is_anonymous,
                        session.now,
                        session.now,
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

    async def delete_user(self, user_id: str) -> bool:
        """Delete the user with every session and token (the foreign keys cascade)."""
        async with self._transaction() as db:
            cursor = await db.execute("DELETE FROM users WHERE id = ?", (user_id,))
            return cursor.rowcount > 0

    async def create_session(self, user_id: str, session: NewSession) -> SessionRecord:
        async with self._transaction() as db:
            await _seen(db, user_id, session.now)
            return await _insert_session(db, user_id, session)

    async def session_by_access_token(self, access_digest: str) -> SessionRecord | None:
        async with (
            self._transaction() as db,
            db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions"  # noqa: S608
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
        client_id: str,
        new_refresh_digest: str,
        issue_access: Callable[[AccessClaims], str],
        access_expires_at: float,
        now: float,
        idle_timeout: float,
        reuse_interval: float,
    ) -> tuple[Rotation, SessionRecord | None, UserRecord | None]:
        """Spend a refresh token for a new pair, in one transaction.

        A token spent less than ``reuse_interval`` seconds ago, when no newer token of its
        session has been spent since, is the retry of a client whose answer was lost: it gets
        a new pair too. Any other reuse revokes the whole session. ``issue_access`` makes the
        new access token for the session's owner and returns the digest to store. A token of
        another client's session is unknown to this one.
        """
        async with self._transaction() as db:
            async with db.execute(
                "SELECT s.id, s.user_id, s.last_used_at, s.revoked_at, t.used_at, t.rowid,"
                " s.client_id, u.is_anonymous, u.email, u.password_hash"
                " FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id"
                " JOIN users u ON u.id = s.user_id WHERE t.digest = ?",
                (refresh_digest,),
            ) as cursor:
                row = await cursor.fetchone()
            if row is None or row["client_id"] not in (None, client_id):
                return Rotation.UNKNOWN, None, None
            session_id, user_id, last_used_at, revoked_at, used_at, token_row = tuple(row)[:6]
            if revoked_at is not None:
                return Rotation.REVOKED, None, None
            if now - last_used_at > idle_timeout:
                await _revoke(db, session_id, now, "idle")
                return Rotation.IDLE, None, None
            rotation = Rotation.ROTATED
            if used_at is not None:
                if now - used_at >= reuse_interval or await _newer_token_spent(
                    db, session_id, token_row
                ):
                    await _revoke(db, session_id, now, "refresh_token_reuse")
                    return Rotation.REUSED, None, None
                rotation = Rotation.REISSUED
            else:
                await db.execute(
                    "UPDATE refresh_tokens SET used_at = ? WHERE digest = ?", (now, refresh_digest)
                )
            user = UserRecord(
                user_id, bool(row["is_anonymous"]), row["email"], row["password_hash"]
            )
            access_digest = issue_access(
                AccessClaims(session_id, user_id, user.is_anonymous, client_id)
            )
            await db.execute(
                "INSERT INTO refresh_tokens (digest, session_id, created_at) VALUES (?, ?, ?)",
                (new_refresh_digest, session_id, now),
            )
            await db.execute(
                "UPDATE sessions SET access_digest = ?, access_expires_at = ?, last_used_at = ?,"
                " client_id = ? WHERE id = ?",
                (access_digest, access_expires_at, now, client_id, session_id),
            )
            await _seen(db, user_id, now)
        session = SessionRecord(session_id, user_id, access_expires_at, now, client_id)
        return rotation, session, user

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

    async def revoke_user_sessions(self, user_id: str, now: float) -> int:
        """Revoke every live session of the user; how many there were."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "UPDATE sessions SET revoked_at = ?, revoked_reason = 'log_out_everywhere'"
                " WHERE user_id = ? AND revoked_at IS NULL",
                (now, user_id),
            )
            return cursor.rowcount

    async def signing_keys(self) -> Sequence[SigningKeyRecord]:
        """Every stored signing key, newest first."""
        async with (
            self._transaction() as db,
            db.execute(_KEYS) as cursor,
        ):
            rows = await cursor.fetchall()
        return [SigningKeyRecord(*row) for row in rows]

    async def add_signing_key(self, key: SigningKeyRecord) -> None:
        """Store a new signing key and retire the ones before it, together."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL",
                (key.created_at,),
            )
            await db.execute(
                "INSERT INTO signing_keys (kid, algorithm, private_pem, created_at, retired_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (key.kid, key.algorithm, key.private_pem, key.created_at, key.retired_at),
            )

    async def ensure_signing_key(self, first: SigningKeyRecord) -> Sequence[SigningKeyRecord]:
        """Every stored key, after storing ``first`` if there is none (in one transaction)."""
        async with self._transaction() as db:
            async with db.execute("SELECT 1 FROM signing_keys LIMIT 1") as cursor:
                empty = await cursor.fetchone() is None
            if empty:
                await db.execute(
                    "INSERT INTO signing_keys (kid, algorithm, private_pem, created_at,"
                    " retired_at) VALUES (?, ?, ?, ?, ?)",
                    (first.kid, first.algorithm, first.private_pem, first.created_at, None),
                )
            async with db.execute(_KEYS) as cursor:
                rows = await cursor.fetchall()
        return [SigningKeyRecord(*row) for row in rows]

    async def sweep(self, rules: SweepRules) -> SweepCounts:
        """Delete what can never work again, and spent tokens past their retention."""
        async with self._transaction() as db:
            users = 0
            if rules.anonymous_unused_before is not None:
                cursor = await db.execute(
                    "DELETE FROM users WHERE is_anonymous = 1 AND last_seen_at < ?",
                    (rules.anonymous_unused_before,),
                )
                users = cursor.rowcount
            cursor = await db.execute(
                "DELETE FROM sessions WHERE revoked_at IS NOT NULL OR last_used_at < ?",
                (rules.idle_before,),
            )
            sessions = cursor.rowcount
            cursor = await db.execute(
                "DELETE FROM refresh_tokens WHERE used_at IS NOT NULL AND used_at < ?",
                (rules.spent_before,),
            )
            tokens = cursor.rowcount
        # Outside the transaction: hand freed pages back and keep the WAL file small.
        async with self._lock:
            # executescript steps each statement to its end: a bare execute() of
            # incremental_vacuum frees one page and leaves the statement open, which then
            # makes the checkpoint fail with "database table is locked".
            await self._db.executescript(
                "PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);"
            )
        return SweepCounts(sessions=sessions, refresh_tokens=tokens, users=users)

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
    record = SessionRecord(new.id, user_id, new.access_expires_at, new.now, new.client_id)
    await db.execute(
        "INSERT INTO sessions (id, user_id, access_digest, access_expires_at, created_at,"
        " last_used_at, client_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            record.id,
            user_id,
            new.access_digest,
            new.access_expires_at,
            new.now,
            new.now,
            new.client_id,
        ),
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


async def _seen(db: aiosqlite.Connection, user_id: str, now: float) -> None:
    """Note that the user logged in or renewed (what anonymous retention measures)."""
    await db.execute("UPDATE users SET last_seen_at = ? WHERE id = ?", (now, user_id))
