"""Which kind of database a ``--database`` value names: a ``postgresql://`` (or
``postgres://``) URL that the driver will read as written, else a SQLite file path.

Only the standard library here: the command line checks a value before it loads the server.
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

from .._exceptions import ConfigurationError

__all__ = ["check_url", "is_postgres"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# A URL's scheme (RFC 3986) and its colon: what a value that is no file path starts with. Two
# characters at least: ``C:`` is a Windows drive, not a scheme.
_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")


def is_postgres(database: str | Path) -> bool:
    """Whether ``database`` names a PostgreSQL database rather than a SQLite file."""
    return str(database).startswith(_POSTGRES_SCHEMES)


def check_url(database: str | Path) -> None:
    """Refuse (``ConfigurationError``) a text that starts with a URL's scheme (``mysql:``,
    ``postgresql:`` without ``//``) but is no ``postgresql://`` or ``postgres://`` URL: it
    would be taken for a SQLite file path, and a file of that name created. A ``Path`` is a
    file by intent, whatever its name holds (``Path("backup:1.db")``)."""
    if isinstance(database, Path):
        return
    if is_postgres(database):
        _check_parameters(database)
        return
    scheme = _URL_SCHEME.match(database)
    if scheme is None:
        return
    # Only the scheme: the rest of the URL may hold a password.
    name = scheme.group(1)
    if name.lower() in ("postgresql", "postgres"):
        wrong = [
            *(["in lower case"] if name != name.lower() else []),
            *(["with //"] if not database.startswith("//", scheme.end()) else []),
        ]
        raise ConfigurationError(
            "a PostgreSQL database URL starts with postgresql:// or postgres://"
            f" ({', '.join(wrong)}): postgresql://USER@HOST:PORT/DB"
        )
    raise ConfigurationError(
        f"unsupported database URL scheme {name!r} (use postgresql://..., or a file path:"
        " ./NAME for a file whose name holds a colon)"
    )


def _check_parameters(url: str) -> None:
    """Refuse (``ConfigurationError``) a PostgreSQL URL parameter without a value
    (``?search_path=$SCHEMA``, the variable unset): the driver drops it, so the database's
    public schema, or sslmode's default, would be used without a word. Only its name is shown:
    the URL may hold a password."""
    # As urlsplit finds the query, which raises for some malformed URLs (the driver says so).
    query = url.partition("#")[0].partition("?")[2]
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if not value:
            # A name that is no parameter's may be a password's end: a '?' left unescaped.
            shown = (
                f"the database URL's {name} parameter"
                if _PARAMETER_NAME.fullmatch(name)
                else "a parameter of the database URL"
            )
            raise ConfigurationError(
                f"{shown} has no value (an unset variable?): give one, or leave it out"
            )


_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""What a URL parameter the driver reads (``search_path``, ``sslmode``) may be named."""
