"""The SQL the PostgreSQL database (``_postgres.py``) names rather than writes inline: its
multi-line statements (data-modifying CTEs that write a user, its session and its token
together; refresh rotation's locked read and its writes; the sweep's batches) and the pieces
several operations share.
"""

from ._records import Expired

__all__ = [
    "ADD_KEY",
    "CREATE_SESSION",
    "CREATE_USER",
    "DELETE_DUE",
    "DELETE_USER_SESSIONS",
    "FINAL_REVOKE",
    "KEYS",
    "KEY_LOCK",
    "LOCK_REFRESH_ROW",
    "LOG_IN",
    "MARK_USER_ANONYMOUS_ONLY",
    "NEWER_SPENT",
    "PROMOTE",
    "REVOKE",
    "REVOKE_BY_REFRESH",
    "REVOKE_USER_SESSIONS",
    "ROTATE",
    "SESSION_ROW",
    "SETTLED_SEQ",
    "USER",
    "USER_ROW",
    "USER_SESSIONS_LOCK",
]

USER_ROW = "id, is_anonymous, email, password_hash, anonymous_only"
USER = f"SELECT {USER_ROW} FROM users WHERE "  # noqa: S608
SESSION_ROW = "id, user_id, last_used_at, client_id"

CREATE_USER = """
WITH u AS (
    INSERT INTO users (id, anonymous_id_digest, email, password_hash, is_anonymous,
        created_at, last_seen_at, anonymous_only) VALUES ($1, $2, $3, $4, $5, $6, $6, $10)
), s AS (
    INSERT INTO sessions (id, user_id, created_at, last_used_at, client_id)
    VALUES ($7, $1, $6, $6, $8)
)
INSERT INTO refresh_tokens (digest, session_id, created_at) VALUES ($9, $7, $6)
"""

# A renewal through an anonymous-only client marks its user (written once).
MARK_USER_ANONYMOUS_ONLY = (
    "UPDATE users SET anonymous_only = true WHERE id = $1 AND NOT anonymous_only"
)

# A new session of an existing user: the user's row is locked (FOR NO KEY UPDATE, which other
# log-ins of the user wait for, as for LOG_IN's FOR UPDATE) before the session is numbered, so a
# log-out everywhere that locks the row (SETTLED_SEQ) finds every session numbered before it
# committed (see there), and the user's sessions past $7 (max_sessions_per_user; 0: no limit)
# end (_schema_postgres._V5's function, called once the row is held) with every log-in of the
# user before this one in sight. How many users it found: 0, nothing written, for a user
# deleted meanwhile.
CREATE_SESSION = """
WITH u AS (
    SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE
), seen AS (
    UPDATE users SET last_seen_at = $4 WHERE id = (SELECT id FROM u) AND last_seen_at < $6
), s AS (
    INSERT INTO sessions (id, user_id, created_at, last_used_at, client_id)
    SELECT $2, id, $4, $4, $3 FROM u
), t AS (
    INSERT INTO refresh_tokens (digest, session_id, created_at) SELECT $5, $2, $4 FROM u
)
SELECT count(*), sum(CASE WHEN $7 > 0 THEN end_sessions_past_limit(id, $2, $7, $4) END) FROM u
"""

# A log-in by anonymous id: the user, with its new session and refresh token written only if
# the user exists; its last_seen_at at most once per SEEN_PRECISION and, through an
# anonymous-only client ($7), its anonymous_only mark, in one UPDATE (two on one row in one
# statement would leave only one of them); the user's sessions past $8 ended, as CREATE_SESSION
# does (the row is held FOR UPDATE first).
LOG_IN = f"""
WITH u AS (
    SELECT {USER_ROW} FROM users WHERE anonymous_id_digest = $1 FOR UPDATE
), seen AS (
    UPDATE users
    SET last_seen_at = GREATEST(last_seen_at, $4), anonymous_only = anonymous_only OR $7
    WHERE id = (SELECT id FROM u) AND (last_seen_at < $6 OR ($7 AND NOT anonymous_only))
), s AS (
    INSERT INTO sessions (id, user_id, created_at, last_used_at, client_id)
    SELECT $2, id, $4, $4, $3 FROM u
), t AS (
    INSERT INTO refresh_tokens (digest, session_id, created_at) SELECT $5, $2, $4 FROM u
)
SELECT id, is_anonymous, email, password_hash, anonymous_only OR $7,
    CASE WHEN $8 > 0 THEN end_sessions_past_limit(id, $2, $8, $4) END
FROM u
"""  # noqa: S608

