"""Refresh-token rotation on the SQLite database: what presenting a refresh token does, decided
and written in one writer operation (a plain function of the connection, as those of
``_sqlite_rows.py``), so no other write comes between what it reads and what it writes.
"""

from __future__ import annotations

import sqlite3

from . import _sqlite_rows as rows
from ._records import Rotation, SessionRecord, UserRecord

__all__ = ["rotate"]


def rotate(
    db: sqlite3.Connection,
    *,
    refresh_digest: str,
    client_id: str,
    new_refresh_digest: str,
    now: float,
    idle_timeout: float,
    reuse_interval: float,
    anonymous_only: bool,
) -> tuple[Rotation, SessionRecord | None, UserRecord | None]:
    """Spend a refresh token for a new one; the session and its owner, for whom the caller
    signs the new access token.

    A token spent less than ``reuse_interval`` seconds ago, when no newer token of its session
    has been spent since, is the retry of a client whose answer was lost: it gets a new pair
    too. The first of the unspent tokens presented after that supersedes the others (the one
    the client kept is the one it presents), so the session never forks into two lines. Any
    other reuse, a superseded token's included, revokes the whole session. A token of another
    client's session is unknown to this one. An ``anonymous_only`` client's renewal marks its
    user so, as its log-in by id does: a user of an anonymous-only app from before the mark
    existed gets it at the app's next renewal.
    """
    row = db.execute(
        "SELECT s.id, s.user_id, s.last_used_at, s.revoked_at, t.used_at, t.rowid,"
        " s.client_id, u.is_anonymous, u.email, u.password_hash, t.superseded,"
        " s.revoked_reason, u.anonymous_only"
        " FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id"
        " JOIN users u ON u.id = s.user_id WHERE t.digest = ?",
        (refresh_digest,),
    ).fetchone()
    if row is None or row[6] not in (None, client_id):
        return Rotation.UNKNOWN, None, None
    session_id, user_id, last_used_at, revoked_at, used_at, token_row = row[:6]
    if revoked_at is not None:
        return Rotation.ended(row[11]), None, None
    if now - last_used_at > idle_timeout:
        rows.revoke(db, session_id, now, "idle")
        return Rotation.IDLE, None, None
    rotation = Rotation.ROTATED
    if used_at is not None:
        if (
            row[10]
            or now - used_at >= reuse_interval
            or _newer_token_spent(db, session_id, token_row)
        ):
            rows.revoke(db, session_id, now, "refresh_token_reuse")
            ended = SessionRecord(session_id, user_id, last_used_at, row[6])
            return Rotation.REUSED, ended, None
        rotation = Rotation.REISSUED
    else:
        db.execute("UPDATE refresh_tokens SET used_at = ? WHERE digest = ?", (now, refresh_digest))
        _supersede_siblings(db, session_id, now)
    marked = anonymous_only or bool(row[12])
    user = UserRecord(user_id, bool(row[7]), row[8], row[9], marked)
    db.execute(
        "INSERT INTO refresh_tokens (digest, session_id, created_at) VALUES (?, ?, ?)",
        (new_refresh_digest, session_id, now),
    )
    db.execute(
        "UPDATE sessions SET last_used_at = ?, client_id = ? WHERE id = ?",
        (now, client_id, session_id),
    )
    rows.seen(db, user_id, now)
    if anonymous_only and not row[12]:  # read above: written once, not every renewal
        rows.mark_anonymous_only(db, user_id)
    session = SessionRecord(session_id, user_id, now, client_id)
    return rotation, session, user


def _newer_token_spent(db: sqlite3.Connection, session_id: str, token_row: int) -> bool:
    """Whether a token issued after this one (so, from it on) was spent: then this one's
    reuse is a stolen copy, not the retry of a lost answer. A superseded token was never
    presented: it does not count."""
    row = db.execute(
        "SELECT 1 FROM refresh_tokens WHERE session_id = ? AND rowid > ? AND used_at IS NOT NULL"
        " AND superseded = 0 LIMIT 1",
        (session_id, token_row),
    ).fetchone()
    return row is not None


def _supersede_siblings(db: sqlite3.Connection, session_id: str, now: float) -> None:
    """Retire the session's other unspent refresh tokens as one of them is spent: after a
    retry's reissue two answers hold one each, and the first presented is the one the client
    kept (a delayed copy of the retried request can reissue after the retry's answer arrived,
    so the newest is not always it). Presenting a retired one later is reuse. They count as
    spent now, so the sweep keeps them as long as any spent token."""
    db.execute(
        "UPDATE refresh_tokens SET used_at = ?, superseded = 1"
        " WHERE session_id = ? AND used_at IS NULL",
        (now, session_id),
    )
