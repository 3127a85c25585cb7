"""``BlockingMimiCore``: the core for code that is not async (Tkinter, Qt, a game loop, a
script). It runs a real ``MimiCore`` on an event loop in its own daemon thread and mirrors the
async API method for method, blocking until each call is done."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

import reactivex

from ._auth import AuthObserver, ObserverHandle
from ._backend import AuthBackend
from ._checks import check_seconds
from ._config import MimiConfiguration
from ._core import MimiCore
from ._exceptions import CoreClosedError, ReentrantCallError
from ._manager import AnonymousAuthManager
from ._messages import AuthRoute, DeleteAccount, LogOut, Outcome
from ._results import AnonymousLoginResult
from ._state import SessionState
from ._storage import SessionStorage
from ._store import CommandFuture
from ._user import MimiUser

__all__ = ["BlockingAnonymousAuthManager", "BlockingAuthController", "BlockingMimiCore"]

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever in a daemon thread: a forgotten close never keeps the
    process alive."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="mimi_reactive.core", daemon=True
        )
        self._thread.start()

    def call(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the loop and block until it is done; its error is raised here."""
        _refuse_inside_a_loop(work)
        if self.loop.is_closed():
            work.close()
            raise CoreClosedError("the core is closed")
        if threading.current_thread() is self._thread:
            work.close()
            raise ReentrantCallError(
                "a blocking call from the core's own thread (a subscriber, say) would never "
                "return; use core.auth.dispatch(...) there"
            )
        future: Future[T] = asyncio.run_coroutine_threadsafe(work, self.loop)
        return future.result()

    def stop(self) -> None:
        """Stop the loop and wait for its thread. Idempotent."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


def _refuse_inside_a_loop(work: Coroutine[Any, Any, Any]) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop running here: blocking is fine
    work.close()
    raise ReentrantCallError(
        "BlockingMimiCore blocks the calling thread, and this one runs an event loop; "
        "use MimiCore (await MimiCore.start(...)) in async code"
    )


class BlockingAuthController:
    """``core.auth`` for blocking code: the same streams, and calls that block until done.

    Subscribers and observers are called on the core's own thread, never the caller's. To
    handle them on a UI thread, move delivery with a reactivex scheduler, e.g.
    ``core.auth.states.pipe(ops.observe_on(scheduler)).subscribe(render)``.
    """

    def __init__(self, core: MimiCore, loop: _LoopThread) -> None:
        self._auth = core.auth
        self._loop = loop
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
        """Queue a command without waiting; ``result()`` on the returned future waits."""
        return self._auth.dispatch(command)

    def add_observer(self, observer: AuthObserver) -> ObserverHandle:
        """Tell ``observer`` of every later state change, on the core's thread."""
        return self._auth.add_observer(observer)


class BlockingMimiCore:
    """A ``MimiCore`` for code that is not async; start it with ``BlockingMimiCore.start``.

    Use it as a context manager, or call ``close()``. Calling it from a thread that runs an
    event loop is refused with ``ReentrantCallError``: async code uses ``MimiCore``.
    """

    def __init__(self, core: MimiCore, loop: _LoopThread) -> None:
        self._core = core
        self._loop = loop
        self.auth = BlockingAuthController(core, loop)
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

        loop = _LoopThread()
        try:
            core = loop.call(start())
        except BaseException:
            loop.stop()
            raise
        return cls(core, loop)

    def close(self, *, grace_period: float | None = None) -> None:
        """Close the core as ``MimiCore.close`` does, then stop its thread. Idempotent."""
        if grace_period is not None:  # refused here: the loop must not stop unclosed
            check_seconds("grace_period", grace_period)
        if self._loop.loop.is_closed():
            return
        try:
            self._loop.call(self._core.close(grace_period=grace_period))
        finally:
            self._loop.stop()

    def __enter__(self) -> BlockingMimiCore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class BlockingAnonymousAuthManager:
    """``AnonymousAuthManager`` for a ``BlockingMimiCore``."""

    def __init__(self, core: BlockingMimiCore) -> None:
        self._manager = AnonymousAuthManager(core._core)
        self._loop = core._loop

    def authenticate_anonymous_user(self, anonymous_id: str | None) -> AnonymousLoginResult:
        """Log in ``anonymous_id`` if it is set; never raises a ``MimiCoreError``."""
        return self._loop.call(self._manager.authenticate_anonymous_user(anonymous_id))
