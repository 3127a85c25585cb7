"""``FileSessionStorage``: a session in one JSON file, safe against crashes, shareable
between processes."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import math
import os
import stat
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

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
from ._session import Session
from ._storage import (
    UnreadableSessionError,
    decode_session,
    encode_session,
)

__all__ = ["FileSessionStorage"]

_log = Log("mimi_reactive.storage")

# Seconds after which a leftover temporary file cannot be a save still in progress.
_STALE_AFTER = 60.0
# Files moved aside hold live credentials: only the newest few are kept.
_KEEP_MOVED_ASIDE = 3
# A session file is about a kilobyte; anything this large is not one.
_MAX_FILE_BYTES = 1 << 20
# Digits in the longest integer a session file holds (a time or a lifetime in seconds).
_MAX_INTEGER_DIGITS = 20
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
    until its pair is saved, a sign-in's save, a log-out's or a deletion's clear and a
    write-back hold an OS lock on ``path.lock`` (waiting at most ``lock_timeout`` seconds, then
    ``SessionLockTimeoutError``), which also excludes cores sharing this one storage object
    (on one loop or on several threads), and ``changes()`` notices other writers by watching the
    file (no server polling), within ``poll_interval`` seconds (0.01 or more).
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
        if self.path.is_dir():
            raise SessionFilePathError(
                f"{str(self.path)!r} is a directory; give the path of the session file in it"
            )
        # The nearest existing folder of the path must be one: under a file, creating the
        # folders (or listing them) fails with NotADirectoryError on every call.
        nearest = next((parent for parent in self.path.parents if parent.exists()), None)
        if nearest is not None and not nearest.is_dir():
            raise SessionFilePathError(
                f"{str(self.path)!r} lies under {str(nearest)!r}, which is not a directory"
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
        self._file_lock = filelock.FileLock(
            self.path.with_name(self.path.name + ".lock"), thread_local=False
        )
        self._holder_lock = threading.Lock()

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
        await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True, mode=0o700)
        await self._acquire()
        try:
            yield
        finally:
            try:
                self._file_lock.release()
            finally:
                self._holder_lock.release()

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
            return _signature(self.path.stat())
        except FileNotFoundError:
            return None

    def _read(self) -> Session | None:
        if not self._swept:  # once: the watcher loads on every change
            self._remove_stale_temporaries()
            self._swept = True
        for _ in range(_READ_ATTEMPTS):
            try:
                with self.path.open("rb") as file:
                    read = os.fstat(file.fileno())
                    data = file.read(_MAX_FILE_BYTES + 1)
            except FileNotFoundError:
                self._check_not_lost(errno.ENOENT, "the session file was removed")
                return None
            except (IsADirectoryError, NotADirectoryError):
                self._check_not_lost(errno.EISDIR, "the session file's path names no file now")
                raise
            try:
                if len(data) > _MAX_FILE_BYTES:
                    raise UnreadableSessionError("larger than a session file can be")
                session = decode_session(_parse(data), self.origin)
            except OtherOriginSessionError:
                # Expected while another app writes the file: noted once, not as a fault.
                if not self._other_origin_noted:
                    self._other_origin_noted = True
                    _log.warning("storage.other_origin_session")
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

    def _remove_stale_temporaries(self) -> None:
        """Delete what a crash mid-save left behind (it holds tokens). Fresh ones may be
        another process's save in progress, so only old ones go."""
        cutoff = time.time() - _STALE_AFTER
        prefix = f".{self.path.name}."
        for temporary in self._siblings():
            if temporary.name.startswith(prefix) and temporary.name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    if temporary.stat().st_mtime < cutoff:
                        temporary.unlink()

    def _siblings(self) -> list[Path]:
        try:
            return list(self.path.parent.iterdir())
        except FileNotFoundError:
            return []

    def _move_aside(self, read: os.stat_result, reason: str) -> bool:
        """Move the unreadable file aside, unless it is no longer the one read (False)."""
        return self._set_aside(read, reason, "unreadable")

    def _set_aside(self, read: os.stat_result, reason: str, kind: str) -> bool:
        """Move the file aside as ``<name>.<kind>-<ns>``, unless it is no longer the one
        read (False)."""
        try:
            current = self.path.stat()
        except FileNotFoundError:  # another process moved it first
            return True
        if _signature(current) != _signature(read):
            return False
        aside = self.path.with_name(f"{self.path.name}.{kind}-{time.time_ns()}")
        try:
            _make_private(self.path)  # it holds credentials, whoever wrote it
            os.replace(self.path, aside)  # a symlink is moved, not what it points to
        except FileNotFoundError:  # another process moved it first
            return True
        event = kind.replace("-", "_")
        _log.warning(f"storage.{event}_session_moved_aside", reason=reason, to=str(aside))
        self._prune_moved_aside(kind)
        return True

    def _move_other_origins_aside(self) -> None:
        """Before a write replaces a session another origin stored (another service's app,
        or this one before its base URL or client id changed, whose anonymous id may be its
        user's only credential), move it aside as an unreadable file is, not lose it."""
        for _ in range(_READ_ATTEMPTS):
            try:
                with self.path.open("rb") as file:
                    read = os.fstat(file.fileno())
                    data = file.read(_MAX_FILE_BYTES + 1)
                document = _parse(data)
                decode_session(document, self.origin)
            except OtherOriginSessionError:
                if document.get("session") is None:  # a log-out holds nothing to keep
                    return
                if self._set_aside(read, "another origin's session", "other-origin"):
                    return
                # Replaced since it was read: look at what replaced it.
            except (OSError, ValueError, RecursionError):  # no file, or unreadable: written over
                return
            else:
                return

    def _prune_moved_aside(self, kind: str) -> None:
        """Keep the newest few files moved aside, each 0600: they hold live credentials."""
        prefix = f"{self.path.name}.{kind}-"
        aside = sorted(
            (int(suffix), sibling)
            for sibling in self._siblings()
            if sibling.name.startswith(prefix)
            and (suffix := sibling.name.removeprefix(prefix)).isdigit()
        )
        for index, (_, sibling) in enumerate(reversed(aside)):
            with contextlib.suppress(FileNotFoundError):
                if index < _KEEP_MOVED_ASIDE:
                    _make_private(sibling)
                else:
                    sibling.unlink()

    def _write(self, document: dict[str, object]) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = directory / f".{self.path.name}.{uuid.uuid4().hex}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(json.dumps(document).encode())
                file.flush()
                os.fsync(file.fileno())
            if self.origin is not None:
                self._move_other_origins_aside()
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        self._holds_session = document["session"] is not None
        self._saves += 1
        # The rename is durable only once the directory entry is.
        directory_descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_descriptor)
        finally:
            os.close(directory_descriptor)


