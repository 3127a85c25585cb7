"""Where the reference server keeps users and sessions: one SQLite file.

Only digests of anonymous ids and tokens are stored, and Argon2 hashes of passwords. The
access-token signing keys are kept here too, in the same 0600 file.

Every operation is a plain function of a connection, run whole on the connection's own
thread (``BatchingConnection``): writes on one connection, batched so that many requests
share one commit; reads on a second connection that WAL mode lets run beside the writer.
Each write operation is atomic: a crash at any point leaves it wholly done or wholly undone.
The file is created, prepared and told from one put in its place by ``_sqlite_file.py``; the
row operations and the SQL text that several operations share are in ``_sqlite_rows.py``, and
refresh-token rotation in ``_sqlite_rotation.py``.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import attrs

from . import _sqlite_file as sqlite_file
from . import _sqlite_rows as rows
from ._database import (
    USER_SESSIONS_BATCH,
    EmailTakenError,
    OtherClientError,
    SessionGoneError,
    in_batches,
)
from ._records import Expired, NewSession, Rotation, SessionRecord, SigningKeyRecord, UserRecord
from ._sqlite_connection import BatchingConnection
from ._sqlite_file import DatabaseReplacedError, check_same_file, identity
from ._sqlite_rotation import rotate

__all__ = ["DatabaseReplacedError", "SqliteIdentityDatabase"]


class SqliteIdentityDatabase:
    """``IdentityDatabase`` on one SQLite file (created if missing, 0600)."""

    def __init__(
        self,
        writer: BatchingConnection,
        reader: BatchingConnection,
        path: str | Path | None = None,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._path = path
        # The file the connections opened, to tell it from one put at its path later.
        self._opened = None if path is None else identity(path)
        self.schema_found = 0
        """The schema version the database had when opened (before migrating)."""

    @classmethod
    async def open(cls, path: str | Path) -> SqliteIdentityDatabase:
        """Open (or create) the database at ``path``; ``":memory:"`` for a throwaway one."""
        in_memory = str(path) == ":memory:"
        before_writes = None
        if not in_memory:
            sqlite_file.create_private_file(Path(path))
            # Each write batch first checks the file is still there: a stat, a microsecond.
            before_writes = functools.partial(check_same_file, path, identity(path))
        writer = BatchingConnection(
            functools.partial(sqlite_file.connect, path), writes=True, before_writes=before_writes
        )
        await writer.open()
        try:
            found = await writer.run_alone(sqlite_file.prepare)
            # A second connection to ":memory:" would be a second, empty database.
            reader = writer
            if not in_memory:
                reader = BatchingConnection(
                    functools.partial(sqlite_file.connect, path, read_only=True), writes=False
                )
                await reader.open()
        except BaseException:
            await writer.close()
            raise
        opened = cls(writer, reader, None if in_memory else path)
        opened.schema_found = found
        return opened

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()

    async def ready(self, within: float) -> None:
        """Return once the reader answers a query within ``within`` seconds and the path
        still names the file opened; ``DatabaseReplacedError`` if it does not (removed or
        replaced: SQLite goes on writing to the open file), else what failed."""

        def probe(db: sqlite3.Connection) -> None:
            if self._path is not None and self._opened is not None:
                check_same_file(self._path, self._opened)
            db.execute("SELECT 1 FROM signing_keys LIMIT 1").fetchall()

        # The probe only reads: one that outlives the timeout does no harm when it ends.
        async with asyncio.timeout(within):
            await self._reader.run(probe)

    async def create_user(
        self,
        *,
        user_id: str,
        anonymous_id_digest: str | None,
        email: str | None,
        password_hash: str | None,
        session: NewSession,
        anonymous_only: bool = False,
    ) -> UserRecord:
        """Store a new user and its first session together."""
        user = UserRecord(user_id, email is None, email, password_hash, anonymous_only)

        def create(db: sqlite3.Connection) -> UserRecord:
            try:
                db.execute(
                    "INSERT INTO users (id, anonymous_id_digest, email, password_hash,"
                    " is_anonymous, created_at, last_seen_at, anonymous_only)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        user.id,
                        anonymous_id_digest,
                        email,
                        password_hash,
                        user.is_anonymous,
                        session.now,
                        session.now,
                        anonymous_only,
                    ),
                )
            except sqlite3.IntegrityError as error:
                raise EmailTakenError from error
            rows.insert_session(db, user.id, session)
            return user

        return await self._writer.run(create)

    async def log_in_anonymously(
        self,
        anonymous_id_digest: str,
        session: NewSession,
        *,
        anonymous_only: bool = False,
    ) -> UserRecord | None:
        def log_in(db: sqlite3.Connection) -> UserRecord | None:
            user = rows.user_where(db, "anonymous_id_digest = ?", anonymous_id_digest)
            if user is not None:
                if anonymous_only and not user.anonymous_only:
                    rows.mark_anonymous_only(db, user.id)
                    user = attrs.evolve(user, anonymous_only=True)
                rows.start_session(db, user.id, session)
            return user

        # One operation on the writer: a log-in is one crossing, not a read and then a write.
        return await self._writer.run(log_in)

    async def user_by_email(self, email: str) -> UserRecord | None:
        return await self._read_user("email = ?", email)

    async def user_by_id(self, user_id: str) -> UserRecord | None:
        return await self._read_user("id = ?", user_id)

    async def promote(
        self, user_id: str, *, session_id: str, email: str, password_hash: str
    ) -> UserRecord | None:
        def promote(db: sqlite3.Connection) -> tuple[bool, UserRecord | None]:
            # On the writer, in the promotion's transaction: a log-out committed before it
            # (while the password hashed) is seen, and none can commit between check and write.
            live = db.execute(
                "SELECT 1 FROM sessions WHERE id = ? AND user_id = ? AND revoked_at IS NULL",
                (session_id, user_id),
            ).fetchone()
            if live is None:
                return False, None  # returned, not raised: raising would roll the batch back
            # The anonymous id stops being a way in: a promoted user logs in with credentials.
            try:
                promoted = db.execute(
                    "UPDATE users SET email = ?, password_hash = ?, is_anonymous = 0,"
                    " anonymous_id_digest = NULL"
                    " WHERE id = ? AND is_anonymous = 1 AND anonymous_only = 0",
                    (email, password_hash, user_id),
                ).rowcount
            except sqlite3.IntegrityError as error:
                raise EmailTakenError from error
            return True, UserRecord(user_id, False, email, password_hash) if promoted else None

        live, promoted = await self._writer.run(promote)
        if not live:
            raise SessionGoneError
        return promoted

    async def delete_user(self, user_id: str, *, batch: int = USER_SESSIONS_BATCH) -> bool:
        """Delete the user's sessions ``batch`` at a time (other writes run between), then
        the user with any left (the foreign keys cascade)."""
        await in_batches(
            functools.partial(self._write_count, rows.DELETE_USER_SESSIONS, user_id), batch
        )
        return await self._write_count("DELETE FROM users WHERE id = ?", user_id) > 0

    async def create_session(self, user_id: str, session: NewSession) -> SessionRecord | None:
        return await self._writer.run(lambda db: rows.start_session_if_user(db, user_id, session))

    async def session_by_id(self, session_id: str) -> SessionRecord | None:
        def find(db: sqlite3.Connection) -> SessionRecord | None:
            row = db.execute(
                f"SELECT {rows.SESSION_COLUMNS} FROM sessions"  # noqa: S608
                " WHERE id = ? AND revoked_at IS NULL",
                (session_id,),
            ).fetchone()
            return None if row is None else SessionRecord(*row)

        return await self._reader.run(find)

    async def touch_session(self, session_id: str, now: float) -> None:
        await self._writer.run(
            lambda db: db.execute(
                "UPDATE sessions SET last_used_at = ? WHERE id = ?", (now, session_id)
            )
        )

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
        """Spend a refresh token for a new one, in one writer operation, as
        ``_sqlite_rotation.rotate`` says; the session and its owner, for whom the caller signs
        the new access token."""
        return await self._writer.run(
            functools.partial(
                rotate,
                refresh_digest=refresh_digest,
                client_id=client_id,
                new_refresh_digest=new_refresh_digest,
                now=now,
                idle_timeout=idle_timeout,
                reuse_interval=reuse_interval,
                anonymous_only=anonymous_only,
            )
        )

    async def revoke_session(self, session_id: str, now: float) -> bool:
        return await self._writer.run(lambda db: rows.revoke(db, session_id, now, "log_out"))

    async def revoke_session_by_refresh_token(
        self, refresh_digest: str, now: float, *, client_id: str
    ) -> bool:
        def revoke(db: sqlite3.Connection) -> bool:
            row = db.execute(
                "SELECT t.session_id, s.client_id FROM refresh_tokens t"
                " JOIN sessions s ON s.id = t.session_id WHERE t.digest = ?",
                (refresh_digest,),
            ).fetchone()
            if row is not None and row[1] not in (None, client_id):
                raise OtherClientError
            return row is not None and rows.revoke(db, row[0], now, "log_out")

        return await self._writer.run(revoke)

    async def revoke_user_sessions(
        self, user_id: str, now: float, *, batch: int = USER_SESSIONS_BATCH
    ) -> int:
        """Revoke every live session of the user, walking its sessions ``batch`` at a time,
        each batch after the last one's (``rows.revoke_user_batch``); how many."""
        revoked = last = 0  # rowids count from 1

        async def step(size: int) -> int:
            nonlocal revoked, last
            found, last, ended = await self._writer.run(
                functools.partial(
                    rows.revoke_user_batch, user_id=user_id, now=now, after=last, limit=size
                )
            )
            revoked += ended
            return found

        await in_batches(step, batch)
        return revoked

    async def _write_count(self, query: str, *params: object) -> int:
        """How many rows one writer operation of ``query`` changed."""
        changed: int = await self._writer.run(lambda db: db.execute(query, params).rowcount)
        return changed

    async def signing_keys(self) -> Sequence[SigningKeyRecord]:
        """Every stored signing key, newest first."""
        return await self._reader.run(
            lambda db: [SigningKeyRecord(*row) for row in db.execute(rows.KEYS)]
        )

    async def add_signing_key(self, key: SigningKeyRecord) -> None:
        """Store a new signing key and retire the ones before it from the instant it starts
        signing (its ``created_at``), together."""

        def add(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE signing_keys SET retired_at = ? WHERE retired_at IS NULL",
                (key.created_at,),
            )
            db.execute(
                "INSERT INTO signing_keys (kid, algorithm, private_pem, created_at, retired_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (key.kid, key.algorithm, key.private_pem, key.created_at, key.retired_at),
            )

        await self._writer.run(add)

    async def ensure_signing_key(self, first: SigningKeyRecord) -> Sequence[SigningKeyRecord]:
        """Every stored key, after storing ``first`` if there is none (in one transaction)."""

        def ensure(db: sqlite3.Connection) -> list[SigningKeyRecord]:
            if db.execute("SELECT 1 FROM signing_keys LIMIT 1").fetchone() is None:
                db.execute(
                    "INSERT INTO signing_keys (kid, algorithm, private_pem, created_at,"
                    " retired_at) VALUES (?, ?, ?, ?, ?)",
                    (first.kid, first.algorithm, first.private_pem, first.created_at, None),
                )
            return [SigningKeyRecord(*row) for row in db.execute(rows.KEYS)]

        return await self._writer.run(ensure)

    async def delete_batch(self, rule: Expired, before: float, limit: int) -> int:
        """Delete at most ``limit`` of the rows ``rule`` finds due by ``before``, in one writer
        operation, so log-ins queued meanwhile run before the next batch and the WAL can
        checkpoint between batches; how many."""
        # rowcount counts the table's own rows, not those the foreign keys cascade to.
        return await self._write_count(rows.DELETE_DUE[rule], before, limit)

    async def compact(self) -> None:
        """Outside any transaction: hand freed pages back and cut the WAL file back. The
        script steps each statement to its end (incremental_vacuum frees a page per step)."""
        await self._writer.run_alone(
            lambda db: db.executescript(
                "PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);"
            )
        )

    async def _read_user(self, condition: str, value: str) -> UserRecord | None:
        return await self._reader.run(lambda db: rows.user_where(db, condition, value))
