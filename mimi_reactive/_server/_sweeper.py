"""Retention: delete what can never work again, and spent refresh tokens past their window.

Revoked and idle-expired sessions go with all their tokens at the next sweep. A spent refresh
token of a live session stays for ``spent_token_retention`` (24 h by default): presenting it is
how reuse is detected, so deleting it sooner would turn a detectable theft into a mere
"unknown token". Optionally, anonymous users unseen for ``anonymous_retention_days`` go too.
A retired signing key goes once the JWKS stops publishing it (one access-token lifetime plus
``PUBLISH_MARGIN`` after its retirement): by then every token it signed has expired.

A sweep deletes in batches of ``SWEEP_BATCH`` rows, each its own short transaction, so the
requests that write (log-ins, renewals) run between batches instead of waiting for the whole
sweep, and SQLite can checkpoint its WAL between them.
"""

from __future__ import annotations

import asyncio

import structlog

from ._context import ServerSettings
from ._records import IdentityDatabase, SweepCounts, SweepRules
from ._tokens import unpublished_before

__all__ = ["SWEEP_BATCH", "run_sweeper", "sweep_once"]

SWEEP_BATCH = 1000
"""Rows one sweep transaction deletes at most (the tokens of a deleted session go with it).
A sweep of a few thousand sessions in one transaction grew SQLite's WAL to 21 MB (5x its usual
4 MB) and held the single writer, so every log-in waited behind it; a thousand rows is a
WAL of about the auto-checkpoint size and a few milliseconds of writer time. Any smaller and
a sweep of a million rows takes too many round trips."""


def sweep_rules(settings: ServerSettings) -> SweepRules:
    """The cut-offs a sweep now uses, from the server clock."""
    now = settings.clock()
    days = settings.anonymous_retention_days
    return SweepRules(
        now=now,
        idle_before=now - settings.session_idle_timeout,
        spent_before=now - settings.spent_token_retention,
        keys_retired_before=unpublished_before(now, settings.access_token_ttl),
        batch=SWEEP_BATCH,
        anonymous_unused_before=now - days * 86400.0 if days > 0 else None,
    )


async def sweep_once(
    database: IdentityDatabase,
    settings: ServerSettings,
    log: structlog.typing.FilteringBoundLogger,
) -> SweepCounts:
    """One sweep; logs what it deleted (counts only)."""
    counts = await database.sweep(sweep_rules(settings))
    log.info(
        "retention.swept",
        sessions=counts.sessions,
        refresh_tokens=counts.refresh_tokens,
        users=counts.users,
        signing_keys=counts.signing_keys,
    )
    return counts


async def run_sweeper(
    database: IdentityDatabase,
    settings: ServerSettings,
    log: structlog.typing.FilteringBoundLogger,
) -> None:
    """Sweep every ``sweep_interval`` seconds until cancelled; a failed sweep is logged."""
    while True:
        await asyncio.sleep(settings.sweep_interval)
        try:
            await sweep_once(database, settings, log)
        except Exception as error:
            log.error("retention.sweep_failed", error=type(error).__name__)
