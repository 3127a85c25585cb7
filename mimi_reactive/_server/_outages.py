"""Which failures of the database or the rate-limit storage mean it is unavailable (an outage:
503 with Retry-After) rather than a bug of the server (500): no connection, no answer in time,
a database dropped or a file that cannot be opened, read or written."""

from __future__ import annotations

import sqlite3

import asyncpg

from ._edge import ApiError

__all__ = ["OUTAGE_RETRY_AFTER", "TEMPORARILY_UNAVAILABLE", "is_outage"]

OUTAGE_RETRY_AFTER = 5
"""Seconds a client is told to wait while the database or the rate-limit storage is out."""
TEMPORARILY_UNAVAILABLE = ApiError(
    503,
    "temporarily_unavailable",
    "the server cannot reach its database or its rate-limit counters now; try again",
    retry_after=OUTAGE_RETRY_AFTER,
)
"""The answer while the database or the rate-limit storage is unavailable: an outage, not
this request's fault."""

# PostgreSQL's SQLSTATE classes of a server that cannot serve now (PostgreSQL Appendix A):
# 08 connection exception, 28 invalid authorization, 53 insufficient resources, 57 operator
# intervention (shut down, cannot connect now), 58 system error (I/O).
_POSTGRES_CLASSES = frozenset({"08", "28", "53", "57", "58"})
# 3D000 invalid_catalog_name: the database was dropped. 55P03 lock_not_available: a lock held
# past lock_timeout (as a statement past statement_timeout, 57014, is an outage). 25006
# read_only_sql_transaction: a database that takes no writes now (a standby the URL reaches
# after a failover, default_transaction_read_only set for maintenance or by a managed service
# whose disk is full), as SQLite's READONLY is.
_POSTGRES_STATES = frozenset({"3D000", "55P03", "25006"})
# SQLite's primary result codes of a file it cannot use now: BUSY, LOCKED, NOMEM, READONLY,
# IOERR, FULL, CANTOPEN, PROTOCOL, NOTADB (another file put at its path). CORRUPT is left a
# failure: trying again does not mend it.
_SQLITE_CODES = frozenset({5, 6, 7, 8, 10, 13, 14, 15, 26})


def is_outage(error: BaseException) -> bool:
    """Whether ``error``, raised by the database or the rate-limit storage during a request, says
    it is unavailable (a timeout, a lost or refused connection, a dropped database, an unusable
    file)."""
    if isinstance(error, TimeoutError | OSError | asyncpg.ConnectionDoesNotExistError):
        return True
    if isinstance(error, asyncpg.PostgresError):
        state = str(getattr(error, "sqlstate", "") or "")
        return state[:2] in _POSTGRES_CLASSES or state in _POSTGRES_STATES
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        return isinstance(code, int) and code & 0xFF in _SQLITE_CODES
    return False
