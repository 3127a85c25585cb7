"""The row operations the SQLite database's operations are built from: plain functions of a
connection, called inside an operation already running on the connection's thread; and the
SQL text the database names rather than writes inline (its key listing, its batches).
"""

from __future__ import annotations

import sqlite3

from ._database import SEEN_PRECISION
from ._records import Expired, NewSession, SessionRecord, UserRecord

__all__ = [
    "DELETE_DUE",
    "DELETE_USER_SESSIONS",
    "KEYS",
    "SESSION_COLUMNS",
    "end_sessions_past_limit",
    "insert_session",
    "mark_anonymous_only",
    "revoke",
    "revoke_user_batch",
    "seen",
    "start_session",
    "start_session_if_user",
    "user_where",
]

_USER_COLUMNS = "id, is_anonymous, email, password_hash, anonymous_only"
SESSION_COLUMNS = "id, user_id, last_used_at, client_id"
KEYS = (
    "SELECT kid, algorithm, private_pem, created_at, retired_at FROM signing_keys"
    " ORDER BY created_at DESC, rowid DESC"
)
# One batch of a user's deletion: at most the last ``?`` of its sessions. The writer is alone: a
# batch ends every session it finds, and a deleted session leaves the index.
DELETE_USER_SESSIONS = (
    "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions WHERE user_id = ? LIMIT ?)"
)
# Each sweep rule's table and the condition its rows meet when due by the one ``?``.
_DUE = {
    Expired.ANONYMOUS_USERS: ("users", "is_anonymous = 1 AND last_seen_at < ?"),
    Expired.REVOKED_SESSIONS: ("sessions", "revoked_at IS NOT NULL AND revoked_at < ?"),
    Expired.IDLE_SESSIONS: ("sessions", "last_used_at < ? AND revoked_at IS NULL"),
    Expired.SPENT_TOKENS: ("refresh_tokens", "used_at IS NOT NULL AND used_at < ?"),
    # Retired keys past their window, while a key that signs remains (there always is one).
    Expired.RETIRED_KEYS: (
        "signing_keys",
        "retired_at < ? AND EXISTS (SELECT 1 FROM signing_keys WHERE retired_at IS NULL)",
    ),
}
# One batch of a rule: at most the second ``?`` rows.
DELETE_DUE = {
    rule: f"DELETE FROM {table} WHERE rowid IN"  # noqa: S608 (names are constants)
    f" (SELECT rowid FROM {table} WHERE {condition} LIMIT ?)"
    for rule, (table, condition) in _DUE.items()
}


def user_where(db: sqlite3.Connection, condition: str, value: str) -> UserRecord | None:
    row = db.execute(
        f"SELECT {_USER_COLUMNS} FROM users WHERE {condition}",  # noqa: S608
        (value,),
    ).fetchone()
    return None if row is None else UserRecord(row[0], bool(row[1]), row[2], row[3], bool(row[4]))


def start_session(db: sqlite3.Connection, user_id: str, session: NewSession) -> SessionRecord:
    """A new session of the user, who is seen now; the user's sessions past
    ``session.max_sessions`` ended (``end_sessions_past_limit``)."""
    seen(db, user_id, session.now)
    record = insert_session(db, user_id, session)
    if session.max_sessions:
        end_sessions_past_limit(db, user_id, session)
    return record


# The user's live sessions but the new one, past the most recently used max - 1 (the new one
# makes max); then its ended sessions past the most recently ended max. Both walk the index of
# the user's sessions (sessions_by_user), a few rows for most users, at most about 2 x max.
_END_LEAST_RECENT = (
    "UPDATE sessions SET revoked_at = ?, revoked_reason = 'idle' WHERE rowid IN"
    " (SELECT rowid FROM sessions WHERE user_id = ? AND revoked_at IS NULL AND id <> ?"
    " ORDER BY last_used_at DESC, rowid DESC LIMIT -1 OFFSET ?)"
)
_DELETE_LEAST_RECENT_ENDED = (
    "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions"
    " WHERE user_id = ? AND revoked_at IS NOT NULL"
    " ORDER BY revoked_at DESC, rowid DESC LIMIT -1 OFFSET ?)"
)


