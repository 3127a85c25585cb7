"""Retention: delete what can never work again, and spent refresh tokens past their window.

Idle-expired sessions go with all their tokens at the next sweep. A spent refresh token stays
for ``spent_token_retention`` (24 h by default): presenting it is how reuse is detected, so
deleting it sooner would turn a detectable theft into a mere "unknown token". A revoked session
stays as long after its revocation, so that its tokens keep saying it was ended on purpose
(a log-out, a reuse) rather than ``unknown``, which a client answers by logging back in by id.
Optionally, anonymous users unseen for ``anonymous_retention_days`` go too.
A retired signing key goes once the JWKS stops publishing it (one access-token lifetime plus
``PUBLISH_MARGIN`` after its retirement): by then every token it signed has expired.

A sweep deletes in batches of ``SWEEP_BATCH`` rows, each its own short transaction, so the
requests that write (log-ins, renewals) run between batches instead of waiting for the whole
sweep, and SQLite can checkpoint its WAL between them.
"""

from __future__ import annotations

import asyncio
import functools

import structlog

from ._context import ServerSettings
from ._database import IdentityDatabase, in_batches
from ._outages import is_outage
from ._records import Expired, SweepCounts, SweepRules
from ._tokens import unpublished_before

__all__ = ["SWEEP_BATCH", "run_sweeper", "sweep", "sweep_once", "sweep_rules"]

SWEEP_BATCH = 250
"""Rows one sweep transaction deletes at most (a session's tokens go with it). A sweep in one
transaction held SQLite's single writer while every log-in waited, and took the WAL to 5x its
auto-checkpoint size (1,000 pages, 4 MB). A deleted session dirties a page in each of about
five indexes keyed at random, so 250 of them keep a batch's WAL near that size; in the disk
benchmark batches of 1,000 still took the WAL to 2.5x, 250 to 1.9x. A sweep of a million rows
is then 4,000 short transactions, which PostgreSQL and SQLite's group commit take easily."""


def sweep_rules(settings: ServerSettings, *, delete_retired_keys: bool = True) -> SweepRules:
    """The cut-offs a sweep now uses, from the server clock; retired signing keys are kept
    unless ``delete_retired_keys`` (``settings.access_token_ttl`` is the servers' own)."""
    now = settings.clock()
    days = settings.anonymous_retention_days
    return SweepRules(
        idle_before=now - settings.session_idle_timeout,
        spent_before=now - settings.spent_token_retention,
        keys_retired_before=(
            unpublished_before(now, settings.access_token_ttl) if delete_retired_keys else None
        ),
        batch=SWEEP_BATCH,
        anonymous_unused_before=now - days * 86400.0 if days > 0 else None,
    )


async def sweep(database: IdentityDatabase, rules: SweepRules) -> SweepCounts:
    """Delete what can never work again, and spent tokens past their retention: each rule of
    ``Expired`` in turn, in batches of ``rules.batch`` rows until a batch deletes fewer, then
    let the database compact. The counts are of each rule's own rows (see ``Expired``)."""
    cut_offs = {
        Expired.ANONYMOUS_USERS: rules.anonymous_unused_before,
        Expired.REVOKED_SESSIONS: rules.spent_before,
        Expired.IDLE_SESSIONS: rules.idle_before,
        Expired.SPENT_TOKENS: rules.spent_before,
        Expired.RETIRED_KEYS: rules.keys_retired_before,
    }
    deleted = dict.fromkeys(Expired, 0)
    for rule in Expired:
        before = cut_offs[rule]
        if before is None:
            continue
        deleted[rule] = await in_batches(
            functools.partial(database.delete_batch, rule, before), rules.batch
        )
    await database.compact()
    return SweepCounts(
        sessions=deleted[Expired.REVOKED_SESSIONS] + deleted[Expired.IDLE_SESSIONS],
        refresh_tokens=deleted[Expired.SPENT_TOKENS],
        users=deleted[Expired.ANONYMOUS_USERS],
        signing_keys=deleted[Expired.RETIRED_KEYS],
    )


async def sweep_once(
    database: IdentityDatabase, rules: SweepRules, log: structlog.typing.FilteringBoundLogger
) -> SweepCounts:
    """One sweep by ``rules`` (from ``sweep_rules``); logs what it deleted (counts only)."""
    counts = await sweep(database, rules)
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
    """Sweep every ``sweep_interval`` seconds until cancelled; a failed sweep is logged: at
    warning while the database is out (the next sweep does the work), at error for a bug."""
    while True:
        await asyncio.sleep(settings.sweep_interval)
        try:
            await sweep_once(database, sweep_rules(settings), log)
        except Exception as error:
            report = log.warning if is_outage(error) else log.error
            report("retention.sweep_failed", error=type(error).__name__)