def _signature(status: os.stat_result) -> tuple[int, int, int]:
    """What changes whenever the file is replaced or rewritten."""
    return (status.st_ino, status.st_mtime_ns, status.st_size)


def _make_private(path: Path) -> None:
    """Make the regular file at ``path`` 0600. Never through a symlink: its target is
    someone else's file (a config the path was pointed at), and ``os.chmod`` would follow
    it (``follow_symlinks=False`` is unsupported on Linux). Opened without following and
    changed through the descriptor, so a symlink swapped in meanwhile is not followed
    either; a FIFO or a device is left alone too."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        if path.is_symlink():  # ELOOP on Linux and macOS, EMLINK on FreeBSD
            return
        raise
    try:
        if stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)


def _parse(data: bytes) -> Any:
    """JSON, refusing what no session file holds: NaN, infinities, huge integers."""
    return json.loads(
        data, parse_constant=_refuse_constant, parse_int=_short_int, parse_float=_finite_float
    )


def _refuse_constant(name: str) -> Any:
    raise UnreadableSessionError(f"{name} is not a number a session holds")


def _short_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INTEGER_DIGITS:
        raise UnreadableSessionError("an integer too long to be a session's")
    return int(text)


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise UnreadableSessionError("a number too large to be a session's")
    return number
