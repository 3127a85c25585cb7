"""Which store a ``--database`` value names: a ``postgresql://`` URL, else a SQLite file path.

A PostgreSQL URL can carry a password, so it is only ever shown through ``describe``.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import urllib.parse
from pathlib import Path

import asyncpg

from ._database import SqliteIdentityDatabase
from ._postgres import PostgresIdentityDatabase
from ._records import IdentityDatabase
from ._schema import SCHEMA_VERSION as SQLITE_VERSION
from ._schema import SchemaError
from ._schema_postgres import SCHEMA_VERSION as POSTGRES_VERSION

__all__ = ["DatabaseOpenError", "describe", "is_postgres", "migrate_database", "open_database"]

_SCHEMES = ("postgresql://", "postgres://")


class DatabaseOpenError(Exception):
    """The database cannot be opened: one line naming it (password removed) and why."""


def is_postgres(database: str | Path) -> bool:
    """Whether ``database`` names a PostgreSQL database rather than a SQLite file."""
    return str(database).startswith(_SCHEMES)


def describe(database: str | Path) -> str:
    """The database as it may be shown: a URL without its password, or the file path."""
    text = str(database)
    if not is_postgres(text):
        return repr(text)
    try:
        parts = urllib.parse.urlsplit(text)
        user = f"{parts.username}@" if parts.username else ""
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "a postgresql:// URL that cannot be parsed"
    return f"postgresql://{user}{host}{port}{parts.path}"


async def open_database(database: str | Path, *, pool_size: int = 10) -> IdentityDatabase:
    """Open (and migrate forward) the store ``database`` names; ``DatabaseOpenError`` if not.
    ``pool_size``: the most connections a PostgreSQL store opens (SQLite has one)."""
    try:
        if is_postgres(database):
            return await PostgresIdentityDatabase.open(str(database), max_size=pool_size)
        return await SqliteIdentityDatabase.open(database)
    except (OSError, sqlite3.Error, asyncpg.PostgresError, SchemaError, ValueError) as error:
        raise DatabaseOpenError(
            f"cannot open the database {describe(database)}: {_reason(error)}"
        ) from None
    except asyncpg.InterfaceError as error:
        raise DatabaseOpenError(
            f"cannot open the database {describe(database)}: {type(error).__name__}"
        ) from None


async def migrate_database(database: str | Path) -> tuple[int, int]:
    """Bring the store's schema up to date without serving: (version found, version now)."""
    opened = await open_database(database)
    await opened.close()
    if isinstance(opened, PostgresIdentityDatabase):
        return opened.schema_found, POSTGRES_VERSION
    assert isinstance(opened, SqliteIdentityDatabase)
    return opened.schema_found, SQLITE_VERSION


def _reason(error: BaseException) -> str:
    """The OS's, SQLite's or PostgreSQL's own words for a failure, never a URL or password."""
    if isinstance(error, socket.gaierror) and error.strerror:
        return error.strerror.lower()
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno).lower()
    if isinstance(error, asyncpg.PostgresError):
        return str(error.args[0]) if error.args else type(error).__name__
    if isinstance(error, ValueError):
        return "the URL is not valid"
    return str(error) or type(error).__name__
