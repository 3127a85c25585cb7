"""How the reference server makes and keeps secrets: it stores only their digests."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import TypeVar

import argon2

__all__ = ["HashingBusyError", "PasswordHasher", "digest", "new_secret", "same_secret"]

_T = TypeVar("_T")

# 32 random bytes: 256 bits, well over the 128 an anonymous id needs to be unguessable.
_SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh random credential (anonymous id or token), URL-safe."""
    return secrets.token_urlsafe(_SECRET_BYTES)


def digest(secret: str) -> str:
    """The stored, searchable form of a high-entropy secret.

    A plain SHA-256 is enough here: the secrets are 256 random bits, so there is nothing to
    guess, and lookups need a deterministic value. Passwords use ``PasswordHasher``.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(secret: str, stored_digest: str) -> bool:
    """Compare in constant time."""
    return hmac.compare_digest(digest(secret), stored_digest)


class HashingBusyError(Exception):
    """Every Argon2 worker is busy and the queue is full: answer 503, try again shortly."""


class PasswordHasher:
    """Argon2id password hashing on a fixed pool of threads, off the event loop.

    At most ``workers`` hashes run at once and ``queue`` more wait; past that a call raises
    ``HashingBusyError`` at once instead of waiting, so a flood of password guesses cannot
    take every core (or queue without end) while log-ins by anonymous id keep their speed.
    """

    def __init__(
        self, hasher: argon2.PasswordHasher | None = None, *, workers: int = 1, queue: int = 8
    ) -> None:
        if workers < 1 or queue < 0:
            raise ValueError("the password hashing pool needs at least one worker")
        self._hasher = hasher or argon2.PasswordHasher()
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, "mimi-argon2")
        self._capacity = workers + queue
        self._in_flight = 0

    def __repr__(self) -> str:
        return f"PasswordHasher(capacity={self._capacity}, in_flight={self._in_flight})"

    async def _run(self, work: Callable[[], _T]) -> _T:
        if self._in_flight >= self._capacity:
            raise HashingBusyError
        self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work)
        finally:
            self._in_flight -= 1

    async def hash(self, password: str) -> str:
        return await self._run(lambda: self._hasher.hash(password))

    async def verify(self, stored_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(stored_hash, password)
            except argon2.exceptions.VerificationError:
                return False
            except argon2.exceptions.InvalidHashError:
                return False

        return await self._run(check)

    def close(self) -> None:
        """Stop the pool's threads (running hashes finish first)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
