"""The core's writes to its storage (every save and clear, and what a failed one left unkept)
and, for a storage processes share, its lock and how to tell what another process stored
there from what this core left: the effect runner decides, this keeps the storage in step."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

from ._exceptions import MimiCoreError, SessionLockTimeoutError, SessionStorageError
from ._log import Log
from ._session import Session
from ._storage import (
    SessionStorage,
    SharedSessionStorage,
    Writes,
    storage_failed,
    write_bound,
)

__all__ = ["StorageSync", "caught_up", "older"]

_log = Log("mimi_reactive.session")


class StorageSync:
    """Saves and clears the core's session in ``storage``; for a shared one, under its lock,
    never over what another process stored since."""

    def __init__(self, storage: SessionStorage) -> None:
        self.storage = storage
        # Checked once: a runtime protocol check is costly.
        self.shared = storage if isinstance(storage, SharedSessionStorage) else None
        # What the storage should hold but does not: a session (or None, for a clear) whose
        # save failed, tried again at close. None: the storage holds what the core does.
        self.unkept: tuple[Session | None] | None = None
        # With an unkept clear: the pair it was to clear, the stored one then. Only that pair
        # (or an older one of its user) is the clear's to remove: a sign-in another process
        # stored since, or a pair renewed since, is newer.
        self.ended: Session | None = None
        self.writes = Writes()  # close() lets one end before it cancels the command

    async def keep_at_close(self, grace_period: float) -> None:
        """Save once more what the storage failed to keep (so a restart restores the live
        refresh token, not a spent one): for a shared storage under its lock, and not over
        what another process stored since (``caught_up``). Abandoned, logged, if it hangs
        (or waits for the lock) past ``write_bound``."""
        if self.unkept is None:
            return
        (unkept,) = self.unkept
        bound = write_bound(grace_period)
        try:
            async with asyncio.timeout(bound):
                if self.shared is None:
                    await self._write_unkept(unkept)
                else:
                    await self.write_locked(partial(self._keep_unless_caught_up, unkept))
        except TimeoutError:
            _log.warning("storage.keep_at_close_abandoned", seconds=bound)

    async def _keep_unless_caught_up(self, unkept: Session | None) -> SessionStorageError | None:
        """Write ``unkept`` (the lock held, or not to be had) unless the shared storage holds
        it or what came after it: a pair another process renewed since is the live one (the
        service rotates refresh tokens), and ours, older, spent."""
        try:
            stored = await self.storage.load()
        except OSError:  # written all the same: the write reports a storage fault
            return await self._write_unkept(unkept)
        if self.caught_up(stored, unkept):
            _log.info("storage.caught_up_at_close")
            self.unkept = None  # the storage holds what came after it
            return None
        return await self._write_unkept(unkept)

    def caught_up(self, stored: Session | None, current: Session | None) -> bool:
        """Whether ``stored`` holds ``current`` (the core's session, None after a log-out) or
        what came after it (``caught_up``); after a log-out whose clear failed, also any
        session but the pair it was to clear or an older one of its user: another process
        signed in, or renewed, since."""
        if current is None and stored is not None and self.ended is not None:
            return not (stored == self.ended or older(stored, self.ended))
        return caught_up(stored, current)

    async def _write_unkept(self, unkept: Session | None) -> SessionStorageError | None:
        """Save ``unkept``, or clear the storage for a log-out (None); logged if it works."""
        failure = await (self.forget(self.ended) if unkept is None else self.keep(unkept))
        if failure is None:
            _log.info("storage.kept_at_close")
        return failure

    @contextlib.asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        """The shared storage's lock, across processes; nothing to take for any other."""
        if self.shared is not None:
            async with self.shared.lock():
                yield
        else:
            yield

    async def write_locked(
        self, write: Callable[[], Awaitable[SessionStorageError | None]]
    ) -> tuple[SessionStorageError | None, MimiCoreError | None]:
        """``write`` (a sign-in's save, a log-out's clear) under a shared storage's lock, so
        a refresh another process runs cannot save over it: its error, and the lock's if
        it could not be taken (it is written all the same, and logged)."""
        try:
            async with self.lock():
                return await write(), None
        except SessionLockTimeoutError as error:
            _log.warning("storage.written_without_lock", error=type(error).__name__)
            unlocked: MimiCoreError = error
        except OSError as error:  # the lock's folder or file
            unlocked = storage_failed("lock", self.storage, error)
        return await write(), unlocked

    async def forget_newest(self, session: Session) -> tuple[MimiCoreError | None, Session]:
        """Clear the storage for a log-out of ``session``: the error (the lock's too, for a
        shared one), and the pair to revoke, the newest stored (ours is spent if another
        process renewed it since)."""
        if self.shared is None:  # inline: every switch of user logs out
            return await self.forget(session), session
        newest = session

        async def forget() -> SessionStorageError | None:
            nonlocal newest
            with contextlib.suppress(OSError):  # revoke ours, clear all the same
                newest = self.renewed_elsewhere(session, await self.storage.load()) or newest
            return await self.forget(newest)

        forgot, unlocked = await self.write_locked(forget)
        return forgot or unlocked, newest

    async def forget_if_held(self, session: Session, live: Session) -> None:
        """Clear the storage after the service said ``session`` is over (``live``: the pair
        a call renewed it to), a shared one only if it still holds that session: a log-out
        or log-in another process stored since stands. If the clear fails, the next start
        finds the session refused again."""
        if self.shared is None:
            await self.forget(live)
            return

        async def forget_ours() -> SessionStorageError | None:
            try:
                stored = await self.storage.load()
            except OSError:
                return await self.forget(live)
            # Ours: the pair the service ended, or our older one a failed save left there.
            if stored in (session, live) or (self.unkept is not None and older(stored, live)):
                return await self.forget(live)
            return None  # a log-out, another user or a pair another process stored since

        await self.write_locked(forget_ours)

    def renewed_elsewhere(self, ours: Session, stored: Session | None) -> Session | None:
        """The stored session if another process renewed ours (due again or not: then it
        is the one to renew, ours being spent). While a save of ours failed, the stored one
        is our own older pair (its refresh token spent), never a newer one."""
        if stored is None or stored == ours or stored.user.id != ours.user.id:
            return None
        return None if self.unkept is not None else stored

    def replaced(self, ours: Session, stored: Session | None) -> bool:
        """Whether another process sharing the storage stored a log-out or another user
        since we took ours (not our own older state, which a failed save leaves there)."""
        if self.shared is None or self.unkept is not None:
            return False
        return stored is None or stored.user.id != ours.user.id

    async def written_meanwhile(
        self, loaded: tuple[Session | None] | None
    ) -> tuple[Session | None] | None:
        """What another process stored while we renewed without the lock (a log-out or a
        sign-in that could not take it), to take in instead of saving over it; None if the
        storage still holds what was ``loaded`` (or cannot say)."""
        if self.shared is None or loaded is None:
            return None
        try:
            stored = await self.storage.load()
        except OSError:  # save all the same: the save reports a storage fault
            return None
        return None if stored == loaded[0] else (stored,)

    async def keep(self, session: Session) -> SessionStorageError | None:
        """Save ``session``; the error if the storage failed, for the event to carry."""
        return await self._write(self.storage.save(session), (session,))

    async def forget(self, ended: Session | None) -> SessionStorageError | None:
        """Clear the storage of ``ended``, the session that is over (None: whatever it
        holds); the error if it failed, for the event to carry."""
        return await self._write(self.storage.clear(), (None,), ended)

    async def _write(
        self, write: Awaitable[None], wanted: tuple[Session | None], ended: Session | None = None
    ) -> SessionStorageError | None:
        """Run ``write`` (a save or clear of ``ended``), marked running for ``close()``; on
        failure remember ``wanted`` as unkept (and ``ended``), to try again at close."""
        writes = self.writes  # marked inline, not wrapped in a context manager: every sign-in saves
        writes.running = True
        try:
            await write
        except OSError as error:
            self.unkept, self.ended = wanted, ended
            return storage_failed("clear" if wanted[0] is None else "save", self.storage, error)
        finally:
            writes.running = False
            if writes.waiter is not None:
                writes.wake()
        self.unkept = None
        return None


def older(stored: Session | None, current: Session) -> bool:
    """Whether ``stored`` is an older pair of ``current``'s user."""
    return (
        stored is not None
        and stored.user.id == current.user.id
        and stored.obtained_at < current.obtained_at
    )


def caught_up(stored: Session | None, current: Session | None) -> bool:
    """Whether ``stored`` holds ``current`` or what came after it: the same pair, both
    nobody, or a pair of the same user obtained since (renewed by another process)."""
    if stored is None or current is None:
        return stored is current
    return stored.user.id == current.user.id and stored.obtained_at >= current.obtained_at
