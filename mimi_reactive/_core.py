"""``MimiCore``: the entry point an app starts and closes."""

from __future__ import annotations

import asyncio
import functools
import time
import warnings
from collections.abc import Callable, Coroutine, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._auth import AuthController
from ._backend import AuthBackend, ClientCredentials, OriginBackend
from ._checks import check_clock, check_seconds, checked_clock
from ._config import MimiConfiguration
from ._exceptions import OtherOriginSessionError, WrongEventLoopError
from ._file_storage import FileSessionStorage
from ._keeper import SessionKeeper
from ._lifetime import CoreLifetime
from ._log import Log
from ._storage import MemorySessionStorage, SessionStorage, storage_failed
from ._store import SessionStore

__all__ = ["MimiCore", "StartingCore"]

_log = Log("mimi_reactive.session")


class MimiCore:
    """One app's connection to its identity service and its session.

    Start it with ``await MimiCore.start(...)`` or ``async with MimiCore.start(...) as core``.
    """

    def __init__(
        self,
        *,
        auth: AuthController,
        store: SessionStore,
        backend: AuthBackend,
        configuration: MimiConfiguration,
        keeper: SessionKeeper,
        close_grace_period: float,
    ) -> None:
        self.auth = auth
        """Authentication and the session stream."""
        self.configuration = configuration
        self._store = store
        self._backend = backend
        self._keeper = keeper
        self._close_grace_period = close_grace_period
        self._lifetime = auth._lifetime  # once it is dropped (with auth) unclosed: released

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
    ) -> StartingCore:
        """Connect ``backend`` for this app and restore the session ``storage`` holds.

        ``client_id`` and ``client_secret`` are the app's credentials at a service that
        wants them (the reference server's ``HttpBackend`` does; ``FirebaseBackend`` holds
        its API key itself and needs neither).

        It returns once the stored session is restored, so the first state anyone sees is
        ``RESTORED`` with its user, or ``INITIAL`` with nobody: never a logged-out flash.
        Without ``storage`` the session lives in memory and ends with the process.
        ``close_grace_period`` is how long closing waits at most for a running command and
        for background revocations (a log-out made offline), in seconds.
        ``clock`` is the wall clock token lifetimes are measured on (tests may pass their own);
        it is read here, and one that raises or gives no time since the epoch (NaN, a str)
        raises ``ConfigurationError`` naming the clock; so does a command that reads a clock
        gone wrong since, before any call to the service (the session is kept as it was).
        An argument of the wrong type (a URL for ``backend``, a path for ``storage``) raises
        ``TypeError``; a negative or NaN duration, or a blank ``client_id`` or
        ``client_secret``, ``ConfigurationError``: all before anything starts. A storage that
        cannot load (the OS refuses to read the session file) raises ``SessionStorageError``
        naming the storage and the OS's reason, the ``OSError`` chained.
        """
        check_seconds("close_grace_period", close_grace_period)
        client = ClientCredentials(client_id, client_secret)
        # A class has the methods too: HttpBackend without its "(url)" is refused as well.
        if isinstance(backend, type) or not isinstance(backend, AuthBackend):
            raise TypeError(
                f"backend must be an AuthBackend such as HttpBackend(url), not "
                f"{type(backend).__name__}"
            )
        if storage is not None and (
            isinstance(storage, type) or not isinstance(storage, SessionStorage)
        ):
            raise TypeError(
                f"storage must be a SessionStorage such as FileSessionStorage(path), not "
                f"{type(storage).__name__}"
            )
        if configuration is not None and not isinstance(configuration, MimiConfiguration):
            raise TypeError(
                f"configuration must be a MimiConfiguration, not {type(configuration).__name__}"
            )
        if not callable(clock):
            raise TypeError(f"clock must be callable, like time.time; got {type(clock).__name__}")
        check_clock(clock)
        return StartingCore(
            functools.partial(
                cls._start,
                client=client,
                backend=backend,
                configuration=configuration or MimiConfiguration(),
                storage=storage if storage is not None else MemorySessionStorage(),
                close_grace_period=close_grace_period,
                clock=clock,
            )
        )

    @classmethod
    async def _start(
        cls,
        *,
        client: ClientCredentials,
        backend: AuthBackend,
        configuration: MimiConfiguration,
        storage: SessionStorage,
        close_grace_period: float,
        clock: Callable[[], float],
    ) -> MimiCore:
        # The file says whose session it holds; a backend that names no origin leaves the
        # one the app may have set on the storage.
        if isinstance(storage, FileSessionStorage) and isinstance(backend, OriginBackend):
            storage.origin = backend.origin(client)
        try:
            restored = await storage.load()
        except OtherOriginSessionError:
            # Another app's (or this app's under another base URL or client id): never
            # restored, its tokens never sent here, and left stored (a save replaces it).
            _log.warning("session.other_origin_not_restored")
            restored = None
        except OSError as error:  # the app hears which storage and why, typed as every fault
            raise storage_failed("load", storage, error) from error
        if (
            restored is not None
            and configuration.allow_anonymous_user_only
            and not restored.user.is_anonymous
        ):
            # Stored by another process that allows credentials: never held here.
            _log.warning("session.not_anonymous_not_restored")
            restored = None
        await backend.open(client)
        store = SessionStore(
            backend=backend,
            storage=storage,
            configuration=configuration,
            restored=restored,
            clock=checked_clock(clock),  # one gone wrong since is the clock's error, typed
        )
        keeper = SessionKeeper(store, storage=storage)
        return cls(
            auth=AuthController(store, CoreLifetime(store, keeper, close_grace_period)),
            store=store,
            backend=backend,
            configuration=configuration,
            keeper=keeper,
            close_grace_period=close_grace_period,
        )

    async def close(self, *, grace_period: float | None = None) -> None:
        """Close the session and release the backend. Idempotent.

        Queued commands fail with ``CoreClosedError``; the running one has ``grace_period``
        seconds (default: the one given to ``start``) to finish before it is cancelled (its
        caller then gets ``CoreClosedError``), and background revocations as long again. A
        storage write it runs then gets up to ``max(grace_period, 5)`` seconds more to end, so
        the last state and the storage agree; one that hangs is abandoned (logged
        ``session.close_abandoned_write``) and the storage may hold either session.
        The streams complete; later calls raise ``CoreClosedError``. In a process forked from
        the one that started the core, it does nothing, and calls raise ``CoreClosedError``
        at once: start a core after forking. A session (or log-out)
        the storage failed to keep is saved once more (a failure again is logged: the app was
        told the first time), so a restart does not present a spent refresh token.

        Commands are refused from the moment it begins. A close cancelled midway (a timeout
        around it) raises that cancellation at once, whatever it waited for (the running
        command, even one it had cancelled already, is not waited for further: it ends in
        its own time, its caller gets its outcome or ``CoreClosedError``, and the streams
        complete as it ends); the backend stays open, and a later ``close()`` finishes the
        job (until one does, the core counts as never closed). A subscriber's ``SystemExit``
        that stops the core's loop as it closes releases the backend all the same.

        Awaited on another event loop it raises ``WrongEventLoopError`` while the core runs
        on its own; once the core is closed, or its loop has ended, it returns at once,
        releasing the backend if that loop ended without ``asyncio.run``'s clean-up (which
        releases it itself).
        """
        if grace_period is not None:
            check_seconds("grace_period", grace_period)
        store = self._store
        if store.forked:
            return  # the parent's to close: closing the copies of its connections would not do
        if asyncio.get_running_loop() is not store.loop:
            await self._close_elsewhere()
            return
        store.begin_close()  # before any wait: a close cancelled midway runs nothing more
        grace = self._close_grace_period if grace_period is None else grace_period
        await self._keeper.close()
        await store.close(grace_period=grace)
        await store.close_backend()  # unless the worker released it (a subscriber's exit)
        self._lifetime.closed = True

    async def _close_elsewhere(self) -> None:
        """``close()`` awaited off the core's loop: refused while that loop runs the core;
        otherwise nothing is left to wait for there. Of a loop closed without its tasks'
        clean-up, only the backend is released, on this loop: aiohttp's session lets go of
        its pooled connections without their loop (their sockets close as they are freed)."""
        error = self._store.other_loop_error()
        if isinstance(error, WrongEventLoopError):
            raise error
        self._lifetime.closed = True
        if self._store.loop.is_closed():
            await self._store.release()

    async def __aenter__(self) -> MimiCore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


