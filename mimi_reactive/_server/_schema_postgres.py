"""The PostgreSQL schema, versioned in a ``mimi_schema`` table; a database migrates itself forward.

The whole upgrade runs in one transaction (PostgreSQL's DDL is transactional) under an
advisory lock, so workers starting together migrate once and a crash leaves the old version.
A database newer than this code is refused, never downgraded. The tables live in the
connection's current schema (``?search_path=NAME`` in the URL picks one).

The version is read first, without DDL or lock: a database already up to date is left
untouched, so a role with only SELECT/INSERT/UPDATE/DELETE can serve it. An upgrade waits at
most ``LOCK_TIMEOUT`` for each lock it takes: a transaction left open on ``sessions`` would
otherwise hold it without end, and every log-in would queue behind its pending exclusive lock.
It tries again after a pause that lets those queued statements through, and after
``LOCK_ATTEMPTS`` says which sessions of the server hold the locks.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg

from ._database import SchemaError, SchemaTooNewError

if TYPE_CHECKING:
    from ._postgres_pool import Connection

__all__ = ["LOCK_ATTEMPTS", "LOCK_TIMEOUT", "MIGRATIONS", "SCHEMA_VERSION", "migrate"]

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
# meanwhile numbers after them all and is found by a later batch, or, committed only after a
# batch passed its number, by a log-out's final pass (_postgres_sql.SETTLED_SEQ; a deletion
# ends by deleting the user). The index replaces the one
# on user_id alone (the foreign key's cascade uses it as well): a log-in writes no more
# indexes than before.
_V4 = """
ALTER TABLE sessions ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
DROP INDEX sessions_by_user;
CREATE INDEX sessions_by_user ON sessions(user_id, seq);
"""

# Version 5: the function a log-in calls to bound its user's sessions (max_sessions_per_user):
# the user's live sessions but the new one ($2) past the most recently used $3 - 1 end as idle,
# then its ended sessions past the most recently ended $3 are deleted (their tokens cascade);
# how many it deleted. Called once the log-in holds the user's row (_postgres_sql.LOG_IN,
# CREATE_SESSION): VOLATILE, so each statement here takes a snapshot of its own, which sees the
# sessions of the log-ins that held the row before and committed while this one waited for it
# (the calling statement's own snapshot, taken before the wait, does not). Both walk
# sessions_by_user: a few rows for most users, about 2 x $3 at most. PL/pgSQL, not SQL: it
# keeps its statements' plans per connection, where a SQL function plans both at every call
# (a log-in's time in the database: about +130 us beside +520 us, measured sequentially).
_V5 = """
CREATE FUNCTION end_sessions_past_limit(text, text, integer, double precision)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    deleted bigint;
BEGIN
    UPDATE sessions SET revoked_at = $4, revoked_reason = 'idle'
    WHERE id IN (
        SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND id <> $2
        ORDER BY last_used_at DESC, seq DESC OFFSET $3 - 1
    ) AND revoked_at IS NULL;
    DELETE FROM sessions WHERE id IN (
        SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NOT NULL
        ORDER BY revoked_at DESC, seq DESC OFFSET $3
    );
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$$;
"""

MIGRATIONS = (_V1, _V2, _V3, _V4, _V5)
SCHEMA_VERSION = len(MIGRATIONS)

LOCK_TIMEOUT = 3.0
"""Seconds an upgrade waits for each lock: below the default storage timeout (5 s), so the
requests queued behind its pending lock meanwhile are answered, late, rather than 503."""
LOCK_ATTEMPTS = 5
"""Upgrades tried before giving up on locks held by others, 1, 2, 4, 8 s apart."""

# One lock per schema: two databases (or schemas) on one server migrate independently.
_KEY = "hashtext('mimi_reactive.migrate.' || current_schema())::bigint"
_LOCK = f"SELECT pg_advisory_xact_lock({_KEY})"
# Whether the version table exists in the current schema (where the upgrade creates it).
_HAS_VERSION = """
SELECT EXISTS (
    SELECT 1 FROM pg_catalog.pg_tables
    WHERE schemaname = current_schema() AND tablename = 'mimi_schema'
)
"""
_VERSION = "SELECT coalesce(max(version), 0) FROM mimi_schema"
# Who holds a lock an upgrade waits for: a lock on a table of the current schema, or the
# upgrade's advisory lock (pg_locks splits its key in two). Never the query text, which can
# hold secrets; state and age are NULL for another role's sessions without pg_read_all_stats.
_HOLDERS = f"""
SELECT DISTINCT a.pid, a.application_name, a.state,
    extract(epoch FROM now() - coalesce(a.xact_start, a.backend_start))::int AS seconds
FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.pid <> pg_backend_pid() AND (
    (l.locktype = 'relation' AND l.relation IN (
        SELECT oid FROM pg_catalog.pg_class WHERE relnamespace = current_schema()::regnamespace))
    OR (l.locktype = 'advisory' AND l.objsubid = 1
        AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
        AND l.classid::bigint = ({_KEY} >> 32) & 4294967295
        AND l.objid::bigint = {_KEY} & 4294967295))
ORDER BY a.pid
"""  # noqa: S608 (_KEY is a constant)


async def migrate(
    connection: Connection,
    *,
    up_to: int = SCHEMA_VERSION,
    lock_timeout: float = LOCK_TIMEOUT,
    attempts: int = LOCK_ATTEMPTS,
) -> int:
    """Bring the schema to ``up_to`` (the current version by default); the version it had.
    ``SchemaError`` if it cannot: locks held by others past ``attempts`` tries of
    ``lock_timeout`` seconds each, or a role without the privileges an upgrade needs."""
    if await connection.fetchval("SELECT current_schema()") is None:
        raise SchemaError("the search_path names no existing schema")
    found = await _version(connection)
    if found is not None:
        _check_known(found)
    if found is not None and found >= up_to:
        return found  # up to date: no DDL, no lock
    for attempt in range(attempts):
        try:
            return await _upgrade(connection, up_to, lock_timeout)
        except asyncpg.LockNotAvailableError:
            if attempt == attempts - 1:
                raise SchemaError(await _blocked(connection, attempts, lock_timeout)) from None
            await asyncio.sleep(2.0**attempt)
        except asyncpg.InsufficientPrivilegeError as error:
            why = error.args[0] if error.args else "permission denied"
            raise SchemaError(
                f"the schema is at version {found or 0}, this server needs {up_to}, and this"
                f" role may not upgrade it ({why}):"
                " run `mimi-reactive migrate` with a role that owns the schema"
            ) from None
    raise AssertionError("unreachable")


async def _version(connection: Connection) -> int | None:
    """The schema's version, or None without a version table."""
    if not await connection.fetchval(_HAS_VERSION):
        return None
    return int(await connection.fetchval(_VERSION))


def _check_known(found: int) -> None:
    """Refuse (``SchemaTooNewError``) a schema newer than this server knows: an older server
    must not run, nor migrate, against the tables a newer one left; and (``SchemaError``) one
    below 0, which no server writes (read as an index into the migrations, it would run the
    last ones first)."""
    if found > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"the database has schema version {found}; this server knows up to {SCHEMA_VERSION}"
        )
    if found < 0:
        raise SchemaError(
            f"the database has schema version {found}, which no version of this server"
            " writes: not a database of this server, or its version was changed by hand"
        )


async def _upgrade(connection: Connection, up_to: int, lock_timeout: float) -> int:
    """One try at the upgrade, in one transaction whose every lock waits ``lock_timeout``."""
    async with connection.transaction():
        # SET LOCAL takes no parameter; an int of milliseconds is safe to format.
        await connection.execute(f"SET LOCAL lock_timeout = {max(1, int(lock_timeout * 1000))}")
        await connection.execute(_LOCK)
        found = await _version(connection)  # again: another may have upgraded meanwhile
        if found is None:
            await connection.execute("CREATE TABLE mimi_schema (version integer)")
            found = 0
        _check_known(found)
        for version in range(found, up_to):
            await connection.execute(MIGRATIONS[version])
        if up_to > found:
            await connection.execute("DELETE FROM mimi_schema")
            await connection.execute("INSERT INTO mimi_schema (version) VALUES ($1)", up_to)
    return found


async def _blocked(connection: Connection, attempts: int, lock_timeout: float) -> str:
    """Why the upgrade gave up: the sessions holding the locks it waited for, by pid."""
    holders = [
        f"pid {row['pid']} (application {row['application_name']!r},"
        f" {row['state'] or 'state hidden'}, for {row['seconds']} s)"
        if row["seconds"] is not None
        else f"pid {row['pid']} (application {row['application_name']!r}, state hidden)"
        for row in await connection.fetch(_HOLDERS)
    ]
    held = "; ".join(holders) if holders else "sessions that have ended since"
    return (
        f"the schema upgrade gave up after {attempts} tries of {lock_timeout:g} s each waiting"
        f" for locks held by {held}: end that transaction (or pg_terminate_backend(pid)), then"
        " migrate again"
    )
