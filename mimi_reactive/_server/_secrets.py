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

from ._config import MAX_CLIENT_SECRETS

__all__ = [
    "BUSY_DELAY",
    "HashingBusyError",
    "PasswordHasher",
    "digest",
    "matches_one_of",
    "new_secret",
]

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


# What an unused slot is compared against: as long as a digest, and no SHA-256 hex digest.
_NO_DIGEST = "-" * hashlib.sha256().digest_size * 2


def matches_one_of(secret: str, stored_digests: tuple[str, ...]) -> bool:
    """Whether ``secret``'s digest is one of ``stored_digests`` (at most
    ``MAX_CLIENT_SECRETS``; none for an unknown client), in the same time whichever matched or
    none: each of ``MAX_CLIENT_SECRETS`` slots is compared in constant time, unused ones against
    a value no digest equals, and no comparison is skipped once one matched."""
    given = digest(secret)
    slots = (*stored_digests, *(_NO_DIGEST,) * (MAX_CLIENT_SECRETS - len(stored_digests)))
    matched = False
    for stored in slots:
        matched |= hmac.compare_digest(given, stored)  # |, not or: no early exit
    return matched


class HashingBusyError(Exception):
    """Every Argon2 worker is busy and the queue is full: answer 503, try again shortly."""


# Argon2id as RFC 9106's second recommended option (t=3, 64 MiB) but in one lane: libargon2
# runs a thread per lane, so with its default of four lanes one pool worker took every core
# of a small machine and starved the event loop; with one lane a worker is one core.
_ARGON2 = argon2.PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=1)
# A refusal is held back this many seconds (see PasswordHasher), which is also the
# Retry-After it carries; at most _MAX_HELD are held at once, past that they go at once.
BUSY_DELAY = 1
_MAX_HELD = 1024


class PasswordHasher:
    """Argon2id password hashing on a fixed pool of threads, off the event loop.

    At most ``workers`` hashes run at once and ``queue`` more wait; past that a call raises
    ``HashingBusyError``, so a flood of password guesses cannot take more than ``workers``
    cores (or queue without end) while log-ins by anonymous id keep their speed. The refusal
    comes after ``BUSY_DELAY`` seconds, not at once: a flood that retries the moment it is
    answered would otherwise turn into a flood of cheap requests that crowds the event loop;
    held back, a client with N connections gets at most N refusals per ``BUSY_DELAY``.
    """

    def __init__(
        self,
        hasher: argon2.PasswordHasher | None = None,
        *,
        workers: int = 1,
        queue: int = 8,
    ) -> None:
        if workers < 1 or queue < 0:
            raise ValueError("the password hashing pool needs at least one worker")
        self._hasher = hasher or _ARGON2
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, "mimi-argon2")
        self._capacity = workers + queue
        self._in_flight = 0
        self._held = 0

    def __repr__(self) -> str:
        return f"PasswordHasher(capacity={self._capacity}, in_flight={self._in_flight})"

    async def _run(self, work: Callable[[], _T]) -> _T:
        if self._in_flight >= self._capacity:
            if self._held < _MAX_HELD:
                self._held += 1
                try:
                    await asyncio.sleep(BUSY_DELAY)
                finally:
                    self._held -= 1
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
