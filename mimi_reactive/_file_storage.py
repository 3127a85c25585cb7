"""``FileSessionStorage``: a session in one JSON file, safe against crashes, shareable
between processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import filelock

from ._log import Log
from ._session import Session
from ._storage import UnreadableSessionError, decode_session, encode_session

__all__ = ["FileSessionStorage"]

_log = Log("mimi_reactive.storage")

# Seconds after which a leftover temporary file cannot be a save still in progress.
_STALE_AFTER = 60.0


class FileSessionStorage:
    """Keeps the session in ``path`` (created 0600, its folder 0700 if missing).

    The file holds the user (id, anonymous id, email) and the session's tokens in clear
    JSON with a schema version: it is a credential, keep it where only the user can read it.
    Every write goes to a temporary file that is fsynced and renamed over the old one, so
    a crash at any point leaves the previous session or the new one, never a torn file. A
    file that cannot be read, or has an unknown schema, is moved aside (``.unreadable-*``)
    with a warning, and the core starts logged out.

    Processes sharing the file share the session: refreshes take an OS lock on
    ``path.lock``, and ``changes()`` notices other writers by watching the file (no server
    polling), within ``poll_interval`` seconds.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        poll_interval: float = 0.2,
    ) -> None:
        self.path = Path(path)
        self.poll_interval = poll_interval
        self._swept = False
        # Not thread-local: it is taken in a worker thread and released on the loop thread.
        self._file_lock = filelock.FileLock(
            self.path.with_name(self.path.name + ".lock"), thread_local=False
        )

    def __repr__(self) -> str:
        return f"FileSessionStorage({str(self.path)!r})"

    async def load(self) -> Session | None:
        return await asyncio.to_thread(self._read)

    async def save(self, session: Session) -> None:
        await asyncio.to_thread(self._write, encode_session(session))

    async def clear(self) -> None:
        # Written, not deleted, so other processes watching the file see the log-out.
        await asyncio.to_thread(self._write, encode_session(None))

    @contextlib.asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        """Hold the OS lock shared by every process using this file."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        await asyncio.to_thread(self._file_lock.acquire)
        try:
            yield
        finally:
            self._file_lock.release()

    async def changes(self) -> AsyncGenerator[None, None]:
        """Yield once now, then each time the file changes; runs until cancelled.

        The first yield closes the gap between the caller's ``load()`` and the watch: a
        write made in between is read then, and every later one changes the signature.
        """
        seen = self._signature()
        yield
        while True:
            await asyncio.sleep(self.poll_interval)
            signature = self._signature()
            if signature != seen:
                seen = signature
                yield

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _read(self) -> Session | None:
        if not self._swept:  # once: the watcher loads on every change
            self._remove_stale_temporaries()
            self._swept = True
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return decode_session(json.loads(data))
        except (UnicodeDecodeError, json.JSONDecodeError, UnreadableSessionError) as error:
            self._move_aside(type(error).__name__)
            return None

    def _remove_stale_temporaries(self) -> None:
        """Delete what a crash mid-save left behind (it holds tokens). Fresh ones may be
        another process's save in progress, so only old ones go."""
        cutoff = time.time() - _STALE_AFTER
        for temporary in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                if temporary.stat().st_mtime < cutoff:
                    temporary.unlink()

    def _move_aside(self, reason: str) -> None:
        aside = self.path.with_name(f"{self.path.name}.unreadable-{time.time_ns()}")
        with contextlib.suppress(FileNotFoundError):  # another process moved it first
            os.replace(self.path, aside)
            _log.warning("storage.unreadable_session_moved_aside", reason=reason, to=str(aside))

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
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        # The rename is durable only once the directory entry is.
        directory_descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_descriptor)
        finally:
            os.close(directory_descriptor)
