"""A process that saves numbered sessions as fast as it can, printing each number once saved.

Run as ``python -m tests.session_writer PATH FIRST``, or as ``python -m tests.session_writer
serve`` to fork one such writer per ``PATH FIRST`` line read on stdin (see ``serve``). The
crash test kills the writers with SIGKILL. ``python -m tests.session_writer hold PATH`` renews
the stored session as another process sharing the file does (see ``hold``).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid

from mimi_reactive import AuthTokens, FileSessionStorage, MimiUser, Session


def numbered(number: int) -> Session:
    """A session whose user id carries ``number``."""
    user = MimiUser(id=f"user-{number}", anonymous_id=f"anonymous-id-{number:012d}")
    tokens = AuthTokens(f"access-{number:032d}", f"refresh-{number:032d}", 3600.0)
    return Session(user, tokens, obtained_at=float(number))


async def main(path: str, first: int) -> None:
    """Save sessions first+1, first+2, ... to ``path``, printing each number once saved."""
    storage = FileSessionStorage(path)
    number = first
    while True:
        number += 1
        await storage.save(numbered(number))
        say(str(number))


async def hold(path: str) -> int:
    """Renew the stored session as a process sharing ``path`` does, with the server's call
    left out: under the file's lock, load it, say ``held`` and wait for a line on stdin; then
    save a renewed pair of its user (new tokens, obtained now), say ``saved`` and let the lock
    go. If the file changed while the lock was held, say ``written under the lock``: 1."""
    storage = FileSessionStorage(path)
    async with storage.lock():
        loaded = await storage.load()
        say("held")
        await asyncio.to_thread(sys.stdin.readline)
        if loaded is None or await storage.load() != loaded:
            say("written under the lock")
            return 1
        tokens = AuthTokens(f"access-{uuid.uuid4().hex}", f"renewed-{uuid.uuid4().hex}", 3600.0)
        await storage.save(Session(loaded.user, tokens, obtained_at=time.time()))
        say("saved")
    return 0


def say(line: str) -> None:
    """Write ``line`` in one write(2), so a kill can never leave half of it (buffering and
    PYTHONUNBUFFERED, which splits a print into two writes, do not matter)."""
    os.write(sys.stdout.fileno(), f"{line}\n".encode())


def serve() -> None:
    """For each ``PATH FIRST`` line on stdin, fork a writer, print ``writer PID``, and once
    it ends (killed), ``ended STATUS``; the writer prints its numbers in between.

    A fork of this process, which has already imported everything, starts a writer in
    milliseconds instead of the ~100 ms of a new interpreter: the crash test's 200 kills
    then cost seconds. This process runs no thread and no event loop, so forking is safe;
    each writer is still its own process, killed mid-save like any other.
    """
    for line in sys.stdin:
        path, first = line.rstrip("\n").rsplit(" ", 1)
        pid = os.fork()
        if pid == 0:
            try:
                asyncio.run(main(path, int(first)))
            finally:
                os._exit(1)  # never return into the parent's loop
        say(f"writer {pid}")
        _, status = os.waitpid(pid, 0)
        say(f"ended {status}")


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve()
    elif sys.argv[1:2] == ["hold"]:
        sys.exit(asyncio.run(hold(sys.argv[2])))
    else:
        asyncio.run(main(sys.argv[1], int(sys.argv[2])))