# A promotion, only while the caller's session ($4) is a live session of the user: the user's
# row is locked first (FOR UPDATE, the lock the UPDATE of its unique anonymous_id_digest
# takes), as every write of a user's sessions takes it, and only then the session (FOR SHARE,
# so a log-out waits for the promotion's commit). Session first, a log-in past the cap ending
# it (holding the user, then waiting for the session) and the promotion (holding the session,
# then waiting for the user) each waited for the other, a deadlock. "live" emits the session
# only once u has emitted (so locked) the user; one a log-in or log-out ended before (while
# the password hashed, or while this waited for the user) is read as it is once that
# committed: revoked, so "live" is empty and nothing is written.
PROMOTE = """
WITH u AS MATERIALIZED (
    SELECT id FROM users WHERE id = $1 FOR UPDATE
), live AS (
    SELECT 1 FROM sessions s JOIN u ON u.id = s.user_id
    WHERE s.id = $4 AND s.revoked_at IS NULL FOR SHARE OF s
), promoted AS (
    UPDATE users SET email = $2, password_hash = $3, is_anonymous = false,
        anonymous_id_digest = NULL
    WHERE id = $1 AND is_anonymous AND NOT anonymous_only AND EXISTS (SELECT 1 FROM live)
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM live) AS live, EXISTS (SELECT 1 FROM promoted) AS promoted
"""

# Refresh rotation's read: the token's user's row locked first, then the session's and the
# token's. The user first, as every write of a user's sessions takes it (LOG_IN,
# CREATE_SESSION, USER_SESSIONS_LOCK): a log-in ending this session (it holds the user, then
# the session) and this rotation (the session, then the user) each waited for the other, a
# deadlock. The join emits a row only once the CTE has emitted (so locked) the user's row, and
# only then are s and t locked; a session a log-in ended or deleted meanwhile is read as it is
# once the log-in committed (revoked, or no row).
LOCK_REFRESH_ROW = """
WITH u AS MATERIALIZED (
    SELECT id, is_anonymous, email, password_hash, anonymous_only FROM users
    WHERE id = (SELECT s.user_id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
        WHERE t.digest = $1)
    FOR UPDATE
)
SELECT s.id, s.user_id, s.last_used_at, s.revoked_at, t.used_at, t.seq, s.client_id,
    u.is_anonymous, u.email, u.password_hash, t.superseded, s.revoked_reason, u.anonymous_only
FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id JOIN u ON u.id = s.user_id
WHERE t.digest = $1 FOR UPDATE OF s, t
"""

NEWER_SPENT = """
SELECT EXISTS (SELECT 1 FROM refresh_tokens
    WHERE session_id = $1 AND seq > $2 AND used_at IS NOT NULL AND NOT superseded)
"""

# Spends the token (unless a retry's reissue: spent already) and then retires the session's
# other unspent tokens (see ``_sqlite_rotation._supersede_siblings``): the CTEs see one snapshot,
# so neither the token spent nor the one issued here is among them.
ROTATE = """
WITH spent AS (
    UPDATE refresh_tokens SET used_at = $1 WHERE digest = $2 AND used_at IS NULL RETURNING 1
), siblings AS (
    UPDATE refresh_tokens SET used_at = $1, superseded = true
    WHERE session_id = $4 AND used_at IS NULL AND digest <> $2 AND EXISTS (SELECT 1 FROM spent)
), issued AS (
    INSERT INTO refresh_tokens (digest, session_id, created_at) VALUES ($3, $4, $1)
), session AS (
    UPDATE sessions SET last_used_at = $1, client_id = $5 WHERE id = $4
)
UPDATE users SET last_seen_at = $1 WHERE id = $6 AND last_seen_at < $7
"""

REVOKE = (
    "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL"
)

# A session of no recorded client (stored before sessions kept theirs) is any client's.
REVOKE_BY_REFRESH = """
WITH token AS (
    SELECT s.id, s.client_id IS NULL OR s.client_id = $3 AS own
    FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.digest = $1
), revoked AS (
    UPDATE sessions SET revoked_at = $2, revoked_reason = 'log_out'
    WHERE revoked_at IS NULL AND id = (SELECT id FROM token WHERE own) RETURNING id
)
SELECT (SELECT own FROM token) AS own, EXISTS (SELECT 1 FROM revoked) AS revoked
"""

