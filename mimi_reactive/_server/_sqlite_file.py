"""The SQLite database's file: created 0600, each connection with foreign keys on and a large
page cache, the file in WAL mode and its schema brought up to date; and how the database tells
that file from one removed or put in its place since it opened it.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from ._schema_sqlite import migrate

__all__ = [
    "DatabaseReplacedError",
    "check_same_file",
    "connect",
    "create_private_file",
    "identity",
    "prepare",
]

# Past a checkpoint the WAL file is cut back to this size, so it stays small under load.
_WAL_SIZE_LIMIT = 4 * 1024 * 1024


def create_private_file(path: Path) -> None:
    """Create the database file 0600 before SQLite does (its WAL and SHM files follow its mode)."""
    descriptor = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(descriptor)


def connect(path: str | Path, *, read_only: bool = False) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; BatchingConnection says BEGIN itself.
    # check_same_thread=False: made on the connection's thread, closed there too.
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    connection.execute("PRAGMA foreign_keys = ON")
    # 64 MiB of page cache (the default is 2 MiB): with a million users the indexes that a
    # log-in walks no longer fit in the default, and every miss is a read() call.
    connection.execute("PRAGMA cache_size = -65536")
    if read_only:
        connection.execute("PRAGMA query_only = ON")
    return connection


def prepare(db: sqlite3.Connection) -> int:
    """Set the file up for WAL and bring its schema up to date; the version it had."""
    # Only takes effect on a new file: swept pages go back to the OS, not just reused.
    db.execute("PRAGMA auto_vacuum = INCREMENTAL")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}")
    return migrate(db)


class DatabaseReplacedError(OSError):
    """The database file was removed or replaced since the server opened it: what the server
    writes goes to a file no restart will find (an outage: 503, never a 201 that is lost)."""


def identity(path: str | Path) -> tuple[int, int]:
    """Which file ``path`` names now: its device and inode (``OSError`` if none)."""
    found = os.stat(path)
    return found.st_dev, found.st_ino


def check_same_file(path: str | Path, opened: tuple[int, int]) -> None:
    """Raise ``DatabaseReplacedError`` unless ``path`` still names the file ``opened``."""
    try:
        same = identity(path) == opened
    except FileNotFoundError:
        same = False
    if not same:
        raise DatabaseReplacedError(errno.ENOENT, "the database file was removed or replaced")
