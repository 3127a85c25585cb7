"""Where a session is kept between runs: the ``SessionStorage`` port and the in-memory store."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

import attrs

from ._backend import AuthTokens, BackendSession
from ._user import MimiUser

__all__ = [
    "MemorySessionStorage",
    "SessionStorage",
    "SharedSessionStorage",
    "StoredSession",
    "decode_session",
    "encode_session",
]


@attrs.frozen
class StoredSession:
    """A session as kept: the user, its tokens, and when (on this machine's clock) they came.

    The expiry is worked out from the service's lifetime (``expires_in``) and the local
    ``obtained_at``, never from the service's clock, so clock skew cannot cause refresh loops.
    """

    session: BackendSession
    obtained_at: float

    @property
    def user(self) -> MimiUser:
        return self.session.user

    @property
    def usable_until(self) -> float | None:
        """Local time after which the access token is not handed out: a call made with it
        could reach the service after it expired. None if it never expires."""
        expires_in = self.session.tokens.expires_in
        if expires_in is None:
            return None
        return self.obtained_at + expires_in - min(_EXPIRY_LEEWAY, expires_in * 0.1)

    def refresh_due_at(self, ahead: float) -> float | None:
        """Local time to renew: when ``ahead`` (0-1) of the lifetime is left, and no later
        than ``usable_until``. None if the tokens never expire."""
        usable_until = self.usable_until
        expires_in = self.session.tokens.expires_in
        if usable_until is None or expires_in is None:
            return None
        return min(self.obtained_at + expires_in * (1.0 - ahead), usable_until)


# Seconds before expiry at which an access token is no longer handed out.
_EXPIRY_LEEWAY = 30.0


@runtime_checkable
class SessionStorage(Protocol):
    """Keeps one session between runs. Implementations must be safe against crashes:
    after ``save`` returns, a crash loses nothing; during ``save``, the previous session
    survives."""

    async def load(self) -> StoredSession | None:
        """The stored session, or None (none stored, or unreadable and moved aside)."""
        ...

    async def save(self, session: StoredSession) -> None:
        """Replace the stored session."""
        ...

    async def clear(self) -> None:
        """Forget the stored session."""
        ...


@runtime_checkable
class SharedSessionStorage(SessionStorage, Protocol):
    """A storage that several processes may share.

    ``lock()`` is held while refreshing, so only one process refreshes at a time;
    ``changes()`` yields once when the watch starts and again whenever another writer may
    have changed the stored session; the reader then loads it, in order with its own writes.
    """

    def lock(self) -> AbstractAsyncContextManager[None]: ...

    def changes(self) -> AsyncIterator[None]: ...


class MemorySessionStorage:
    """Keeps the session in this process only: it ends with the process."""

    def __init__(self) -> None:
        self._session: StoredSession | None = None
        self._lock = asyncio.Lock()

    async def load(self) -> StoredSession | None:
        return self._session

    async def save(self, session: StoredSession) -> None:
        self._session = session

    async def clear(self) -> None:
        self._session = None

    @contextlib.asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        async with self._lock:
            yield


# The stored form, shared by storages that write bytes.

SCHEMA_VERSION = 1


def encode_session(session: StoredSession | None) -> dict[str, Any]:
    """The JSON document for ``session`` (None: logged out)."""
    if session is None:
        return {"schema": SCHEMA_VERSION, "session": None}
    user, tokens = session.session.user, session.session.tokens
    return {
        "schema": SCHEMA_VERSION,
        "session": {
            "user": {
                "id": user.id,
                "anonymous_id": user.anonymous_id,
                "is_anonymous": user.is_anonymous,
                "email": user.email,
            },
            "tokens": {
                "access_token": tokens.access_token,
                "refresh_token": tokens.refresh_token,
                "expires_in": tokens.expires_in,
            },
            "obtained_at": session.obtained_at,
        },
    }


class UnreadableSessionError(ValueError):
    """The stored document is not a session this version understands."""


def decode_session(document: Any) -> StoredSession | None:
    """Parse a document written by ``encode_session``; raise ``UnreadableSessionError``.

    Wrong types and impossible times (not finite, negative, centuries away) are refused
    rather than coerced: a token kept "forever" or a start that fails every time is worse
    than starting logged out.
    """
    if not isinstance(document, dict) or not _is_schema(document.get("schema")):
        raise UnreadableSessionError("unknown schema version")
    stored = document.get("session")
    if stored is None:
        return None
    try:
        user, tokens = stored["user"], stored["tokens"]
        return StoredSession(
            BackendSession(
                MimiUser(
                    id=_text(user["id"]),
                    anonymous_id=_optional_text(user["anonymous_id"]),
                    is_anonymous=_flag(user["is_anonymous"]),
                    email=_optional_text(user["email"]),
                ),
                AuthTokens(
                    access_token=_text(tokens["access_token"]),
                    refresh_token=_optional_text(tokens["refresh_token"]),
                    expires_in=_lifetime(tokens["expires_in"]),
                ),
            ),
            obtained_at=_instant(stored["obtained_at"]),
        )
    except UnreadableSessionError:
        raise
    except (KeyError, TypeError, ValueError, OverflowError) as error:
        raise UnreadableSessionError("malformed session") from error


# Bounds no real session reaches: a token lifetime over a century, a time after the year 5000.
_LONGEST_LIFETIME = 100 * 365.25 * 24 * 3600
_LATEST_INSTANT = 95_617_584_000.0


def _is_schema(value: Any) -> bool:
    return type(value) is int and value == SCHEMA_VERSION


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected a boolean")
    return value


def _number(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError("expected a number")
    number = float(value)  # OverflowError for an int beyond float's range
    if not math.isfinite(number):
        raise UnreadableSessionError("a number that is not finite")
    return number


def _lifetime(value: Any) -> float | None:
    if value is None:
        return None
    lifetime = _number(value)
    if not 0 <= lifetime <= _LONGEST_LIFETIME:
        raise UnreadableSessionError("a token lifetime out of range")
    return lifetime


def _instant(value: Any) -> float:
    instant = _number(value)
    if not 0 <= instant <= _LATEST_INSTANT:
        raise UnreadableSessionError("a time out of range")
    return instant
