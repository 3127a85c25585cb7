"""Where a session is kept between runs: the ``SessionStorage`` port and the in-memory store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

from ._exceptions import OtherOriginSessionError, SessionStorageError
from ._log import Log
from ._session import AuthTokens, Session
from ._user import MimiUser

__all__ = [
    "WRITE_END_SECONDS",
    "MemorySessionStorage",
    "SessionStorage",
    "SharedSessionStorage",
    "Writes",
    "decode_session",
    "encode_session",
    "storage_failed",
    "write_bound",
]


@runtime_checkable
class SessionStorage(Protocol):
    """Keeps one session between runs. Implementations must be safe against crashes:
    after ``save`` returns, a crash loses nothing; during ``save``, the previous session
    survives."""

    async def load(self) -> Session | None:
        """The stored session, or None (none stored, or unreadable and moved aside).

        An ``OSError`` if it cannot be read (the core keeps its session), and a
        ``StoredSessionLostError`` if the storage lost a session it held (a file removed under
        a watch): never a log-out, the core writes its session back.
        """
        ...

    async def save(self, session: Session) -> None:
        """Replace the stored session."""
        ...

    async def clear(self) -> None:
        """Forget the stored session."""
        ...


@runtime_checkable
class SharedSessionStorage(SessionStorage, Protocol):
    """A storage that several processes may share.

    ``lock()`` is held while renewing (a refresh, or for a call) until the renewed pair is
    saved, so only one process renews at a time and none the pair another spent, and while
    saving a sign-in or clearing for a log-out or a deletion, so no renewal saves over them,
    and while saving (or clearing) at close what a failed write left, so it is never written
    over a newer pair or a session another process stored after a failed log-out's clear;
    ``changes()`` yields once when the watch starts and again whenever another writer may
    have changed the stored session; the reader then loads it, in order with its own writes.
    A log-out is stored (``clear``) for the others to see: a session merely gone is a loss.
    """

    def lock(self) -> AbstractAsyncContextManager[None]:
        """A lock across every process sharing the storage, held while one renews and saves
        the renewed pair (or writes a sign-in or a log-out)."""
        ...

    def changes(self) -> AsyncIterator[None]:
        """Yield once when the watch starts, then whenever another writer may have changed
        the stored session."""
        ...


class MemorySessionStorage:
    """Keeps the session in this process only: it ends with the process."""

    def __init__(self) -> None:
        self._session: Session | None = None

    async def load(self) -> Session | None:
        return self._session

    async def save(self, session: Session) -> None:
        self._session = session

    async def clear(self) -> None:
        self._session = None


_log = Log("mimi_reactive.session")

# The stored form, shared by storages that write bytes.

SCHEMA_VERSION = 1


def encode_session(session: Session | None, origin: str | None = None) -> dict[str, Any]:
    """The JSON document for ``session`` (None: logged out), saying which service and client
    issued it (``origin``, a non-secret identity; None: not said)."""
    document: dict[str, Any] = {"schema": SCHEMA_VERSION}
    if origin is not None:
        document["origin"] = origin
    if session is None:
        document["session"] = None
        return document
    user, tokens = session.user, session.tokens
    document["session"] = {
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
    }
    return document


class UnreadableSessionError(ValueError):
    """The stored document is not a session this version understands."""


def decode_session(document: Any, origin: str | None = None) -> Session | None:
    """Parse a document written by ``encode_session``; raise ``UnreadableSessionError``, and
    ``OtherOriginSessionError`` for one another ``origin`` wrote (a document that names none,
    written before files named theirs, or an ``origin`` of None, is not checked).

    Wrong types and impossible times (not finite, negative, centuries away) are refused
    rather than coerced, by the values' own checks, which also keep ``encode_session`` from
    writing what this refuses: a token kept "forever" or a start that fails every time is
    worse than starting logged out.
    """
    if not isinstance(document, dict) or not _is_schema(document.get("schema")):
        raise UnreadableSessionError("unknown schema version")
    written_by = document.get("origin")
    if written_by is not None and not isinstance(written_by, str):
        raise UnreadableSessionError("malformed origin")
    if origin is not None and written_by is not None and written_by != origin:
        raise OtherOriginSessionError(
            "the stored session was issued by another service or client: left to its app"
        )
    stored = document.get("session")
    if stored is None:
        return None
    try:
        user, tokens = stored["user"], stored["tokens"]
        return Session(
            MimiUser(
                id=user["id"],
                anonymous_id=user["anonymous_id"],
                is_anonymous=user["is_anonymous"],
                email=user["email"],
            ),
            AuthTokens(
                access_token=tokens["access_token"],
                refresh_token=tokens["refresh_token"],
                expires_in=tokens["expires_in"],
            ),
            obtained_at=stored["obtained_at"],
        )
    except (KeyError, TypeError, ValueError) as error:
        raise UnreadableSessionError("malformed session") from error


def _is_schema(value: Any) -> bool:
    return type(value) is int and value == SCHEMA_VERSION


# How long close() waits at least, after the grace period, for a storage write the cancelled
# command runs: a write cannot be taken back, and one that ends lets the last state and the
# storage agree. A local write takes milliseconds; a few seconds cover a slow disk's flush
# even with a grace period of 0, and a longer grace period the caller accepted lends its length
# (so a write that began late in it gets as long). A write still running then hangs (a network
# file system, a keyring prompt, a remote store): it is abandoned, and the storage may hold
# either session.
WRITE_END_SECONDS = 5.0


class Writes:
    """The core's storage writes, so ``close()`` lets one that runs end before it cancels the
    command: a write cannot be taken back, and the state must get its event. Nothing is
    awaited between a write and the end of its effect (but a call ``committed`` stands for),
    so once the write ends its event is applied before ``close()`` goes on.

    The writer marks its write inline, with no wrapper to call (every sign-in and switch
    writes): ``running = True`` before it, and in a ``finally`` after it ``running = False``
    and, if ``waiter`` is set, ``wake()``.
    """

    def __init__(self) -> None:
        self.running = False
        self.waiter: asyncio.Future[None] | None = None  # made only when close() waits

    def wake(self) -> None:
        """Wake the ``close()`` waiting for the write that just ended."""
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def ended(self, grace_period: float) -> None:
        """Return once no write runs (the command may have gone on to another), or after
        ``max(grace_period, WRITE_END_SECONDS)``: one that hangs (a network file system, a
        keyring prompt) must not hang ``close()``; it is abandoned (logged)."""
        bound = write_bound(grace_period)
        try:
            async with asyncio.timeout(bound):
                while self.running:
                    if self.waiter is None:
                        self.waiter = asyncio.get_running_loop().create_future()
                    await asyncio.shield(self.waiter)
        except TimeoutError:
            _log.warning("session.close_abandoned_write", seconds=bound)


def write_bound(grace_period: float) -> float:
    """How long ``close()`` lets a storage write run once ``grace_period`` has passed."""
    return max(grace_period, WRITE_END_SECONDS)


def storage_failed(action: str, storage: object, error: OSError) -> SessionStorageError:
    """Log a storage failure and make the error the app is told: which storage and why, so
    the app's owner can fix the path or its permissions (the storage's repr names its place,
    never the session; the OS's reason, never the error's text, which a custom storage may
    fill with anything)."""
    reason = error.strerror or type(error).__name__
    if not isinstance(error, OtherOriginSessionError):  # expected: the storage notes it once
        _log.error(
            f"storage.{action}_failed",
            storage=repr(storage),
            error=type(error).__name__,
            reason=reason,
        )
    failure = SessionStorageError(f"{storage!r} could not {action} the session: {reason}")
    failure.__cause__ = error
    return failure
