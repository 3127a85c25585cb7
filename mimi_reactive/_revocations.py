"""Revocations: telling the service a session ended, in the background so a log-out never
waits on the network, retrying network trouble until it succeeds, is refused or the core
closes (each gets a grace period then)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ._backend import AuthBackend
from ._config import RetryPolicy
from ._exceptions import MimiCoreError
from ._log import Log
from ._renewal import CallFailed, Renewal
from ._retry import retrying, worth_retrying
from ._session import Session

__all__ = ["Revocations"]

_log = Log("mimi_reactive.session")


class Revocations:
    """The revocations a core has running; ``renew`` renews a session for a call (one
    process at a time across a shared storage)."""

    def __init__(
        self,
        backend: AuthBackend,
        renewal: Renewal,
        renew: Callable[[Session], Awaitable[Session]],
        retry: RetryPolicy,
    ) -> None:
        self._backend = backend
        self._renewal = renewal
        self._renew = renew
        self._retry = retry
        self._running: set[asyncio.Task[None]] = set()

    async def everywhere_now(self, session: Session) -> CallFailed | None:
        """End every session of ``session``'s user, now (a live access token needed: renewed
        first if due, or once if refused); what failed, or None."""
        called = await self._renewal.call_live(session, self._revoke_everywhere, self._renew)
        return called if isinstance(called, CallFailed) else None

    def start_quietly(self, session: Session) -> None:
        """End ``session`` at the service in the background, if the backend can."""
        if self._backend.capabilities.revoke:
            self.start(session, everywhere=False)

    def start(self, session: Session, *, everywhere: bool) -> None:
        """End ``session`` (or every session of its user) in the background."""
        task = asyncio.get_running_loop().create_task(self._revoke(session, everywhere))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def close(self, grace_period: float) -> None:
        """Give running revocations ``grace_period`` seconds, then abandon them (logged)."""
        if not self._running:
            return
        _, pending = await asyncio.wait(self._running, timeout=grace_period)
        for task in pending:
            task.cancel()
        if pending:
            _log.warning("session.revoke_abandoned", count=len(pending))
            await asyncio.gather(*pending, return_exceptions=True)

    async def _revoke_everywhere(self, session: Session) -> None:
        await self._backend.revoke(session, everywhere=True)

    async def _revoke(self, session: Session, everywhere: bool) -> None:
        """Tell the service, retrying network trouble; the user is already logged out."""

        # Revoking one session needs only its refresh token; every session, a live access
        # token: each try acts on the session the last one renewed (renewing again is reuse).
        async def revoke() -> None:
            nonlocal session
            if not everywhere:
                await self._backend.revoke(session)
                return
            failed = await self.everywhere_now(session)
            if failed is not None:
                session = failed.live
                raise failed.error

        try:
            try:  # most revocations succeed at once: build the retrier only when needed
                await revoke()
                return
            except MimiCoreError as error:
                if not worth_retrying(error):
                    raise
            async for attempt in retrying(self._retry, worth_retrying):
                with attempt:
                    await revoke()
        except MimiCoreError as error:  # e.g. already revoked: nothing left to do
            _log.info("session.revoke_refused", error=type(error).__name__)
        except Exception as error:  # tenacity's RetryError: it gave up
            _log.warning("session.revoke_abandoned", error=type(error).__name__)
