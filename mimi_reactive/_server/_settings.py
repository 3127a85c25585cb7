"""The server's settings, and the values they are checked against or produce.

Only the standard library and attrs here: the command line builds its grammar from these
defaults without loading the server (aiohttp, JWT, limits), which ``--help`` would wait for.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

__all__ = ["PUBLISH_LEAD", "PUBLISH_MARGIN", "Limit", "ServerSettings"]

PUBLISH_LEAD = 60.0
"""Seconds a rotated-in key is published before it signs: a verifier that fetched the JWKS
just before the rotation may fetch again only ``jwks_refetch_interval`` (30 s) later, so the
key must be in the JWKS that long before its first token; twice that leaves room for clocks
that differ a little and for caches that keep the JWKS a little longer."""

PUBLISH_MARGIN = 300.0
"""Seconds a retired key stays published past one access-token lifetime after its retirement
(the instant the next key starts signing): room for workers that take the new key up late
(at most ``key_reload_interval`` after that instant, which must not exceed this) and for
clocks that differ a little."""


@attrs.frozen
class Limit:
    """At most ``count`` events per ``window`` (whole) seconds per key; ``count`` 0 turns it off."""

    name: str
    count: int
    window: int


@attrs.frozen
class ServerSettings:
    """How the reference server behaves; every limit's 0 turns it off."""

    access_token_ttl: float = 3600.0
    """Seconds an access token is valid."""
    session_idle_timeout: float = 30 * 24 * 3600.0
    """Seconds a session may go unused before its refresh token stops working."""
    refresh_reuse_interval: float = 10.0
    """Seconds a spent refresh token still gets a new pair (the retry after a lost answer)."""
    clock: Callable[[], float] = time.time
    """The server's wall clock (tests move it instead of sleeping)."""
    max_anonymous_sign_ups_per_hour: int = 100
    """Anonymous users one client IP may create per hour."""
    max_failed_log_ins_per_minute: int = 30
    """Wrong anonymous ids, passwords and client secrets one client IP may send per minute."""
    rate_limit_storage: str = "memory://"
    """Where the limits count: a ``limits`` storage URL (``redis://...`` to share them)."""
    trusted_proxies: frozenset[str] = frozenset()
    """Addresses of reverse proxies whose ``X-Forwarded-For`` names the client."""
    password_hash_workers: int = 1
    """Argon2 hashes run at once (each takes a core for about 50 ms)."""
    password_hash_queue: int = 8
    """Argon2 hashes that may wait for a worker; past that, 503 with Retry-After."""
    sweep_interval: float = 3600.0
    """Seconds between sweeps of dead sessions and old spent tokens (0: no sweeper)."""
    spent_token_retention: float = 24 * 3600.0
    """Seconds a spent refresh token is kept so its reuse is still detected."""
    anonymous_retention_days: float = 0
    """Delete anonymous users unseen for this many days (0: never)."""
    issuer: str | None = None
    """The ``iss`` of access tokens: the service's public URL (default: the listening URL)."""
    database_pool_size: int = 10
    """PostgreSQL connections one server process keeps at most (unused on SQLite)."""
    key_reload_interval: float = 60.0
    """Seconds between a process's reads of the signing keys: a key added by
    ``rotate-signing-key`` signs everywhere within ``PUBLISH_LEAD`` plus this long (at most
    ``PUBLISH_MARGIN``)."""

    def __attrs_post_init__(self) -> None:
        if self.spent_token_retention < self.refresh_reuse_interval:
            raise ValueError("spent_token_retention must be at least refresh_reuse_interval")
        if not 0 < self.key_reload_interval <= PUBLISH_MARGIN:
            raise ValueError(
                f"key_reload_interval must be more than 0 and at most {PUBLISH_MARGIN:g} seconds"
            )
        if self.database_pool_size < 1:
            raise ValueError(f"database_pool_size must be 1 or more, not {self.database_pool_size}")

    @property
    def sign_up_limit(self) -> Limit:
        return Limit("anonymous_sign_ups", self.max_anonymous_sign_ups_per_hour, 3600)

    @property
    def failure_limit(self) -> Limit:
        return Limit("failed_log_ins", self.max_failed_log_ins_per_minute, 60)
