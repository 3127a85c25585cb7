"""``BlockingMimiCore``: the core for code that is not async (Tkinter, Qt, a game loop, a
script). It runs a real ``MimiCore`` on an event loop in its own daemon thread and mirrors the
async API method for method, blocking until each call is done."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType

import reactivex

from ._auth import AuthObserver, ObserverHandle
from ._backend import AuthBackend
from ._checks import check_seconds, core_of_the_other_kind
from ._config import MimiConfiguration
from ._core import MimiCore
from ._exceptions import MimiCoreError
from ._future import CommandFuture
from ._lifetime import BlockingCoreLifetime
from ._loop_thread import LoopThread
from ._manager import AnonymousAuthManager
from ._messages import AuthRoute, DeleteAccount, LogOut, Outcome
from ._results import AnonymousLogInResult, Failure
from ._state import SessionState
from ._storage import SessionStorage
from ._user import MimiUser

__all__ = ["BlockingAnonymousAuthManager", "BlockingAuthController", "BlockingMimiCore"]


class BlockingAuthController:
    """``core.auth`` for blocking code: the same streams, and calls that block until done.

    Subscribers and observers are called on the core's own thread, never the caller's. To
    handle them on a UI thread, move delivery with a reactivex scheduler, e.g.
    ``core.auth.states.pipe(ops.observe_on(scheduler)).subscribe(render)``.
    """

    def __init__(self, core: MimiCore, loop: LoopThread, lifetime: BlockingCoreLifetime) -> None:
        self._auth = core.auth
        self._loop = loop
        # Its core's: an app may keep only this (``self.auth = BlockingMimiCore.start(...).auth``),
        # and the core must not be closed under it, only once both are dropped.
        self._lifetime = lifetime
        self.states: reactivex.Observable[SessionState] = core.auth.states
        """Every published state; replays the current one on subscribe."""
        self.mimi_user: reactivex.Observable[MimiUser | None] = core.auth.mimi_user
        """The logged-in user (None when nobody); replays, and only emits changes."""
        self.access_tokens: reactivex.Observable[str | None] = core.auth.access_tokens
        """The current access token (None when nobody); replays, then each new one."""

    @property
    def state(self) -> SessionState:
        """The current state."""
        return self._auth.state

    @property
    def current_user(self) -> MimiUser | None:
        """The logged-in user; None on a clean start or after logging out."""
        return self._auth.current_user

    @property
    def access_token_expires_at(self) -> float | None:
        """When the current access token expires (a ``time.time()`` timestamp); None when
        nobody is logged in or the token has no lifetime."""
        return self._auth.access_token_expires_at

    def authenticate(self, route: AuthRoute) -> MimiUser:
        """Run ``route`` and return the user it logged in; raises as the async one does."""
        return self._loop.call(self._auth.authenticate(route))

    def run(self, command: AuthRoute | LogOut | DeleteAccount) -> Outcome:
        """Run a command and return its full outcome instead of raising."""
        return self._loop.call(self._auth.run(command))

    def log_out(self, *, everywhere: bool = False) -> None:
        """Log the current user out (with ``everywhere``, on every device)."""
        self._loop.call(self._auth.log_out(everywhere=everywhere))

    def access_token(self) -> str:
        """A valid access token, refreshed first if needed."""
        return self._loop.call(self._auth.access_token())

    def refresh(self) -> None:
        """Refresh the session's tokens now."""
        self._loop.call(self._auth.refresh())

    def delete_account(self) -> None:
        """Delete the logged-in user's account at the service, then forget the session."""
        self._loop.call(self._auth.delete_account())

    def dispatch(self, command: AuthRoute | LogOut | DeleteAccount) -> CommandFuture:
        """Queue a command without waiting; ``result()`` on the returned future waits (a
        closed core's raises ``CoreClosedError``)."""
        return self._loop.dispatch(lambda: self._auth.dispatch(command))

    def add_observer(self, observer: AuthObserver[BlockingAuthController]) -> ObserverHandle:
        """Tell ``observer`` of every later state change, on the core's thread, as (this
        controller, current user, old user, error). Its blocking calls raise
        ``ReentrantCallError`` there (they would never return); ``dispatch`` works."""
        return self._auth._observe(observer, self)


