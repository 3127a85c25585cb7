"""Which database a ``--database`` value names: a ``postgresql://`` (or ``postgres://``) URL,
else a SQLite file path (``_database_url.check_url`` refuses any other scheme).

A PostgreSQL URL can carry a password, so it is only ever shown through ``describe``.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from pathlib import Path

import asyncpg

from .._exceptions import ConfigurationError
from .._redaction import shown_url
from ._database import IdentityDatabase, SchemaError
from ._database_url import check_url, is_postgres
from ._postgres import PostgresIdentityDatabase
from ._schema_postgres import SCHEMA_VERSION as POSTGRES_VERSION
from ._schema_sqlite import SCHEMA_VERSION as SQLITE_VERSION
from ._sqlite import SqliteIdentityDatabase

__all__ = [
    "DatabaseNameError",
    "DatabaseOpenError",
    "connections_allowed",
    "describe",
    "failure_reason",
    "is_postgres",
    "migrate_database",
    "open_database",
    "open_prepared",
]


class DatabaseOpenError(Exception):
    """The database cannot be opened: one line naming it (password removed) and why."""


class DatabaseNameError(DatabaseOpenError):
    """The database's name is refused before anything is opened: a URL of another kind of
    database, or (where nothing may be created) a SQLite file that does not exist."""


def describe(database: str | Path) -> str:
    """The database as it may be shown: a URL as ``shown_url`` shows it (no password), or the
    file path."""
    text = str(database)
    return shown_url(text, "database") if is_postgres(text) else repr(text)


def _check_name(database: str | Path, *, create: bool) -> None:
    """Refuse (``DatabaseNameError``) what ``check_url`` refuses; and without ``create``, a
    SQLite file that does not exist."""
    text = str(database)
    try:
        check_url(database)
    except ConfigurationError as error:
        raise DatabaseNameError(str(error)) from None
    if not create and not is_postgres(text) and text != ":memory:" and not Path(text).exists():
        raise DatabaseNameError(f"no database at {describe(text)}; run migrate or serve first")


async def open_database(
    database: str | Path, *, pool_size: int = 10, create: bool = True, storage_timeout: float = 5.0
) -> IdentityDatabase:
    """Open (and migrate forward) the database ``database`` names; ``DatabaseOpenError`` if not.
    ``pool_size``: the most connections a PostgreSQL database opens (SQLite has one);
    ``storage_timeout``: the seconds each of its calls has once open. Without
    ``create``, a missing SQLite file is refused rather than created; that and a URL of
    another kind of database raise ``DatabaseNameError``, before anything is opened."""
    _check_name(database, create=create)
    try:
        if is_postgres(database):
            return await PostgresIdentityDatabase.open(
                str(database), max_size=pool_size, storage_timeout=storage_timeout
            )
        return await SqliteIdentityDatabase.open(database)
    except TimeoutError:  # before OSError, which it is: the connection's storage_timeout
        raise DatabaseOpenError(
            f"cannot open the database {describe(database)}: it did not answer within"
            f" {storage_timeout:g} s"
        ) from None
    except (
        OSError,
        sqlite3.Error,
        asyncpg.PostgresError,
        SchemaError,
        ValueError,
        OverflowError,  # a URL's port past 65535, which asyncpg passes on to the socket
    ) as error:
        raise DatabaseOpenError(
            f"cannot open the database {describe(database)}: {failure_reason(error)}"
        ) from None
    except asyncpg.InterfaceError as error:
        raise DatabaseOpenError(
            f"cannot open the database {describe(database)}: {type(error).__name__}"
        ) from None


async def open_prepared(
    database: str | Path, *, pool_size: int = 10, storage_timeout: float = 5.0
) -> IdentityDatabase:
    """A database ``migrate_database`` has brought up to date (a worker's, after
    ``prepare_workers``), opened without touching it: a PostgreSQL pool that connects at first
    use, so a worker (re)started while the database is out starts, and serves ``/health`` and
    503 until the database answers. A SQLite file is opened as ``open_database`` does."""
    if not is_postgres(database):
        return await open_database(database, pool_size=pool_size, storage_timeout=storage_timeout)
    # The URL needs no check: migrate_database has just connected with it.
    return await PostgresIdentityDatabase.open(
        str(database), max_size=pool_size, storage_timeout=storage_timeout, prepared=True
    )


async def migrate_database(database: str | Path) -> tuple[int, int]:
    """Bring the database's schema up to date without serving: (version found, version now)."""
    opened = await open_database(database)
    await opened.close()
    if isinstance(opened, PostgresIdentityDatabase):
        return opened.schema_found, POSTGRES_VERSION
    assert isinstance(opened, SqliteIdentityDatabase)
    return opened.schema_found, SQLITE_VERSION


# What ordinary roles may open: max_connections less the slots kept for superusers and, from
# PostgreSQL 16, for roles granted pg_use_reserved_connections (no such setting before: NULL).
_CONNECTIONS_ALLOWED = """
SELECT current_setting('max_connections')::int
    - current_setting('superuser_reserved_connections')::int
    - coalesce(current_setting('reserved_connections', true)::int, 0)
"""


async def connections_allowed(database: str, *, within: float = 5.0) -> int | None:
    """How many connections the PostgreSQL server at ``database`` allows roles that are not
    superusers, all clients together; None if it cannot be read within ``within`` seconds
    (only a warning needs it)."""
    try:
        connection = await asyncpg.connect(database, timeout=within, command_timeout=within)
        try:
            return int(await connection.fetchval(_CONNECTIONS_ALLOWED))
        finally:
            await connection.close()
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return None


def failure_reason(error: BaseException) -> str:
    """The OS's, SQLite's or PostgreSQL's own words for a failure at start (one line, no
    traceback), never a URL or password."""
    if isinstance(error, socket.gaierror) and error.strerror:
        return error.strerror.lower()
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno).lower()
    if isinstance(error, asyncpg.PostgresError):
        return str(error.args[0]) if error.args else type(error).__name__
    if isinstance(error, UnicodeError):  # the IDNA encoding of a host name, before a lookup
        return "the host name is not valid: a part between dots is empty or past 63 characters"
    if isinstance(error, ValueError):
        return "the URL is not valid"
    if isinstance(error, OverflowError):
        return "its port is not from 0 to 65535"
    return str(error) or type(error).__name__
