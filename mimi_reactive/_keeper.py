"""Background work that keeps a session alive: refreshing ahead of expiry, and following the
session other processes store."""

from __future__ import annotations

import asyncio
import contextlib
import math

from ._exceptions import (
    ClientAuthenticationError,
    ConfigurationError,
    CoreClosedError,
    MimiCoreError,
    RateLimitedError,
)
from ._log import Log
from ._messages import RefreshSession, SyncSession
from ._retry import asked_wait, retrying
from ._storage import SessionStorage, SharedSessionStorage
from ._store import SessionStore

__all__ = ["SessionKeeper"]

_log = Log("mimi_reactive.session")

# The longest the keeper sleeps before it compares the due time with the wall clock again.
# Its timers run on the monotonic clock, which stands still while the machine is suspended,
# and the wall clock expiry is measured on may jump either way (a resume, an NTP step): a
# timer set for the whole delay could fire long after the tokens expired.
_LONGEST_SLEEP = 60.0


# Seconds before a watch of the shared storage that failed starts again: first, then at most.
_FIRST_WATCH_PAUSE = 0.5
_LONGEST_WATCH_PAUSE = 30.0


class _AppRefusedError(Exception):
    """A refresh attempt was refused for the app's own credentials (ClientAuthenticationError:
    Firebase's API key, HttpBackend's client secret). The user is still valid, but no attempt
    of this core can renew while it runs with them, so the keeper stops until the session
    changes instead of retrying for ever (Firebase's own SDKs retry a proactive refresh only on
    network errors, and keep the user signed in)."""


class _StillDegradedError(Exception):
    """A refresh attempt left the session degraded."""


class _SessionChangedError(Exception):
    """The session changed while the keeper waited to retry: plan again from it."""


