"""How the reference server makes and keeps secrets: it stores only their digests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets

import argon2

__all__ = ["PasswordHasher", "digest", "new_secret", "same_secret"]

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


class PasswordHasher:
    """Argon2id password hashing, run off the event loop (it is slow on purpose)."""

    def __init__(self, hasher: argon2.PasswordHasher | None = None) -> None:
        self._hasher = hasher or argon2.PasswordHasher()

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(stored_hash, password)
            except argon2.exceptions.VerificationError:
                return False
            except argon2.exceptions.InvalidHashError:
                return False

        return await asyncio.to_thread(check)
