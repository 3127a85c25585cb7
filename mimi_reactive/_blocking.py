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
from ._future import CommandFuture
from ._log import Log
from ._manager import AnonymousAuthManager
from ._messages import AuthRoute, DeleteAccount, LogOut, Outcome
from ._results import AnonymousLogInResult
from ._state import SessionState
from ._storage import SessionStorage
from ._user import MimiUser

__all__ = ["BlockingAnonymousAuthManager", "BlockingAuthController", "BlockingMimiCore"]

T = TypeVar("T")

_log = Log("mimi_reactive.core")


class _LoopThread:
    """An event loop running forever in a daemon thread: a forgotten close never keeps the
    process alive.

    One lock orders calls against the end: a call either is scheduled while the loop still
    runs (and is answered, by the loop or by the thread's end with ``CoreClosedError``) or is
    refused with ``CoreClosedError``; nobody waits on a loop that has stopped.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._lock = threading.Lock()
        self._close_claimed = False  # a close() has begun: later ones only wait for the end
        self._ended = False  # no call is accepted any more: the loop stops or has stopped
        self._waiting: set[Future[Any]] = set()  # the callers not answered yet
        self._fatal: BaseException | None = None
        self.close_at_once: Callable[[], Coroutine[Any, Any, None]] | None = None
        """What closes the core at once, run if the loop ends unclosed (a subscriber's
        ``SystemExit``): the backend's connections are released all the same."""
        self._thread = threading.Thread(target=self._run, name="mimi_reactive.core", daemon=True)
        self._thread.start()

    def call(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the loop and block until it is done; its error is raised here."""
        self._refuse_to_deadlock(work)
        waiter: Future[T] = Future()
        with self._lock:
            if self._ended:
                work.close()
                raise CoreClosedError("the core is closed")
            self._waiting.add(waiter)
            self.loop.call_soon_threadsafe(self._begin, work, waiter)
        try:
            return waiter.result()
        finally:
            with self._lock:
                self._waiting.discard(waiter)

    def dispatch(self, queue: Callable[[], CommandFuture]) -> CommandFuture:
        """``queue()`` (which hands a command to the loop) while the loop takes calls; once
        it has stopped, a future failed with ``CoreClosedError``, as a closed core's
        ``dispatch`` returns: a command handed to a stopped loop would never be answered."""
        with self._lock:
            if not self._ended:
                return queue()
        refused = CommandFuture(self._thread.ident or 0)
        refused.set_exception(CoreClosedError("the core is closed"))
        return refused

    @property
    def fatal(self) -> BaseException | None:
        """What a subscriber raised that ended the thread (``SystemExit``, say), if any."""
        return self._fatal

    def claim_close(self, work: Coroutine[Any, Any, None]) -> bool:
        """True for the first close; a later or concurrent one gets False (``work`` closed)
        and waits until the thread has ended. Refuses where ``call`` would."""
        self._refuse_to_deadlock(work)
        with self._lock:
            first = not self._close_claimed and not self._ended
            self._close_claimed = True
        if not first:
            work.close()
            self._thread.join()
        return first

    def stop(self) -> None:
        """Stop the loop and wait for its thread; later calls raise ``CoreClosedError``.
        Idempotent."""
        with self._lock:
            if not self._ended:
                self._ended = True
                self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _refuse_to_deadlock(self, work: Coroutine[Any, Any, Any]) -> None:
        _refuse_inside_a_loop(work)
        if threading.current_thread() is self._thread:
            work.close()
            raise ReentrantCallError(
                "a blocking call from the core's own thread (a subscriber, say) would never "
                "return; use core.auth.dispatch(...) there"
            )

    def _begin(self, work: Coroutine[Any, Any, T], waiter: Future[T]) -> None:
        if self._fatal is not None:  # run while the thread ends: its end answers the caller
            work.close()
            return
        task = self.loop.create_task(work)
        task.add_done_callback(lambda done: self._answer(waiter, done))

    def _answer(self, waiter: Future[T], task: asyncio.Task[T]) -> None:
        # Retrieved even when the caller hears something else: asyncio logs one never read.
        error = None if task.cancelled() else task.exception()
        if waiter.done():
            return
        if self._fatal is not None:  # the core died: whatever the call got, it gets this
            waiter.set_exception(self._fatal)
        elif task.cancelled():  # by the thread's end
            waiter.set_exception(CoreClosedError("the core closed during the call"))
        elif error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(task.result())

    def _run(self) -> None:
        """The thread: the loop until it is stopped, or until a subscriber's ``SystemExit``
        or ``KeyboardInterrupt`` ends it; then every caller still waiting is answered."""
        try:
            self.loop.run_forever()
        except BaseException as error:  # a subscriber asked the program to stop
            _log.error("core.thread_stopped", error=type(error).__name__)
            self._fatal = error
            # Told once, here: not again as the dead worker's "exception never retrieved".
            self.loop.set_exception_handler(_quiet_about_stopping)
        finally:
            with self._lock:
                self._ended = True
                waiting = list(self._waiting)
            if self._fatal is not None and self.close_at_once is not None:
                self._run_to_end(self.close_at_once())
            self._run_to_end(self._cancelled_tasks())
            for waiter in waiting:
                if not waiter.done():
                    waiter.set_exception(self._fatal or CoreClosedError("the core is closed"))
            self.loop.close()

    async def _cancelled_tasks(self) -> None:
        """Cancel what still runs on the loop (calls that raced the stop) and wait until it
        has ended, as ``asyncio.run`` does; a turn of the loop even with no task left, so
        the answers already scheduled run."""
        tasks = asyncio.all_tasks(self.loop) - {asyncio.current_task(self.loop)}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run_to_end(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` on the stopped loop; a subscriber's ``SystemExit`` again only logged."""
        try:
            self.loop.run_until_complete(work)
        except BaseException as error:
            _log.error("core.thread_stopped", error=type(error).__name__)


def _quiet_about_stopping(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    if not isinstance(context.get("exception"), SystemExit | KeyboardInterrupt):
        loop.default_exception_handler(context)


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

    Use it as a context manager, or call ``close()``. Calling it from a thread that runs an
    event loop is refused with ``ReentrantCallError``: async code uses ``MimiCore``.

    A subscriber that raises ``SystemExit`` or ``KeyboardInterrupt`` (``sys.exit()`` when the
    session ends, say) asks the program to stop, and it is not isolated like an error: as in
    an async app, it ends the core's loop, and so the core (``core.thread_stopped`` is logged).
    Every call waiting then raises that same exception (so does a dispatched command's
    future), so a script blocked in a call stops as the subscriber asked; later calls raise
    ``CoreClosedError``, and ``close()`` returns.
    """

    def __init__(self, core: MimiCore, loop: _LoopThread) -> None:
        self._core = core
        self._loop = loop
        loop.close_at_once = lambda: core.close(grace_period=0)
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
        """Close the core as ``MimiCore.close`` does, then stop its thread. Idempotent, and
        safe from several threads at once: each returns once the core is closed. Calls
        racing it either run or raise ``CoreClosedError``."""
        if grace_period is not None:  # refused here: the loop must not stop unclosed
            check_seconds("grace_period", grace_period)
        if not self._loop.claim_close(close_work := self._core.close(grace_period=grace_period)):
            return
        try:
            self._loop.call(close_work)
        except CoreClosedError:
            pass  # the thread ended first (a subscriber's SystemExit): closed all the same
        except BaseException as error:
            if error is not self._loop.fatal:
                raise  # the subscriber's SystemExit ended the thread as this close began
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

    def authenticate_anonymous_user(self, anonymous_id: str | None) -> AnonymousLogInResult:
        """Log in ``anonymous_id`` if it is set; never raises a ``MimiCoreError``."""
        return self._loop.call(self._manager.authenticate_anonymous_user(anonymous_id))
