"""``FileSessionStorage``: a session in one JSON file, safe against crashes, shareable
between processes."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import filelock

from ._checks import check_seconds
from ._exceptions import (
    ConfigurationError,
    OtherOriginSessionError,
    SessionFilePathError,
    SessionLockTimeoutError,
    StoredSessionLostError,
)
from ._log import Log
from ._redaction import bounded_repr
from ._session import Session
from ._session_file import (
    NotARegularFileError,
    make_private,
    parse,
    read_bounded,
    remove_stale_temporaries,
    set_aside,
    signature,
    write_atomically,
)
from ._storage import UnreadableSessionError, decode_session, encode_session

__all__ = ["FileSessionStorage"]

_log = Log("mimi_reactive.storage")

# Reads of a file that another process keeps replacing while it is found unreadable.
_READ_ATTEMPTS = 3
# Seconds between attempts to take a lock another process holds: first, then at most.
_LOCK_RETRY_FIRST = 0.005
_LOCK_RETRY_MAX = 0.1
# The shortest watch period: each is a stat() on the event loop.
_MIN_POLL_INTERVAL = 0.01
_UNREADABLE = "the session file was unreadable"


class _SessionFileLostError(StoredSessionLostError):
    """The watched file lost the session this storage last read or wrote (removed, or
    unreadable and moved aside): a loss to report, not a log-out."""


class FileSessionStorage:
    """Keeps the session in ``path`` (created 0600, its folder 0700 if missing).

    The file holds the user (id, anonymous id, email) and the session's tokens in clear
    JSON with a schema version: it is a credential, keep it where only the user can read it.
    Every write goes to a temporary file that is fsynced and renamed over the old one, so
    a crash at any point leaves the previous session or the new one, never a torn file. A
    file that cannot be read (not JSON, too deep, NaN, wrong types, impossible times) or has
    an unknown schema is moved aside (``.unreadable-*``, 0600, the newest 3 kept; a symlink
    as a link, its target untouched) with a warning, and the core starts logged out.

    A log-out is written (``{"session": null}``), never a missing file. So while
    ``changes()`` watches it, a file that held a session as this storage last read or wrote
    it and is then removed, or found unreadable (moved aside all the same), is a loss:
    ``load`` raises an ``OSError`` saying which, and the core writes its session back.

    ``path`` may start with ``~``; a directory there, or a path under a file, is refused with
    ``SessionFilePathError``.

    Processes sharing the file share the session: a renewal (a refresh, or one a call needs)
    until its pair is saved, a sign-in's save, a log-out's or a deletion's clear, a write-back
    and the save at close of what a failed one left hold an OS lock on ``path.lock`` (waiting
    at most ``lock_timeout`` seconds, then ``SessionLockTimeoutError``), which also excludes
    cores sharing this one storage object (on one loop or on several threads), and
    ``changes()`` notices other writers by watching the file (no server polling), within
    ``poll_interval`` seconds (0.01 or more).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        poll_interval: float = 0.2,
        lock_timeout: float = 30.0,
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"path must be a str or a path, not {type(path).__name__}")
        check_seconds("poll_interval", poll_interval)
        if poll_interval < _MIN_POLL_INTERVAL:  # each poll is a stat() on the event loop
            raise ConfigurationError(f"poll_interval must be {_MIN_POLL_INTERVAL:g} s or more")
        check_seconds("lock_timeout", lock_timeout)
        self.path = Path(path).expanduser()
        shown = bounded_repr(str(self.path))
        try:
            if self.path.is_dir():
                raise SessionFilePathError(
                    f"{shown} is a directory; give the path of the session file in it"
                )
            # The nearest existing folder of the path must be one: under a file, creating the
            # folders (or listing them) fails with NotADirectoryError on every call.
            nearest = next((parent for parent in self.path.parents if parent.exists()), None)
        except OSError as error:
            if error.errno != errno.ENAMETOOLONG:
                raise
            # Not chained: the OS error quotes the whole path again.
            raise SessionFilePathError(f"{shown} is longer than the OS allows") from None
        if nearest is not None and not nearest.is_dir():
            raise SessionFilePathError(
                f"{shown} lies under {bounded_repr(str(nearest))}, which is not a directory"
            )
        self.poll_interval = poll_interval
        self.lock_timeout = lock_timeout
        self.origin: str | None = None
        """The service and client whose sessions this file holds (a non-secret identity the
        core sets at start from its backend), written with each save; a file naming another
        makes ``load`` raise ``OtherOriginSessionError`` (logged once), and a write over its
        session moves that aside first (``.other-origin-*``, as an unreadable file is).
        None: not written, not checked."""
        self._swept = False
        self._other_origin_noted = False  # logged once each time the file passes to another
        # Whether the last document read or written held a session, and how many changes()
        # watches run: both, and a missing or unreadable file is a loss (see the class).
        self._holds_session = False
        self._watches = 0
        self._saves = 0  # this storage's writes, for the watch
        # Not thread-local: the lock belongs to this storage, whichever thread uses it. It
        # is also re-entrant per object, so it cannot exclude two holders of this one
        # storage (two cores, or cores on two threads, sharing it): ``_holder_lock`` does. A
        # threading lock, tried without blocking, works whichever loop or thread holds it.
        # 0600 as the session file is: a user who could open it could flock it, holding
        # every renewal up (a folder others may enter: a home folder, say).
        self._file_lock = filelock.FileLock(
            self.path.with_name(self.path.name + ".lock"), mode=0o600, thread_local=False
        )
        self._holder_lock = threading.Lock()
        self._lock_private = False  # an existing lock file made 0600 (``_prepare_lock``)

    def __repr__(self) -> str:
        return f"FileSessionStorage({str(self.path)!r})"

    async def load(self) -> Session | None:
        return await asyncio.to_thread(self._read)

    async def save(self, session: Session) -> None:
        await asyncio.to_thread(self._write, encode_session(session, self.origin))

    async def clear(self) -> None:
        # Written, not deleted, so other processes watching the file see the log-out.
        await asyncio.to_thread(self._write, encode_session(None, self.origin))

    @contextlib.asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        """Hold the OS lock shared by every process using this file, and by every holder
        of this storage in this process."""
        await asyncio.to_thread(self._prepare_lock)
        await self._acquire()
        try:
            yield
        finally:
            try:
                self._file_lock.release()
            finally:
                self._holder_lock.release()

    def _prepare_lock(self) -> None:
        """Make the lock's folder (0700) and, the first time, the lock file 0600 if it is
        there already: filelock sets the mode only on the files it creates, and one an earlier
        release left 0644 could be opened and locked by another user. One another user owns
        is not ours to change."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self._lock_private:
            with contextlib.suppress(FileNotFoundError, PermissionError):
                make_private(Path(self._file_lock.lock_file))
            self._lock_private = True

    async def _acquire(self) -> None:
        """Take the lock, trying without blocking and sleeping on the loop in between.

        Each try takes this storage's own lock, then opens and ``flock``s the file, neither
        blocking, on the loop thread; so a task cancelled while it waits holds nothing: no
        thread is left to take the lock later.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lock_timeout
        pause = _LOCK_RETRY_FIRST
        while True:
            holder = "another holder of this storage"
            if self._holder_lock.acquire(blocking=False):
                try:
                    self._file_lock.acquire(blocking=False)
                    return
                except filelock.Timeout:
                    holder = "another process"
                    self._holder_lock.release()
                except BaseException:
                    self._holder_lock.release()
                    raise
            left = deadline - loop.time()
            if left <= 0:
                raise SessionLockTimeoutError(
                    f"{holder} held the lock {self._file_lock.lock_file!r} "
                    f"for over {self.lock_timeout:g} s"
                )
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, _LOCK_RETRY_MAX)

    async def changes(self) -> AsyncGenerator[None, None]:
        """Yield once now, then each time the file changes; runs until cancelled.

        The first yield closes the gap between the caller's ``load()`` and the watch: a
        write made in between is read then, and every later one changes the signature. A
        save of ours counts too, so one removed before the next poll is not missed.
        """
        self._watches += 1
        try:
            seen = (self._signature(), self._saves)
            yield
            while True:
                await asyncio.sleep(self.poll_interval)
                now = (self._signature(), self._saves)
                if now != seen:
                    seen = now
                    yield
        finally:
            self._watches -= 1

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            return signature(self.path.stat())
        except FileNotFoundError:
            return None

    def _read(self) -> Session | None:
        if not self._swept:  # once: the watcher loads on every change
            remove_stale_temporaries(self.path)
            self._swept = True
        for _ in range(_READ_ATTEMPTS):
            try:
                read, data = read_bounded(self.path)
            except FileNotFoundError:
                self._check_not_lost(errno.ENOENT, "the session file was removed")
                return None
            except (IsADirectoryError, NotADirectoryError, NotARegularFileError):
                self._check_not_lost(errno.EISDIR, "the session file's path names no file now")
                raise
            try:
                document = parse(data)
                session = decode_session(document, self.origin)
            except OtherOriginSessionError:
                # Expected while another app writes the file: noted once, not as a fault.
                # Which file and which two origins (never secrets) tell a developer why the
                # app started logged out: a base URL spelt another way, a changed client id.
                if not self._other_origin_noted:
                    self._other_origin_noted = True
                    _log.warning(
                        "storage.other_origin_session",
                        path=str(self.path),
                        # Quoted (an origin holds a space), bounded (the file may hold anything).
                        stored=bounded_repr(str(document.get("origin"))),
                        expected=bounded_repr(str(self.origin)),
                    )
                raise
            except (ValueError, RecursionError) as error:  # JSON and Unicode errors included
                # Our own reasons are safe to log; others might quote the file: name them only.
                ours = type(error) is UnreadableSessionError
                reason = str(error) if ours else type(error).__name__
                if self._move_aside(read, reason):
                    self._check_not_lost(errno.EIO, f"{_UNREADABLE} and was moved aside")
                    return None
                # Another process replaced the file since it was read: read its save.
            else:
                self._holds_session = session is not None
                self._other_origin_noted = False
                return session
        # Rewritten unreadable under us each time; the watcher reads it again.
        self._check_not_lost(errno.EIO, _UNREADABLE)
        return None

    def _check_not_lost(self, code: int, reason: str) -> None:
        """A missing or unreadable file means nothing stored, unless this storage watches
        it and last saw it hold a session: then it lost one (``_SessionFileLostError``)."""
        if self._holds_session and self._watches:
            raise _SessionFileLostError(code, reason)
        self._holds_session = False  # None is what it now holds as far as the core knows

    def _move_aside(self, read: os.stat_result, reason: str) -> bool:
        """Move the unreadable file aside, unless it is no longer the one read (False)."""
        return set_aside(self.path, read, reason, "unreadable")

    def _move_other_origins_aside(self) -> None:
        """Before a write replaces a session another origin stored (another service's app,
        or this one before its base URL or client id changed, whose anonymous id may be its
        user's only credential), move it aside as an unreadable file is, not lose it."""
        if self.origin is None:  # not checked: whatever is there is written over
            return
        for _ in range(_READ_ATTEMPTS):
            try:
                read, data = read_bounded(self.path)
                document = parse(data)
                decode_session(document, self.origin)
            except OtherOriginSessionError:
                if document.get("session") is None:  # a log-out holds nothing to keep
                    return
                if set_aside(self.path, read, "another origin's session", "other-origin"):
                    return
                # Replaced since it was read: look at what replaced it.
            except (OSError, ValueError, RecursionError):  # no file, or unreadable: written over
                return
            else:
                return

    def _write(self, document: dict[str, object]) -> None:
        write_atomically(self.path, json.dumps(document).encode(), self._move_other_origins_aside)
        self._holds_session = document["session"] is not None
        self._saves += 1
