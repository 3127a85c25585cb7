"""The PostgreSQL schema, versioned in a ``mimi_schema`` table; a database migrates itself forward.

The whole upgrade runs in one transaction (PostgreSQL's DDL is transactional) under an
advisory lock, so workers starting together migrate once and a crash leaves the old version.
A database newer than this code is refused, never downgraded. The tables live in the
connection's current schema (``?search_path=NAME`` in the URL picks one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._database import SchemaError, SchemaTooNewError

if TYPE_CHECKING:
    from ._postgres_pool import Connection

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate"]

# Version 1: the SQLite schema's version 2, with native types. ``seq`` orders refresh tokens
# (SQLite's rowid) and signing keys created in the same second.
_V1 = """
CREATE TABLE users (
    id text PRIMARY KEY,
    anonymous_id_digest text UNIQUE,
    email text UNIQUE,
    password_hash text,
    is_anonymous boolean NOT NULL,
    created_at double precision NOT NULL,
    last_seen_at double precision NOT NULL
);
CREATE TABLE sessions (
    id text PRIMARY KEY,
    user_id text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    access_digest text NOT NULL UNIQUE,
    access_expires_at double precision NOT NULL,
    created_at double precision NOT NULL,
    last_used_at double precision NOT NULL,
    revoked_at double precision,
    revoked_reason text,
    client_id text
);
CREATE TABLE refresh_tokens (
    digest text PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    session_id text NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    created_at double precision NOT NULL,
    used_at double precision
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens(session_id, seq);
CREATE INDEX sessions_by_user ON sessions(user_id);
CREATE INDEX sessions_by_last_use ON sessions(last_used_at);
CREATE INDEX sessions_revoked ON sessions(revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX refresh_tokens_spent ON refresh_tokens(used_at) WHERE used_at IS NOT NULL;
CREATE INDEX users_anonymous_by_last_seen ON users(last_seen_at) WHERE is_anonymous;
CREATE TABLE signing_keys (
    kid text PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    algorithm text NOT NULL,
    private_pem text NOT NULL,
    created_at double precision NOT NULL,
    retired_at double precision
);
"""

# Version 2: sessions no longer keep their access token's digest and expiry, which nothing read
# (a token is checked by its signature and its session's row): a log-in writes one index less.
# The unique index on the digest goes with its column.
_V2 = """
ALTER TABLE sessions DROP COLUMN access_digest, DROP COLUMN access_expires_at;
"""

# Version 3: the SQLite schema's version 4 (superseded refresh tokens, anonymous-only users).
_V3 = """
ALTER TABLE refresh_tokens ADD COLUMN superseded boolean NOT NULL DEFAULT false;
ALTER TABLE users ADD COLUMN anonymous_only boolean NOT NULL DEFAULT false;
"""

# Version 4: sessions are numbered as they are created (``seq``), and the index of a user's
# sessions is ordered by it, so a user's deletion or log-out everywhere walks the sessions in
# batches that each start where the last ended: one that searched from the start every time
# walked again the index entries of every session earlier batches had ended (revoked rows still
# match, deleted ones stay until vacuum), quadratic in the user's sessions. A session created
# meanwhile numbers after them all and is found by a later batch. The index replaces the one
# on user_id alone (the foreign key's cascade uses it as well): a log-in writes no more
# indexes than before.
_V4 = """
ALTER TABLE sessions ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
DROP INDEX sessions_by_user;
CREATE INDEX sessions_by_user ON sessions(user_id, seq);
"""

MIGRATIONS = (_V1, _V2, _V3, _V4)
SCHEMA_VERSION = len(MIGRATIONS)

# One lock per schema: two databases (or schemas) on one server migrate independently.
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('mimi_reactive.migrate.' || current_schema()))"


async def migrate(connection: Connection, *, up_to: int = SCHEMA_VERSION) -> int:
    """Bring the schema to ``up_to`` (the current version by default); the version it had."""
    async with connection.transaction():
        if await connection.fetchval("SELECT current_schema()") is None:
            raise SchemaError("the search_path names no existing schema")
        await connection.execute(_LOCK)
        await connection.execute("CREATE TABLE IF NOT EXISTS mimi_schema (version integer)")
        found = int(await connection.fetchval("SELECT coalesce(max(version), 0) FROM mimi_schema"))
        if found > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"the database has schema version {found}; this server knows up to {SCHEMA_VERSION}"
            )
        for version in range(found, up_to):
            await connection.execute(MIGRATIONS[version])
        if up_to > found:
            await connection.execute("DELETE FROM mimi_schema")
            await connection.execute("INSERT INTO mimi_schema (version) VALUES ($1)", up_to)
    return found
