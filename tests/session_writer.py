"""A process that saves numbered sessions as fast as it can, printing each number once saved.

Run as ``python -m tests.session_writer PATH FIRST``; the crash test kills it with SIGKILL.
"""

from __future__ import annotations

import asyncio
import sys

from mimi_reactive import AuthTokens, FileSessionStorage, MimiUser, Session


def numbered(number: int) -> Session:
    """A session whose user id carries ``number``."""
    user = MimiUser(id=f"user-{number}", anonymous_id=f"anonymous-id-{number:012d}")
    tokens = AuthTokens(f"access-{number:032d}", f"refresh-{number:032d}", 3600.0)
    return Session(user, tokens, obtained_at=float(number))


async def main(path: str, first: int) -> None:
    storage = FileSessionStorage(path)
    number = first
    while True:
        number += 1
        await storage.save(numbered(number))
        print(number, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