# One batch of a user's deletion or log-out everywhere: the next $2 of its sessions in seq
# order (creation order; sessions older than schema 4 were numbered in table order) after the
# last one ($3) the batch before ended, ended (the live ones, for a log-out); how many it found
# (a batch that finds fewer is the last) and the last one's seq.
# Keyset batches: each starts where the last ended, so no batch walks again the index entries
# of sessions ended before it. Not SKIP LOCKED as the sweep's: a session passed over would
# outlive the call. Each batch takes the user's row first (USER_SESSIONS_LOCK): a log-in past
# the cap (holding the row) ends one session and deletes another, which a batch without the
# row could hold one of while waiting for the other, a deadlock. None for a user gone already.
USER_SESSIONS_LOCK = "u AS MATERIALIZED (SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE)"
DELETE_USER_SESSIONS = f"""
WITH {USER_SESSIONS_LOCK}, found AS (
    SELECT id, seq FROM sessions WHERE user_id = (SELECT id FROM u) AND seq > $3
    ORDER BY seq LIMIT $2
), deleted AS (DELETE FROM sessions WHERE id IN (SELECT id FROM found))
SELECT count(*) AS found, max(seq) AS last FROM found
"""  # noqa: S608 (a constant)
REVOKE_USER_SESSIONS = f"""
WITH {USER_SESSIONS_LOCK}, found AS (
    SELECT id, seq, revoked_at FROM sessions WHERE user_id = (SELECT id FROM u) AND seq > $4
    ORDER BY seq LIMIT $2
), revoked AS (
    UPDATE sessions SET revoked_at = $3, revoked_reason = 'log_out_everywhere'
    WHERE id IN (SELECT id FROM found WHERE revoked_at IS NULL) AND revoked_at IS NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM found) AS found, (SELECT max(seq) FROM found) AS last,
    (SELECT count(*) FROM revoked) AS revoked
"""  # noqa: S608 (a constant)

# Where a log-out everywhere's final pass starts: the user's last session once every session
# numbered before now has committed. A session is numbered (seq) only after its log-in locked
# the user's row (LOG_IN, CREATE_SESSION), and holds that lock until it commits, so waiting for
# the row (FOR UPDATE conflicts with their locks) waits for them; one numbered after is numbered
# higher. Sessions up to this seq are all committed before the keyset batches begin, so every
# batch sees them; one the batches may miss (numbered, then committed after a batch passed its
# seq) is numbered higher, and FINAL_REVOKE ends it. Two statements: a statement's snapshot is
# taken before it waits for the lock.
SETTLED_SEQ = (
    "SELECT 1 FROM users WHERE id = $1 FOR UPDATE",
    "SELECT coalesce(max(seq), 0) FROM sessions WHERE user_id = $1",
)
# A log-out everywhere's final pass, after the batches: one statement, so it ends every session
# committed before it began (those numbered after SETTLED_SEQ, on the index's range), and a
# log-in that commits after it is ordered after the log-out: the call ends, as one moment, every
# session whose log-in committed before that moment. The user's row first, as the batches.
FINAL_REVOKE = f"""
WITH {USER_SESSIONS_LOCK}
UPDATE sessions SET revoked_at = $3, revoked_reason = 'log_out_everywhere'
WHERE user_id = (SELECT id FROM u) AND seq > $2 AND revoked_at IS NULL
"""  # noqa: S608 (a constant)

# Each sweep rule's table, its key, and the condition its rows meet when due by $2.
_DUE = {
    Expired.ANONYMOUS_USERS: ("users", "id", "is_anonymous AND last_seen_at < $2"),
    Expired.REVOKED_SESSIONS: ("sessions", "id", "revoked_at IS NOT NULL AND revoked_at < $2"),
    Expired.IDLE_SESSIONS: ("sessions", "id", "last_used_at < $2 AND revoked_at IS NULL"),
    Expired.SPENT_TOKENS: ("refresh_tokens", "digest", "used_at IS NOT NULL AND used_at < $2"),
    # Retired keys past their window, while a key that signs remains (there always is one).
    Expired.RETIRED_KEYS: (
        "signing_keys",
        "kid",
        "retired_at < $2 AND EXISTS (SELECT 1 FROM signing_keys WHERE retired_at IS NULL)",
    ),
}
# One batch of a sweep rule: at most $1 rows, in a statement (a transaction) of its own. SKIP
# LOCKED: rows a request or another worker's sweep holds are passed over, so sweeps of several
# workers share the work instead of queueing on each other's rows. A batch that passes over
# rows can delete fewer than $1 and so end its rule: what it passed over waits for the next sweep.
DELETE_DUE = {
    rule: f"""
DELETE FROM {table} WHERE {key} IN (
    SELECT {key} FROM {table} WHERE {condition} LIMIT $1 FOR UPDATE SKIP LOCKED
)
"""  # noqa: S608 (names are constants)
    for rule, (table, key, condition) in _DUE.items()
}

KEYS = (
    "SELECT kid, algorithm, private_pem, created_at, retired_at FROM signing_keys"
    " ORDER BY created_at DESC, seq DESC"
)
ADD_KEY = """
WITH retired AS (UPDATE signing_keys SET retired_at = $4 WHERE retired_at IS NULL)
INSERT INTO signing_keys (kid, algorithm, private_pem, created_at, retired_at)
VALUES ($1, $2, $3, $4, $5)
"""
KEY_LOCK = "SELECT pg_advisory_xact_lock(hashtext('mimi_reactive.keys.' || current_schema()))"
