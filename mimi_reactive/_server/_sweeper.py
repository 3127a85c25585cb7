"""Retention: delete what can never work again, and spent refresh tokens past their window.

Revoked and idle-expired sessions go with all their tokens at the next sweep. A spent refresh
token of a live session stays for ``spent_token_retention`` (24 h by default): presenting it is
how reuse is detected, so deleting it sooner would turn a detectable theft into a mere
"unknown token". Optionally, anonymous users unseen for ``anonymous_retention_days`` go too.
"""

from __future__ import annotations

import asyncio

import structlog

from ._context import ServerSettings
from ._records import IdentityDatabase, SweepCounts, SweepRules

__all__ = ["run_sweeper", "sweep_once"]


def sweep_rules(settings: ServerSettings) -> SweepRules:
    """The cut-offs a sweep now uses, from the server clock."""
    now = settings.clock()
    days = settings.anonymous_retention_days
    return SweepRules(
        now=now,
        idle_before=now - settings.session_idle_timeout,
        spent_before=now - settings.spent_token_retention,
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