_CORE_NAMES = frozenset(
    [name for name in dir(MimiCore) if not name.startswith("_")] + ["auth", "configuration"]
)
"""What an app reads on a core: read on a ``StartingCore``, an ``await`` was forgotten."""


class StartingCore:
    """A ``MimiCore`` being started, as ``MimiCore.start`` returns it: ``await`` it for the
    core (then close it yourself), or use it once with ``async with`` for a core closed when
    the block ends. Nothing starts until then; the arguments were checked already.

    It starts one core: used a second time it raises ``RuntimeError`` saying so. Never used,
    it warns (``RuntimeWarning``) as a coroutine never awaited does."""

    def __init__(self, start: Callable[[], Coroutine[Any, Any, MimiCore]]) -> None:
        self._start: Callable[[], Coroutine[Any, Any, MimiCore]] | None = start
        self._core: MimiCore | None = None

    def __await__(self) -> Generator[Any, None, MimiCore]:
        """Start the core and return it."""
        return self._starting().__await__()

    async def __aenter__(self) -> MimiCore:
        """Start the core and return it; the block's end closes it."""
        self._core = await self._starting()
        return self._core

    def _starting(self) -> Coroutine[Any, Any, MimiCore]:
        """The start, made once: the coroutine of ``MimiCore.start``'s work."""
        start, self._start = self._start, None
        if start is None:
            raise RuntimeError(
                "this MimiCore.start(...) was awaited already, and it starts one core: use the "
                "core it gave, or call MimiCore.start(...) again for another"
            )
        return start()

    if not TYPE_CHECKING:  # declared, it would let a type checker pass ``start(...).auth``

        def __getattr__(self, name: str) -> Any:
            # Only for names this class lacks: ``core = MimiCore.start(...)`` without
            # ``await``, then ``core.auth``, would say only that it has no ``auth``.
            message = f"{type(self).__name__!r} object has no attribute {name!r}"
            if name in _CORE_NAMES:
                message += (
                    ": MimiCore.start(...) gives a core once awaited "
                    "(`core = await MimiCore.start(...)`) or entered "
                    "(`async with MimiCore.start(...) as core:`)"
                )
            raise AttributeError(message, name=name, obj=self)

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if getattr(self, "_start", None) is not None:
            _warn(
                "MimiCore.start(...) was never awaited: `await` it, or use it with `async with`",
                RuntimeWarning,
                stacklevel=2,
            )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._core is not None:
            await self._core.close()