class SessionKeeper:
    """Refreshes the store's session ahead of expiry, retrying network trouble with backoff,
    and feeds changes made by other processes sharing the storage back into the store."""

    def __init__(self, store: SessionStore, *, storage: SessionStorage) -> None:
        self._store = store
        self._retry = store.configuration.retry
        self._policy = store.configuration.refresh
        self._clock = store.clock
        self._can_refresh = store.can_refresh  # the backend's capabilities never change
        self._loop = asyncio.get_running_loop()
        # Set when a refresh is due. A timer sets it; a session change only moves the timer,
        # so a sign-in or switch costs no wake-up of the keeper's task.
        self._due = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # the local time the pending timer is for
        # Set once a run of attempts gave up: the time of the next single attempt, on the
        # loop's monotonic clock (a wall clock set back would stretch the pause by as much).
        # Until the session changes, the keeper then tries once every ``max_delay`` (or as
        # long as the service asked), as a service that is down for an hour comes back.
        self._resume_at: float | None = None
        # Set once a refresh was refused for the app's credentials: no attempt until the
        # session changes (a sign-in, a refresh() that worked, another process).
        self._app_refused = False
        # Set only while the keeper waits between refresh attempts: a session change then
        # ends the wait (a recovery, a sign-in or another process may have made it moot).
        self._interrupt: asyncio.Event | None = None
        self._last_error: MimiCoreError | None = None  # of the last refresh attempt
        # While the tokens are due and not renewed (or with a backend that cannot renew
        # them), fires by the time the access token on the store's token stream stops being
        # usable, so the store takes it off even while no renewal succeeds (_watch_token).
        self._token_timer: asyncio.TimerHandle | None = None
        self._token_timer_at = 0.0  # the local time the pending token timer is for
        # Set from a reading of the clock that failed (``checked_clock``'s
        # ConfigurationError) until one works: a run of failures is logged once.
        self._clock_failing = False
        self._tasks = [
            self._loop.create_task(self._refresh_forever(), name="mimi_reactive.refresh")
        ]
        if isinstance(storage, SharedSessionStorage):
            self._tasks.append(
                self._loop.create_task(self._follow(storage), name="mimi_reactive.storage_watch")
            )
        store.on_session_changed(self._session_changed)
        self._schedule()
        if not self._can_refresh:
            self._watch_token()

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._token_timer is not None:
            self._token_timer.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _session_changed(self) -> None:
        self._resume_at = None  # a sign-in, a call or another process: worth trying again
        self._app_refused = False
        if self._interrupt is not None:
            self._interrupt.set()
        try:
            self._schedule()
            if self._token_timer is not None or not self._can_refresh:
                self._watch_token()  # tokens due and not renewed yet, or never renewed here
        except ConfigurationError as error:
            # The clock went wrong: raised here, it would fail the command that changed the
            # session. The refresh task reads it again (and again, after a pause) instead.
            self._clock_went_wrong(error)
            self._due.set()

    def _schedule(self) -> None:
        """Make sure the keeper wakes by the next refresh time.

        A timer that fires sooner is kept (the keeper re-checks when it fires), so the
        usual change, a sign-in with tokens due later, costs no new timer. No timer is set
        for longer than ``_LONGEST_SLEEP``.
        """
        due = self._next_refresh_at()
        if due is None:
            return  # a pending timer finds nothing due and stops
        if self._timer is not None and self._timer_at <= due:
            return
        now = self._now()  # before the pending timer is cancelled: it may raise
        if self._timer is not None:
            self._timer.cancel()
        delay = due - now
        if delay <= 0:
            self._timer = None
            self._due.set()
        else:
            delay = min(delay, _LONGEST_SLEEP)
            self._timer_at = now + delay
            self._timer = self._loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._due.set()

    def _watch_token(self) -> None:
        """Make sure the keeper wakes by the time the access token the store publishes stops
        being usable: a renewal that fails publishes nothing, so without this the stream
        would hand an expired token to late subscribers while the service is unreachable.

        Only while it matters: from when the keeper wakes to renew due tokens until they are
        renewed (the usual switch, with tokens far from due, costs nothing), and always with
        a backend that cannot renew them. Tokens are due before they stop being usable (but
        those that last less than ``min_interval``), so the keeper is awake by then. As in
        ``_schedule``, a timer that fires sooner is kept (it re-checks when it fires), and
        none is set for longer than ``_LONGEST_SLEEP``: the wall clock the token expires on
        may jump while the monotonic clock stands still.
        """
        session = self._store.session
        if session is None or self._store.tokens.value is None:
            return  # nothing published to take off: a renewal publishes its token
        now = self._now()
        until = self._policy.usable_until(session, now)
        if until is None:
            return  # never expires
        if self._token_timer is not None:
            if self._token_timer_at <= until:
                return
            self._token_timer.cancel()
        delay = min(max(until - now, 0.0), _LONGEST_SLEEP)
        self._token_timer_at = now + delay
        self._token_timer = self._loop.call_later(delay, self._token_due)

    def _token_due(self) -> None:
        self._token_timer = None
        try:
            self._store.recheck_token()  # None once the token is no longer usable
            session = self._store.session
            if (
                session is not None
                and self._can_refresh
                and not self._store.state.degraded
                and not self._policy.is_due(session, self._now())
            ):
                return  # renewed: the keeper watches again when the new tokens fall due
            self._watch_token()  # still on the stream: the timer woke early to read the clock
        except ConfigurationError as error:
            # The clock went wrong: look again after the keeper's slow pause. The timer is
            # for no time on the clock, so any plan made from a reading replaces it.
            self._clock_went_wrong(error)
            self._token_timer_at = math.inf
            self._token_timer = self._loop.call_later(self._slow_pause(), self._token_due)

    def _now(self) -> float:
        """The clock's reading; one that works ends a run of failed readings."""
        now = self._clock()
        if self._clock_failing:
            self._clock_failing = False
            # A change applied while the clock gave no time published no token: hand it
            # out again if it is usable (nothing is published if it is the one held).
            self._store.recheck_token()
        return now

    def _clock_went_wrong(self, error: ConfigurationError) -> None:
        """Log a reading of the clock that failed, once for a run of them: the keeper reads
        it again and again until it works, and one line is enough (the message names the
        clock's fault, never a secret)."""
        if not self._clock_failing:
            self._clock_failing = True
            _log.warning("session.clock_failed", reason=str(error), retry_in=self._slow_pause())

    def _next_refresh_at(self) -> float | None:
        session = self._store.session
        if session is None or not self._can_refresh or self._app_refused:
            return None
        degraded = self._store.state.degraded
        now = self._now()
        due = self._policy.next_refresh_at(session, degraded=degraded, now=now)
        if due is None or self._resume_at is None:
            return due
        # Gave up: not before the next single attempt, its pause told on the wall clock.
        return max(due, now + self._resume_at - self._loop.time())

    async def _refresh_forever(self) -> None:
        """Keep refreshing until the core closes. A reading of the clock gone wrong
        (``ConfigurationError``) ends no more than the current plan: after the keeper's slow
        pause, or sooner if the session changes, it reads the clock again."""
        with contextlib.suppress(CoreClosedError):
            while True:
                try:
                    await self._refresh_while_open()
                except ConfigurationError as error:
                    self._clock_went_wrong(error)
                with contextlib.suppress(_SessionChangedError):
                    await self._wait_unless_changed(self._slow_pause())
                self._due.set()

    async def _refresh_while_open(self) -> None:
        while True:
            await self._due.wait()
            self._due.clear()
            due = self._next_refresh_at()
            if due is not None and due <= self._now():
                self._watch_token()  # until they are renewed, they may stop being usable
                if self._resume_at is None:
                    healthy = await self._refresh_until_healthy()
                else:
                    healthy = await self._refresh_once()
                # Changes made by the refresh itself are not a reason to go again.
                self._due.clear()
                self._resume_at = None if healthy else self._loop.time() + self._slow_pause()
            self._schedule()

    async def _refresh_until_healthy(self) -> bool:
        """Refresh, retrying while the session stays degraded; False if it gave up. A
        session change during a wait between attempts ends it: the caller plans again."""
        from tenacity import RetryError  # imported when needed: costly, and rarely needed

        try:
            still_degraded = retrying(
                self._retry,
                lambda e: isinstance(e, _StillDegradedError),
                at_least=self._wait_asked_for,
                sleep=self._wait_unless_changed,
            )
            async for attempt in still_degraded:
                with attempt:
                    outcome = await self._store.run(RefreshSession())
                    self._last_error = outcome.error
                    if self._store.state.degraded:
                        if isinstance(outcome.error, ClientAuthenticationError):
                            raise _AppRefusedError
                        raise _StillDegradedError
        except _AppRefusedError:
            return self._stop_for_the_app()
        except RetryError:
            _log.warning(
                "session.refresh_gave_up",
                attempts=self._retry.max_attempts,
                then_every=self._slow_pause(),
            )
            return False
        except _SessionChangedError:
            pass
        return True

    async def _refresh_once(self) -> bool:
        """One attempt after the keeper gave up; False if the session is still degraded."""
        outcome = await self._store.run(RefreshSession())
        self._last_error = outcome.error
        if self._store.state.degraded and isinstance(outcome.error, ClientAuthenticationError):
            return self._stop_for_the_app()
        return not self._store.state.degraded

    def _stop_for_the_app(self) -> bool:
        """Stop refreshing until the session changes: the service refused the app's own
        credentials (the state, ``DEGRADED``, carries the error for the app). False."""
        self._app_refused = True
        error = self._last_error
        code = error.code if isinstance(error, ClientAuthenticationError) else None
        _log.error("session.refresh_refused_for_the_app", code=code)
        return False

    def _slow_pause(self) -> float:
        """Seconds between single attempts once a run of attempts gave up: the backoff's
        longest wait, or what the service asked for (``Retry-After``) if longer."""
        return max(self._retry.max_delay, asked_wait(self._wait_asked_for()))

    async def _wait_unless_changed(self, seconds: float) -> None:
        """Wait ``seconds`` before the next attempt; raise ``_SessionChangedError`` as soon
        as the session changes."""
        interrupt = self._interrupt = asyncio.Event()
        try:
            async with asyncio.timeout(seconds):
                await interrupt.wait()
        except TimeoutError:
            return
        finally:
            self._interrupt = None
        raise _SessionChangedError

    def _wait_asked_for(self) -> float:
        """Seconds the service asked us to wait (Retry-After) before trying again, if any."""
        error = self._last_error
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            return error.retry_after
        return 0.0

    async def _follow(self, storage: SharedSessionStorage) -> None:
        """Turn the storage's changes into ``SyncSession`` commands. A watch the OS fails
        (a permission, a symlink loop) starts again after a pause that doubles up to
        ``_LONGEST_WATCH_PAUSE``: a watch that stopped for good would leave this process
        deaf to the others' log-outs for the rest of its life."""
        pause = _FIRST_WATCH_PAUSE
        while True:
            try:
                async for _ in storage.changes():
                    pause = _FIRST_WATCH_PAUSE
                    # The store reads the storage when the command runs, in order with its
                    # own writes, so a notice that raced our own save never rolls it back.
                    self._store.dispatch(SyncSession())
                return
            except OSError as error:
                reason = error.strerror or type(error).__name__
                _log.error("storage.watch_failed", reason=reason, retry_in=pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LONGEST_WATCH_PAUSE)
