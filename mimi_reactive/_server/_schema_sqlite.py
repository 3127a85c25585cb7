"""The SQLite schema, versioned with ``PRAGMA user_version``; a database migrates itself forward.

Each migration runs in one transaction with the version bump, so a crash mid-upgrade leaves
the previous version intact; the transaction reads the version under the write lock, so two
processes opening one old file at once apply each migration once. A database newer than this
code is refused, never downgraded.
Foreign keys are off while migrations run, as SQLite's procedure for the changes ALTER TABLE
cannot make requires (https://sqlite.org/lang_altertable.html#otheralter): dropping a table to
rebuild it must not cascade to the rows that refer to it. Each migration checks the foreign
keys before it commits.
"""

from __future__ import annotations

import sqlite3

from ._database import SchemaError, SchemaTooNewError

__all__ = ["SCHEMA_VERSION", "migrate"]

# Version 1 is the schema before versioning existed (its databases say user_version 0).
_V1 = """
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

# Version 2: sessions know their client (tokens are bound to it), users when they were last
# seen (anonymous retention), indexes for the sweeper, and the access-token signing keys.
_V2 = """
ALTER TABLE users ADD COLUMN last_seen_at REAL;
UPDATE users SET last_seen_at = created_at;
ALTER TABLE sessions ADD COLUMN client_id TEXT;
CREATE INDEX sessions_by_user ON sessions(user_id);
CREATE INDEX sessions_by_last_use ON sessions(last_used_at);
CREATE INDEX sessions_revoked ON sessions(revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX refresh_tokens_spent ON refresh_tokens(used_at) WHERE used_at IS NOT NULL;
CREATE INDEX users_anonymous_by_last_seen ON users(last_seen_at) WHERE is_anonymous = 1;
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    private_pem TEXT NOT NULL,
    created_at REAL NOT NULL,
    retired_at REAL
);
"""

# Version 3: sessions no longer keep their access token's digest and expiry, which nothing read
# (a token is checked by its signature and its session's row): a log-in writes one index less.
# SQLite cannot drop a UNIQUE column, so the table is rebuilt (the procedure linked above:
# create, copy, drop, rename, then the indexes again); refresh_tokens refers to it by name.
_V3 = """
CREATE TABLE sessions_new (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at REAL NOT NULL,
    last_used_at REAL NOT NULL,
    revoked_at REAL,
    revoked_reason TEXT,
    client_id TEXT
);
INSERT INTO sessions_new (id, user_id, created_at, last_used_at, revoked_at, revoked_reason,
    client_id)
SELECT id, user_id, created_at, last_used_at, revoked_at, revoked_reason, client_id
FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_new RENAME TO sessions;
CREATE INDEX sessions_by_user ON sessions(user_id);
CREATE INDEX sessions_by_last_use ON sessions(last_used_at);
CREATE INDEX sessions_revoked ON sessions(revoked_at) WHERE revoked_at IS NOT NULL;
"""

# Version 4: a refresh token a retry's reissue replaced before anyone presented it is kept,
# marked superseded (presenting it later is reuse); and users an anonymous-only client made or
# logged in by id are marked anonymous_only, so that no client promotes them.
_V4 = """
ALTER TABLE refresh_tokens ADD COLUMN superseded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN anonymous_only INTEGER NOT NULL DEFAULT 0;
"""

_MIGRATIONS = (_V1, _V2, _V3, _V4)
SCHEMA_VERSION = len(_MIGRATIONS)


def migrate(db: sqlite3.Connection) -> int:
    """Bring the database to ``SCHEMA_VERSION``; returns the version it had.

    Each step reads the version again under the write lock (``BEGIN IMMEDIATE``), so that two
    processes opening one old file at once (``serve`` starting while ``migrate`` runs) apply
    each step once: the second finds it done and skips it.
    """
    found = _version(db)
    _refuse_unknown(found)
    if found == SCHEMA_VERSION:  # the usual start: no write lock taken
        return found
    # Outside any transaction: inside one, SQLite ignores this pragma.
    foreign_keys = db.execute("PRAGMA foreign_keys").fetchone()[0]
    db.execute("PRAGMA foreign_keys = OFF")
    try:
        had = version = _step(db)
        while version + 1 < SCHEMA_VERSION:
            version = _step(db)
    finally:
        db.execute(f"PRAGMA foreign_keys = {int(foreign_keys)}")
    return had


def _step(db: sqlite3.Connection) -> int:
    """Apply the migration after the version the database has under the write lock, if it is
    not the current one; the version read."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = _version(db)
        _refuse_unknown(version)
        if version < SCHEMA_VERSION:  # v1 is idempotent: 0 may be v1 or empty
            for statement in _statements(_MIGRATIONS[version]):
                db.execute(statement)
            if db.execute("PRAGMA foreign_key_check").fetchone() is not None:
                raise SchemaError(f"migration to version {version + 1} broke a foreign key")
            db.execute(f"PRAGMA user_version = {version + 1}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return version


def _version(db: sqlite3.Connection) -> int:
    row = db.execute("PRAGMA user_version").fetchone()
    return int(row[0]) if row is not None else 0


def _refuse_unknown(version: int) -> None:
    """Refuse a version this code does not know: a newer one (``SchemaTooNewError``), or one
    below 0, which no server writes (``SchemaError``: read as an index into the migrations,
    it would run the last ones first)."""
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"the database has schema version {version}; this server knows up to {SCHEMA_VERSION}"
        )
    if version < 0:
        raise SchemaError(
            f"the database has schema version {version}, which no version of this server"
            " writes: not a database of this server, or its version was changed by hand"
        )


def _statements(script: str) -> list[str]:
    return [each.strip() for each in script.split(";") if each.strip()]
