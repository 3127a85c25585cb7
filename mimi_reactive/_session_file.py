"""The session file on disk: read bounded, parsed strictly, written atomically, and moved
aside (0600, the newest few kept) when it is not to be read or written over."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._log import Log
from ._storage import UnreadableSessionError

__all__ = [
    "NotARegularFileError",
    "make_private",
    "parse",
    "read_bounded",
    "remove_stale_temporaries",
    "set_aside",
    "signature",
    "write_atomically",
]

_log = Log("mimi_reactive.storage")

# Seconds after which a leftover temporary file cannot be a save still in progress.
_STALE_AFTER = 60.0
# Files moved aside hold live credentials: only the newest few are kept.
_KEEP_MOVED_ASIDE = 3
# A session file is about a kilobyte; anything this large is not one.
_MAX_FILE_BYTES = 1 << 20
# Digits in the longest integer a session file holds (a time or a lifetime in seconds).
_MAX_INTEGER_DIGITS = 20


class NotARegularFileError(OSError):
    """The session file's path names a FIFO, a socket or a device, which is not read."""


def read_bounded(path: Path) -> tuple[os.stat_result, bytes]:
    """The file's status and bytes, read through one descriptor (so they agree), at most
    one byte more than a session file can hold. Opened without blocking, and read only if
    it is a regular file: a FIFO's read would wait for a writer, as long as none comes."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        status = os.fstat(descriptor)
        if stat.S_ISDIR(status.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(status.st_mode):
            raise NotARegularFileError(errno.EINVAL, "not a regular file", str(path))
        with open(descriptor, "rb", closefd=False) as file:
            return status, file.read(_MAX_FILE_BYTES + 1)
    finally:
        os.close(descriptor)


def parse(data: bytes) -> Any:
    """JSON, refusing what no session file holds: over a megabyte, NaN, infinities, huge
    integers (``UnreadableSessionError``; JSON's and Unicode's own errors are ValueErrors)."""
    if len(data) > _MAX_FILE_BYTES:
        raise UnreadableSessionError("larger than a session file can be")
    return json.loads(
        data, parse_constant=_refuse_constant, parse_int=_short_int, parse_float=_finite_float
    )


def signature(status: os.stat_result) -> tuple[int, int, int]:
    """What changes whenever the file is replaced or rewritten."""
    return (status.st_ino, status.st_mtime_ns, status.st_size)


def write_atomically(path: Path, data: bytes, before_replace: Callable[[], None]) -> None:
    """Write ``data`` to a 0600 temporary file beside ``path``, fsync it, call
    ``before_replace``, rename it over ``path`` and fsync the folder: a crash at any point
    leaves the old file or the new one, never a torn one."""
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = directory / f".{path.name}.{uuid.uuid4().hex}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        before_replace()
        os.replace(temporary, path)
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


def set_aside(path: Path, read: os.stat_result, reason: str, kind: str) -> bool:
    """Move the file aside as ``<name>.<kind>-<ns>`` (logged with ``reason``), unless it is
    no longer the one read (False)."""
    try:
        current = path.stat()
    except FileNotFoundError:  # another process moved it first
        return True
    if signature(current) != signature(read):
        return False
    aside = path.with_name(f"{path.name}.{kind}-{time.time_ns()}")
    try:
        make_private(path)  # it holds credentials, whoever wrote it
        os.replace(path, aside)  # a symlink is moved, not what it points to
    except FileNotFoundError:  # another process moved it first
        return True
    event = kind.replace("-", "_")
    _log.warning(f"storage.{event}_session_moved_aside", reason=reason, to=str(aside))
    _prune_moved_aside(path, kind)
    return True


def remove_stale_temporaries(path: Path) -> None:
    """Delete what a crash mid-save left behind (it holds tokens). Fresh ones may be
    another process's save in progress, so only old ones go."""
    cutoff = time.time() - _STALE_AFTER
    prefix = f".{path.name}."
    for temporary in _siblings(path):
        if temporary.name.startswith(prefix) and temporary.name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                if temporary.stat().st_mtime < cutoff:
                    temporary.unlink()


def make_private(path: Path) -> None:
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


def _prune_moved_aside(path: Path, kind: str) -> None:
    """Keep the newest few files moved aside, each 0600: they hold live credentials."""
    prefix = f"{path.name}.{kind}-"
    aside = sorted(
        (int(suffix), sibling)
        for sibling in _siblings(path)
        if sibling.name.startswith(prefix)
        and (suffix := sibling.name.removeprefix(prefix)).isdigit()
    )
    for index, (_, sibling) in enumerate(reversed(aside)):
        with contextlib.suppress(FileNotFoundError):
            if index < _KEEP_MOVED_ASIDE:
                make_private(sibling)
            else:
                sibling.unlink()


def _siblings(path: Path) -> list[Path]:
    try:
        return list(path.parent.iterdir())
    except FileNotFoundError:
        return []


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
