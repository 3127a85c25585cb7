"""The runner of effects: the calls to the backend and the storage the guards planned.

Each effect gives the reducer one event and the session held afterwards. Network trouble
never blocks a log-out: revocations run in the background and are retried. A session that
expired unused (not one the service ended on purpose) is renewed by logging its anonymous
user back in by id: the id is the user's long-lived credential, the session only a lease.
A storage that fails to keep a change is reported in the event, never only logged. What
is written to the storage, and when it is another process's to keep, is ``StorageSync``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import cast

from ._backend import AuthBackend, DeletingBackend
from ._config import MimiConfiguration
from ._exceptions import (
    SessionLockTimeoutError,
    SessionRevokedError,
    StoredSessionLostError,
)
from ._log import Log
from ._made import new_signed_in, new_signed_out
from ._messages import (
    AccountDeleted,
    AdoptSession,
    Authenticate,
    AuthRoute,
    CommandFailed,
    DeleteUser,
    Effect,
    EndSession,
    Event,
    RefreshFailed,
    RefreshTokens,
    SessionAdopted,
    SessionExpired,
    TokensRefreshed,
)
from ._renewal import CallFailed, NotRenewedError, Renewal, as_failure
from ._retry import worth_retrying
from ._revocations import Revocations
from ._session import Session
from ._storage import SessionStorage, storage_failed
from ._storage_sync import StorageSync
from ._user import MimiUser

__all__ = ["EffectResult", "EffectRunner"]

_log = Log("mimi_reactive.session")


EffectResult = tuple[Event, Session | None]
"""What an effect did: the event for the reducer and the session held afterwards. A plain
pair, as the store takes it apart at once: an attrs value costs 4k instructions to make,
and a switch of user makes two."""


class EffectRunner:
    """Performs effects against a backend and a storage."""

    def __init__(
        self,
        *,
        backend: AuthBackend,
        storage: SessionStorage,
        configuration: MimiConfiguration,
        clock: Callable[[], float],
    ) -> None:
        self._backend = backend
        self._sync = StorageSync(storage)
        self._storage = storage
        self._configuration = configuration
        self._clock = clock
        self._renewal = Renewal(backend, configuration.refresh, clock)
        self._revocations = Revocations(
            backend, self._renewal, self._renew_for_call, configuration.retry
        )
        self.hold_revocations = self._revocations.hold
        """Keep the revocations effects ask for, to start at ``release_revocations``."""
        self.release_revocations = self._revocations.release
        self.writes = self._sync.writes  # close() lets one end before it cancels the command
        self.committed: EffectResult | None = None  # stored: applied if close() cancels

    async def perform(self, effect: Effect) -> EffectResult:
        """Perform ``effect`` with the data it carries."""
        self.committed = None
        match effect:
            case EndSession(session=session, everywhere=everywhere):
                return await self._end(session, everywhere=everywhere)
            case Authenticate(route=route, session=session, replacing=replacing):
                return await self._authenticate(route, session, replacing)
            case RefreshTokens(session=session):
                return await self._refresh(session)
            case AdoptSession(current=current):
                return await self._adopt(current)
            case DeleteUser(session=session):
                return await self._delete(session)

    async def close(self, grace_period: float) -> None:
        """Save once more what the storage failed to keep (``StorageSync.keep_at_close``),
        then give pending revocations ``grace_period`` seconds and abandon them (logged)."""
        await self._sync.keep_at_close(grace_period)
        await self._revocations.close(grace_period)

    async def _adopt(self, current: Session | None) -> EffectResult:
        try:
            stored = await self._storage.load()
        except OSError as error:  # never a log-out: only a stored {"session": null} is one
            storage_failed("load", self._storage, error)
            if current is not None and isinstance(error, StoredSessionLostError):
                return await self._write_back(current)
            return (SessionAdopted(current.user if current else None), current)
        return self._adopted(current, stored)

    def _adopted(self, current: Session | None, stored: Session | None) -> EffectResult:
        if self._sync.unkept is not None and not self._sync.caught_up(stored, current):
            # What our failed write could not replace, read late (our older pair, or the
            # log-out or other user stored before a sign-in whose save failed): ours stands,
            # saved again until kept. Only a pair another process renewed since is newer.
            return (SessionAdopted(current.user if current else None), current)
        self._sync.unkept = None  # another process's write replaced what we failed to keep
        if stored is not None and not self._admissible(stored.user):
            return self._not_taken_in(current)
        return (SessionAdopted(stored.user if stored else None), stored)

    async def _write_back(self, held: Session) -> EffectResult:
        """The shared storage lost the session (its file removed or found unreadable): under
        its lock, unless another process stored one since, write back the session held. A
        write-back that fails is reported (degraded until a save succeeds, tried at close)."""
        try:
            async with self._sync.lock():
                try:
                    stored = await self._storage.load()
                except StoredSessionLostError:
                    failed_before = self._sync.unkept is not None
                    unsaved = await self._sync.keep(held)
                    if unsaved is None:
                        _log.warning("storage.session_written_back")
                    kept = failed_before and unsaved is None  # what degraded it is over
                    return (SessionAdopted(held.user, unsaved, kept), held)
        except (SessionLockTimeoutError, OSError) as error:  # the next change tries again
            _log.warning("storage.write_back_failed", error=type(error).__name__)
            return (SessionAdopted(held.user), held)
        return self._adopted(held, stored)

    def _not_taken_in(self, current: Session | None) -> EffectResult:
        """Another process sharing the storage stored a user with credentials, which an
        anonymous-only core never holds: a session here ends (``not_anonymous``), as when a
        refresh answers such a user. The stored session is the other process's: it is
        neither revoked nor cleared (and a later start does not restore it here)."""
        _log.warning("session.not_anonymous_not_adopted")
        if current is None:
            return (SessionAdopted(None), None)
        return (SessionExpired(_not_anonymous()), None)

    async def _end(self, session: Session, *, everywhere: bool) -> EffectResult:
        # A session the storage could not forget would be restored on the next start: that
        # is the error the app hears first (a failed revocation is retried in the background).
        # Cleared under the shared lock, so a refresh another process runs is not saved over
        # it; cleared without it if the lock cannot be taken, which the app is told.
        # The pair revoked is the newest stored: ours is spent if another process renewed it.
        unforgotten, session = await self._sync.forget_newest(session)
        if everywhere:
            # The caller wants to know the other sessions ended: try now, in the foreground.
            self.committed = (new_signed_out(unforgotten), None)  # for a close
            failed = await self._revocations.everywhere_now(session)
            self.committed = None  # it returns: the store applies what it returns instead
            if failed is not None:
                failure = as_failure(failed.error)
                if worth_retrying(failure):  # with the renewed pair: renewing again is reuse
                    self._revocations.start(failed.live, everywhere=True)
                return (new_signed_out(unforgotten or failure), None)
        else:
            self._revocations.start_quietly(session)
        return (new_signed_out(unforgotten), None)

    async def _renew_for_call(self, session: Session) -> Session:
        """``session`` renewed for a call (``Renewal.renew``), one process at a time across
        a shared storage: tokens another process stored since are taken instead (renewed if
        due), as a refresh takes them (renewing ours again would present a spent refresh
        token). What the renewal gives is stored before the lock is released, so no process
        renews the pair it spent, unless the storage holds a log-out or another user."""
        async with self._sync.lock():
            try:
                stored = await self._storage.load()
            except OSError:  # renew all the same, and save (a write-back)
                ours = True
                stored = None
            else:
                ours = stored is not None and stored.user.id == session.user.id
            renewed = self._sync.renewed_elsewhere(session, stored)
            if renewed is None or self._configuration.refresh.is_due(renewed, self._clock()):
                # Ours is spent if another process renewed it: renew what it stored.
                renewed = await self._renewed_for_call(renewed or session, ours)
        # Promoted by another client since: the call must not act on a user with credentials
        # (a deletion would delete a real account); the session is over for this core.
        if not self._admissible(renewed.user):
            raise _not_anonymous()
        return renewed

    async def _renewed_for_call(self, session: Session, ours: bool) -> Session:
        """``session`` renewed, the lock held; if ``ours`` (a shared storage holds this user)
        the outcome is stored before the lock goes: the renewed pair, the pair without its
        refused refresh token, or a clear for a session that is over."""
        keeps = ours and self._sync.shared is not None
        try:
            renewed = await self._renewal.renew(session)
        except SessionRevokedError:
            if keeps:
                await self._sync.forget(session)  # the next start would find it refused again
            raise
        except NotRenewedError as not_renewed:
            if keeps and not_renewed.held is not session:
                await self._sync.keep(not_renewed.held)  # its refused refresh token dropped
            raise
        if not self._admissible(renewed.user):
            self._revocations.start_quietly(renewed)
            if keeps:
                await self._sync.forget(renewed)
        elif keeps:
            await self._sync.keep(renewed)  # a failed save is retried at close
        return renewed

    async def _authenticate(
        self, route: AuthRoute, session: Session | None, replacing: MimiUser | None
    ) -> EffectResult:
        # A backend's bug (an answer of the wrong type too) fails the command, as errors do.
        if session is not None:  # a promotion: it acts on the logged-in session
            promote = partial(self._signed_in, route)
            called = await self._renewal.call_live(session, promote, self._renew_for_call)
            if isinstance(called, CallFailed):
                if called.ended is not None:  # the session a promotion acted on is over
                    return await self._call_ended(session, called)
                held = await self._still_held(session, called.live)
                return (CommandFailed(as_failure(called.error)), held)
            signed_in, _ = called
        else:
            try:
                signed_in = await self._signed_in(route, None)
            except Exception as error:
                return (CommandFailed(as_failure(error)), session)
        if not self._admissible(signed_in.user):
            self._revocations.start_quietly(signed_in)
            return (CommandFailed(_not_anonymous()), session)
        # One the storage could not keep still works here: the event says so, the state is
        # degraded, and the keeper saves it again until a save succeeds. Saved under the
        # shared lock, so a refresh another process runs is not saved over it.
        if self._sync.shared is None:  # inline: every sign-in and switch saves
            unsaved = await self._sync.keep(signed_in)
        else:
            unsaved, _ = await self._sync.write_locked(partial(self._sync.keep, signed_in))
        return (new_signed_in(signed_in.user, route, replacing, unsaved), signed_in)

    async def _signed_in(self, route: AuthRoute, session: Session | None) -> Session:
        """The session the backend issues for ``route`` (``TypeError`` for a wrong answer)."""
        now = self._clock()  # before the call: a clock gone wrong leaves no orphan session
        return Session.issued(await self._backend.authenticate(route, session), now)

    async def _delete(self, session: Session) -> EffectResult:
        # The guards ask only a backend whose capabilities declare deletion.
        backend = cast(DeletingBackend, self._backend)
        # Anonymous-only: renewed first, so a user another client has given credentials since
        # (a token issued before that still says anonymous) is found out, not deleted.
        called = await self._renewal.call_live(
            session,
            backend.delete,
            self._renew_for_call,
            renew_first=self._configuration.allow_anonymous_user_only
            and self._backend.capabilities.refresh,
        )
        if isinstance(called, CallFailed):
            if called.ended is not None:  # the session is over; the account may be too
                return await self._call_ended(session, called)
            held = await self._still_held(session, called.live)
            return (CommandFailed(as_failure(called.error)), held)
        # Cleared under the shared lock, as a log-out is: no refresh another process runs
        # saves the deleted user over it. A lock not taken is logged: the account is gone.
        _, deleted = called  # the pair it acted on: renewed first, it is the newest
        forgot, _ = await self._sync.write_locked(partial(self._sync.forget, deleted))
        return (AccountDeleted(forgot), None)

    async def _still_held(self, session: Session, live: Session) -> Session:
        """The session to hold after a call on ``live`` failed: the renewed one if renewing
        spent ``session``'s refresh token, else ``session``. Kept, so the next refresh does
        not present the spent one: here, or by ``_renew_for_call`` for a shared storage (not
        over what another process stored since)."""
        if live is session or live.user != session.user:
            return session
        if self._sync.shared is None:
            await self._sync.keep(live)  # a failed save is retried at close
        return live

    async def _call_ended(self, session: Session, called: CallFailed) -> EffectResult:
        """The service said the session a call acted on is over: forget it (unless another
        process stored a log-out or log-in since: the watch takes that in), and say so."""
        assert called.ended is not None
        await self._sync.forget_if_held(session, called.live)
        return (SessionExpired(called.ended), None)

    async def _refresh(self, session: Session) -> EffectResult:
        # Across processes one refreshes at a time; the others then find its tokens stored.
        try:
            async with self._sync.lock():
                return await self._refresh_holding_lock(session)
        except SessionLockTimeoutError as error:  # another process is stuck: try again later
            _log.warning("session.refresh_failed", error=type(error).__name__)
            return (RefreshFailed(error), session)
        except OSError as error:  # the lock could not be taken (its folder, its file)
            failure = storage_failed("lock", self._storage, error)
            return (RefreshFailed(failure), session)

    async def _refresh_holding_lock(self, session: Session) -> EffectResult:
        held = session
        loaded: tuple[Session | None] | None = None  # what the storage held, if it loaded
        try:
            stored = await self._storage.load()
        except OSError as error:  # renew all the same: saving the pair reports a storage fault
            storage_failed("load", self._storage, error)
        else:
            loaded = (stored,)
            if self._sync.replaced(session, stored):  # a log-out or sign-in is never undone here
                return self._adopted(session, stored)
            newer = self._sync.renewed_elsewhere(session, stored)
            if newer is not None:
                if not self._admissible(newer.user):
                    return self._not_taken_in(session)
                if not self._configuration.refresh.is_due(newer, self._clock()):
                    return (TokensRefreshed(newer.user), newer)
                session = newer  # ours is spent: the other process renewed it
            elif self._sync.unkept is not None and not self._configuration.refresh.is_due(
                session, self._clock()
            ):
                return await self._kept_again(session)
        try:
            fresh = await self._renewal.renew(session)
        except SessionRevokedError as error:
            if (written := await self._sync.written_meanwhile(loaded)) is not None:
                return self._adopted(held, written[0])
            return await self._expired(session, error)
        except NotRenewedError as not_renewed:
            _log.info("session.refresh_failed", error=type(not_renewed.__cause__).__name__)
            if not_renewed.held is not session:
                await self._sync.keep(not_renewed.held)  # its refused refresh token dropped
            return (RefreshFailed(not_renewed.failure), not_renewed.held)
        if (written := await self._sync.written_meanwhile(loaded)) is not None:
            return self._adopted(held, written[0])
        return await self._renewed(fresh)

    async def _kept_again(self, session: Session) -> EffectResult:
        """Save again the session a save failed to keep, tokens not yet due: renewing them
        would spend a refresh token the storage cannot keep either (another process sharing
        it would present the stored one, spent: reuse)."""
        unsaved = await self._sync.keep(session)
        if unsaved is not None:
            return (RefreshFailed(unsaved), session)
        return (TokensRefreshed(session.user), session)

    async def _renewed(self, fresh: Session) -> EffectResult:
        """Take on renewed tokens: saved before they are used; a save that failed leaves the
        session degraded (it works here, but a restart would restore the spent pair), and
        the keeper saves it again until it is kept (renewing it only once it is due)."""
        if not self._admissible(fresh.user):
            self._revocations.start_quietly(fresh)
            return await self._expired(fresh, _not_anonymous())
        unsaved = await self._sync.keep(fresh)
        if unsaved is not None:
            return (RefreshFailed(unsaved), fresh)
        return (TokensRefreshed(fresh.user), fresh)

    def _admissible(self, user: MimiUser) -> bool:
        """Whether the core may hold ``user``: with ``allow_anonymous_user_only`` only an
        anonymous one (another client may have promoted it since)."""
        return user.is_anonymous or not self._configuration.allow_anonymous_user_only

    async def _expired(self, ended: Session, error: SessionRevokedError) -> EffectResult:
        """The service said ``ended`` is over: forget it, and say so."""
        # If it fails, the next start finds the session refused again.
        await self._sync.forget(ended)
        return (SessionExpired(error), None)


def _not_anonymous() -> SessionRevokedError:
    """Why a user made non-anonymous elsewhere is not taken in under anonymous-only."""
    return SessionRevokedError(
        "not_anonymous",
        "the user is no longer anonymous and allow_anonymous_user_only keeps only anonymous "
        "users: the session ended here",
    )