class BlockingMimiCore:
    """A ``MimiCore`` for code that is not async; start it with ``BlockingMimiCore.start``.

    Use it as a context manager, or call ``close()``. A ``KeyboardInterrupt`` (Ctrl-C) that
    ends the ``with`` block closes it with no grace period: the running command is cancelled
    at once. Calling it from a thread that runs an event loop is refused with
    ``ReentrantCallError``: async code uses ``MimiCore``.

    A subscriber that raises ``SystemExit`` or ``KeyboardInterrupt`` (``sys.exit()`` when the
    session ends, say) asks the program to stop, and it is not isolated like an error: as in
    an async app, it ends the core's loop, and so the core (``core.thread_stopped`` is logged).
    Every call waiting then raises that same exception (so does a dispatched command's
    future), so a script blocked in a call stops as the subscriber asked; later calls raise
    ``CoreClosedError``, and ``close()`` returns.
    """

    def __init__(self, core: MimiCore, loop: LoopThread) -> None:
        self._core = core
        self._loop = loop
        loop.close_at_once = lambda: core.close(grace_period=0)
        self._lifetime = BlockingCoreLifetime(loop, core.close)
        self.auth = BlockingAuthController(core, loop, self._lifetime)
        """Authentication and the session streams."""
        self.configuration = core.configuration

    @classmethod
    def start(
        cls,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        backend: AuthBackend,
        configuration: MimiConfiguration | None = None,
        storage: SessionStorage | None = None,
        close_grace_period: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> BlockingMimiCore:
        """Start the core on its own thread and restore the stored session; the same
        arguments as ``MimiCore.start`` (a test keeps the two signatures the same)."""

        async def start() -> MimiCore:
            return await MimiCore.start(
                client_id=client_id,
                client_secret=client_secret,
                backend=backend,
                configuration=configuration,
                storage=storage,
                close_grace_period=close_grace_period,
                clock=clock,
            )

        loop = LoopThread()
        try:
            core = loop.call(start())
        except BaseException:
            loop.stop()
            raise
        return cls(core, loop)

    def close(self, *, grace_period: float | None = None) -> None:
        """Close the core as ``MimiCore.close`` does, then stop its thread. Idempotent, and
        safe from several threads at once: each returns once the core is closed. From the
        moment it is called, new calls and dispatches raise ``CoreClosedError``.

        Where it cannot wait for the end, it schedules the close and returns at once: in a
        subscriber (on the core's thread: a "quit on log-out" handler, or one on the streams'
        completion) and in a signal handler that interrupted a call of the core (a SIGTERM
        handler while the main thread dispatches, or waits on a dispatched command's
        ``result()``). Such a handler may dispatch, but its blocking calls raise
        ``ReentrantCallError`` (the call it interrupted holds what they would wait for). In a
        process forked from the one that started the core it does nothing: the core is the
        parent's.
        """
        if grace_period is not None:  # refused here: the loop must not stop unclosed
            check_seconds("grace_period", grace_period)
        self._loop.close(lambda: self._core.close(grace_period=grace_period))

    def __enter__(self) -> BlockingMimiCore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Ctrl-C asks to stop now: a call it interrupted (on a service that does not answer,
        # say) must not hold the exit for the grace period (10 s by default).
        self.close(grace_period=0 if isinstance(exc, KeyboardInterrupt) else None)


class BlockingAnonymousAuthManager:
    """``AnonymousAuthManager`` for a ``BlockingMimiCore``."""

    def __init__(self, core: BlockingMimiCore) -> None:
        if not isinstance(core, BlockingMimiCore):
            raise TypeError(
                core_of_the_other_kind(core, BlockingMimiCore, MimiCore, "AnonymousAuthManager")
            )
        self._manager = AnonymousAuthManager(core._core)
        self._lifetime = core._lifetime  # its core is not closed under it (as core.auth's)
        self._loop = core._loop

    def authenticate_anonymous_user(self, anonymous_id: str | None) -> AnonymousLogInResult:
        """Log in ``anonymous_id`` if it is set; never raises a ``MimiCoreError``: a call
        the core refuses (closed before or during the call, or made where it would wait for
        ever: a subscriber on the core's thread, a thread running an event loop, a signal
        handler that interrupted a call of the core) is a ``Failure`` with that error."""
        try:
            return self._loop.call(self._manager.authenticate_anonymous_user(anonymous_id))
        except MimiCoreError as error:  # the core refused the call: as the async one answers
            return Failure(error)
