"""Running the effects the guards plan: calls to the backend and the storage.

Each effect gives the reducer one event and the session the store holds afterwards. Network
trouble never blocks a log-out: revocations run in the background and are retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import attrs
import structlog
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from ._backend import AuthBackend, BackendSession
from ._config import RetryPolicy
from ._exceptions import (
    BackendError,
    MimiCoreError,
    SessionRevokedError,
    TransportError,
    UnsupportedRouteError,
)
from ._guards import AdoptSession, Authenticate, Effect, EndSession, RenewTokens
from ._reasons import Reason
from ._reducer import (
    CommandFailed,
    Event,
    RenewalFailed,
    SessionAdopted,
    SessionExpired,
    SignedIn,
    SignedOut,
    TokensRenewed,
)
from ._routes import AuthRoute, LogIn, LogInAnonymously, Promote, SignUp, SignUpAnonymously
from ._storage import SessionStorage, SharedSessionStorage, StoredSession
from ._user import MimiUser

__all__ = ["EffectResult", "EffectRunner", "retrying", "worth_retrying"]

Clock = Callable[[], float]


@attrs.frozen
class EffectResult:
    """What an effect did: the event for the reducer and the session held afterwards."""

    event: Event
    session: StoredSession | None


def retrying(policy: RetryPolicy, retry_on: Callable[[BaseException], bool]) -> AsyncRetrying:
    """Capped exponential backoff with full jitter, for a bounded number of attempts."""
    return AsyncRetrying(
        wait=wait_random_exponential(multiplier=policy.initial_delay, max=policy.max_delay),
        stop=stop_after_attempt(policy.max_attempts),
        retry=retry_if_exception(retry_on),
    )


class EffectRunner:
    """Performs effects against a backend and a storage."""

    def __init__(
        self,
        *,
        backend: AuthBackend,
        storage: SessionStorage,
        retry: RetryPolicy,
        refresh_ahead: float,
        logger: structlog.typing.FilteringBoundLogger,
        clock: Clock = time.time,
    ) -> None:
        self._backend = backend
        self._storage = storage
        self._retry = retry
        self._refresh_ahead = refresh_ahead
        self._log = logger
        self._clock = clock
        self._revocations: set[asyncio.Task[None]] = set()

    async def run(self, effect: Effect, session: StoredSession | None) -> EffectResult:
        """Perform ``effect``; ``session`` is the one held before it."""
        match effect:
            case EndSession():
                return await self._end(session)
            case Authenticate(route=route, replacing=replacing):
                return await self._authenticate(route, replacing, session)
            case RenewTokens():
                assert session is not None  # refuse_refresh_without_user ran first
                return await self._renew(session)
            case AdoptSession():
                return await self._adopt(session)

    async def close(self, grace_period: float) -> None:
        """Give pending revocations ``grace_period`` seconds, then abandon them (logged)."""
        if not self._revocations:
            return
        _, pending = await asyncio.wait(self._revocations, timeout=grace_period)
        for task in pending:
            task.cancel()
        if pending:
            self._log.warning("session.revoke_abandoned", count=len(pending))
            await asyncio.gather(*pending, return_exceptions=True)

    async def _adopt(self, session: StoredSession | None) -> EffectResult:
        try:
            stored = await self._storage.load()
        except OSError as error:  # keep the session we have; the next change retries
            self._log.error("storage.load_failed", error=type(error).__name__)
            stored = session
        return EffectResult(SessionAdopted(stored.user if stored else None), stored)

    async def _end(self, session: StoredSession | None) -> EffectResult:
        await self._forget()
        if session is not None:
            task = asyncio.get_running_loop().create_task(self._revoke(session.session))
            self._revocations.add(task)
            task.add_done_callback(self._revocations.discard)
        return EffectResult(SignedOut(), None)

    async def _revoke(self, session: BackendSession) -> None:
        """Tell the service, retrying network trouble; the user is already logged out."""
        try:
            async for attempt in retrying(self._retry, worth_retrying):
                with attempt:
                    await self._backend.log_out(session)
        except RetryError as gave_up:
            error = gave_up.last_attempt.exception()
            self._log.warning("session.revoke_abandoned", error=type(error).__name__)
        except MimiCoreError as error:  # e.g. already revoked: nothing left to do
            self._log.info("session.revoke_refused", error=type(error).__name__)

    async def _authenticate(
        self, route: AuthRoute, replacing: MimiUser | None, session: StoredSession | None
    ) -> EffectResult:
        try:
            signed_in = await self._call(route, session)
        except MimiCoreError as error:
            return EffectResult(CommandFailed(error), session)
        except Exception as error:  # a backend's bug must not break the stream
            return EffectResult(CommandFailed(_backend_bug(error)), session)
        stored = StoredSession(signed_in, self._clock())
        await self._keep(stored)
        return EffectResult(SignedIn(signed_in.user, route, replacing), stored)

    async def _call(self, route: AuthRoute, session: StoredSession | None) -> BackendSession:
        backend = self._backend
        match route:
            case SignUpAnonymously():
                return await backend.sign_up_anonymously()
            case LogInAnonymously(anonymous_id=anonymous_id):
                assert anonymous_id is not None  # skip_blank_anonymous_id ran first
                return await backend.log_in_anonymously(anonymous_id)
            case LogIn(email=email, password=password):
                return await backend.log_in(email, password)
            case SignUp(email=email, password=password):
                return await backend.sign_up(email, password)
            case Promote(email=email, password=password):
                assert session is not None  # the guards require a logged-in user
                return await backend.promote(session.session, email, password)
        raise UnsupportedRouteError(Reason.BACKEND_CANNOT)

    async def _renew(self, session: StoredSession) -> EffectResult:
        # Across processes one renews at a time; the others then find its tokens stored.
        async with self._storage_lock():
            stored = await self._storage.load()
            if self._renewed_elsewhere(session, stored):
                assert stored is not None
                return EffectResult(TokensRenewed(stored.user), stored)
            try:
                renewed = await self._backend.refresh(session.session)
            except SessionRevokedError as error:
                await self._forget()
                return EffectResult(SessionExpired(error), None)
            except Exception as error:
                failure = error if isinstance(error, MimiCoreError) else _backend_bug(error)
                self._log.info("session.renewal_failed", error=type(error).__name__)
                return EffectResult(RenewalFailed(failure), session)
            fresh = StoredSession(renewed, self._clock())
            await self._keep(fresh)  # saved before it is used
            return EffectResult(TokensRenewed(renewed.user), fresh)

    def _renewed_elsewhere(self, ours: StoredSession, stored: StoredSession | None) -> bool:
        if stored is None or stored == ours or stored.user.id != ours.user.id:
            return False
        due = stored.refresh_due_at(self._refresh_ahead)
        return due is None or self._clock() < due

    @contextlib.asynccontextmanager
    async def _storage_lock(self) -> AsyncIterator[None]:
        if isinstance(self._storage, SharedSessionStorage):
            async with self._storage.lock():
                yield
        else:
            yield

    async def _keep(self, stored: StoredSession) -> None:
        try:
            await self._storage.save(stored)
        except OSError as error:  # the session still works in memory; say so
            self._log.error("storage.save_failed", error=type(error).__name__)

    async def _forget(self) -> None:
        try:
            await self._storage.clear()
        except OSError as error:
            self._log.error("storage.clear_failed", error=type(error).__name__)


def _backend_bug(error: Exception) -> MimiCoreError:
    """Wrap what a backend raised against its contract; the cause stays chained."""
    wrapped = MimiCoreError(f"the backend raised {type(error).__name__}")
    wrapped.__cause__ = error
    return wrapped


def worth_retrying(error: BaseException) -> bool:
    """Network trouble and server errors may pass; a refusal will not."""
    if isinstance(error, TransportError):
        return True
    return isinstance(error, BackendError) and (error.status is None or error.status >= 500)