def end_sessions_past_limit(db: sqlite3.Connection, user_id: str, session: NewSession) -> None:
    """Bound the user's rows, in the new ``session``'s transaction: its live sessions past
    ``session.max_sessions`` (``session`` counted) end as idle, least recently used first (a
    refresh of one answers ``idle``, and the client logs back in by id); its ended sessions
    past as many, ended longest ago first, are deleted with their tokens (a refresh of one
    answers ``unknown``). So a user has at most twice ``max_sessions`` sessions, however often
    it logs in by id."""
    db.execute(_END_LEAST_RECENT, (session.now, user_id, session.id, session.max_sessions - 1))
    db.execute(_DELETE_LEAST_RECENT_ENDED, (user_id, session.max_sessions))


def start_session_if_user(
    db: sqlite3.Connection, user_id: str, session: NewSession
) -> SessionRecord | None:
    """``start_session``, if the user exists: on the writer, in the session's transaction, a
    deletion committed since the user was looked up (while a log-in checked the password) is
    seen, and none commits between check and write. None, not raised: a raise would roll the
    whole batch back."""
    if user_where(db, "id = ?", user_id) is None:
        return None
    return start_session(db, user_id, session)


def insert_session(db: sqlite3.Connection, user_id: str, new: NewSession) -> SessionRecord:
    record = SessionRecord(new.id, user_id, new.now, new.client_id)
    db.execute(
        "INSERT INTO sessions (id, user_id, created_at, last_used_at, client_id)"
        " VALUES (?, ?, ?, ?, ?)",
        (record.id, user_id, new.now, new.now, new.client_id),
    )
    db.execute(
        "INSERT INTO refresh_tokens (digest, session_id, created_at) VALUES (?, ?, ?)",
        (new.refresh_digest, record.id, new.now),
    )
    return record


def mark_anonymous_only(db: sqlite3.Connection, user_id: str) -> None:
    """Note that an anonymous-only client has the user: no client may promote it now. Written
    once: a user marked already is only read."""
    db.execute(
        "UPDATE users SET anonymous_only = 1 WHERE id = ? AND anonymous_only = 0", (user_id,)
    )


def revoke(db: sqlite3.Connection, session_id: str, now: float, reason: str) -> bool:
    cursor = db.execute(
        "UPDATE sessions SET revoked_at = ?, revoked_reason = ?"
        " WHERE id = ? AND revoked_at IS NULL",
        (now, reason, session_id),
    )
    return cursor.rowcount > 0


def revoke_user_batch(
    db: sqlite3.Connection, user_id: str, now: float, after: int, limit: int
) -> tuple[int, int, int]:
    """One batch of a log-out everywhere: the user's next ``limit`` sessions in rowid order
    after rowid ``after``, the live ones revoked; how many it found (fewer: the last batch), the
    last one's rowid and how many it revoked. A revoked session stays in the index of the
    user's sessions, so each batch starts where the last ended (keyset) rather than walking
    again past every session ended before it; a session created meanwhile takes a rowid after
    every other (the user's rows are not deleted here), so a later batch finds it."""
    found, last = db.execute(
        "SELECT count(*), max(rowid) FROM (SELECT rowid FROM sessions"
        " WHERE user_id = ? AND rowid > ? ORDER BY rowid LIMIT ?)",
        (user_id, after, limit),
    ).fetchone()
    if not found:
        return 0, after, 0
    revoked = db.execute(
        "UPDATE sessions SET revoked_at = ?, revoked_reason = 'log_out_everywhere'"
        " WHERE user_id = ? AND rowid > ? AND rowid <= ? AND revoked_at IS NULL",
        (now, user_id, after, last),
    ).rowcount
    return int(found), int(last), revoked


def seen(db: sqlite3.Connection, user_id: str, now: float) -> None:
    """Note that the user logged in or renewed (what anonymous retention measures)."""
    db.execute(
        "UPDATE users SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?",
        (now, user_id, now - SEEN_PRECISION),
    )
