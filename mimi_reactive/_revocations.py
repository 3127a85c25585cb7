"""Revocations: telling the service a session ended, in the background so a log-out never
waits on the network, retrying network trouble until it succeeds, is refused or the core
closes (each gets a grace period then).

A revocation asked for while a command runs at once in its caller's call (``_store``) starts
when that run ends or first waits, where a task of its own would have taken its first step
(so the backend is called in the same order), in the name of a spare task waiting for one
(``_eager``): one that never waits (a backend with nothing to tell) ends there, and the spare
serves the next (it ends at the loop's next turn: a core holds no idle task); one that waits
is taken over by the spare. Once one has waited (a backend over a network), each later one
gets a task of its own, as the spare costs more than it saves there (measured over loopback:
about 20k instructions more a switch, of 1,290k).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from . import _eager
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
        # The task the next revocation starts in the name of, its context, and the future
        # that hands it the revocation if it waits (None: none, or the spare is to end).
        self._spare: tuple[asyncio.Task[None], contextvars.Context, asyncio.Future[Any]] | None
        self._spare = None
        self._retiring = False  # the spare ends at the loop's next turn
        self._waits = False  # a revocation waited: the backend is likely to wait again
        self._held: list[Coroutine[Any, Any, None]] | None = None  # to start at release()

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
        revocation = self._revoke(session, everywhere)
        if self._held is not None:
            self._held.append(revocation)
        else:
            self._track(asyncio.get_running_loop().create_task(revocation))

    def hold(self) -> None:
        """Keep the revocations asked for from now until ``release`` (a command running at
        once), to start them at once then, unless a revocation has waited before."""
        if not self._waits and _eager.SUPPORTED:
            self._held = []

    def release(self, *, start: bool = True) -> None:
        """Start the revocations kept since ``hold``, at once (not ``start``: drop them, the
        program stopping, as one started would be cut off mid-call as its loop ends)."""
        held, self._held = self._held, None
        for revocation in held or ():
            if not start:
                revocation.close()
            elif self._waits:
                self._track(asyncio.get_running_loop().create_task(revocation))
            else:
                self._start_now(revocation)

    def _start_now(self, revocation: Coroutine[Any, Any, None]) -> None:
        """Run ``revocation`` in the spare's name until it ends or first waits."""
        if self._spare is None:
            context = contextvars.copy_context()
            handed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            task = asyncio.get_running_loop().create_task(_take_over(handed), context=context)
            self._spare = (task, context, handed)
        task, context, handed = self._spare
        started = _eager.start(task, context, revocation)
        if isinstance(started, _eager.Started):  # it waits: the spare task goes on with it
            self._waits = True
            self._spare = None
            handed.set_result(started)
            self._track(task)
        elif not self._retiring:
            self._retiring = True
            asyncio.get_running_loop().call_soon(self._retire)

    def _retire(self) -> None:
        """End the spare task, if it still waits for a revocation."""
        self._retiring = False
        if self._spare is not None:
            _, _, handed = self._spare
            self._spare = None
            if not handed.done():  # asyncio.run's teardown may have cancelled the spare
                handed.set_result(None)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def close(self, grace_period: float) -> None:
        """Give running revocations ``grace_period`` seconds, then abandon them (logged)."""
        if self._spare is not None:  # waiting for a revocation that will never come
            spare, _, handed = self._spare
            self._spare = None
            if not handed.done():
                handed.set_result(None)
            await spare
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
        try:
            try:  # most revocations succeed at once: the retrier is built only when needed
                if not everywhere:
                    await self._backend.revoke(session)
                    return
                failed = await self.everywhere_now(session)
                if failed is None:
                    return
                session = failed.live  # the next try acts on the pair this one renewed
                raise failed.error
            except MimiCoreError as error:
                if not worth_retrying(error):
                    raise
            await self._revoke_retrying(session, everywhere)
        except MimiCoreError as error:  # e.g. already revoked: nothing left to do
            _log.info("session.revoke_refused", error=type(error).__name__)
        except Exception as error:  # tenacity's RetryError: it gave up
            _log.warning("session.revoke_abandoned", error=type(error).__name__)

    async def _revoke_retrying(self, session: Session, everywhere: bool) -> None:
        """``_revoke``'s tries after the first failed for network trouble (its error)."""

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

        async for attempt in retrying(self._retry, worth_retrying):
            with attempt:
                await revoke()


async def _take_over(handed: asyncio.Future[_eager.Started[None] | None]) -> None:
    """A spare task's work: what is left of the revocation started in its name that waited
    (None: none did)."""
    try:
        started = await handed
    except asyncio.CancelledError as cancelled:
        if handed.cancelled() or (started := handed.result()) is None:
            raise
        # Cancelled as it was handed one (a timeout the revocation entered, due at once):
        # the cancellation is the revocation's, which ran in this task's name.
        started.throw_when_awaited(cancelled)
    if started is not None:
        await started
