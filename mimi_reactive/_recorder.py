"""``StateRecorder`` and ``BlockingStateRecorder``: capture what a core publishes, for
assertions."""

from __future__ import annotations

import asyncio
import threading
import time
from types import TracebackType
from typing import Self

import reactivex

from ._blocking import BlockingMimiCore
from ._checks import check_seconds, core_of_the_other_kind
from ._core import MimiCore
from ._exceptions import ReentrantCallError
from ._state import SessionState, Transition
from ._user import MimiUser

__all__ = ["BlockingStateRecorder", "StateRecorder"]


class _Recording:
    """What both recorders share: the subscription, the states it recorded, and its end.

    A ``BlockingMimiCore`` publishes on its own thread while the test reads and waits on
    another, so everything recorded is guarded by one condition (uncontended for a
    ``StateRecorder``, whose states arrive on the thread that reads them).
    """

    def __init__(self, states: reactivex.Observable[SessionState]) -> None:
        self._changed = threading.Condition()
        self._states: list[SessionState] = []
        self._completed = False
        self._stopped = False
        # Subscribing replays the current state at once: everything above is ready for it.
        self._subscription = states.subscribe(self._record, on_completed=self._end)

    @property
    def transitions(self) -> list[Transition]:
        """The transition of each recorded state."""
        return [state.transition for state in self.states]

    @property
    def users(self) -> list[MimiUser | None]:
        """The user of each recorded state."""
        return [state.user for state in self.states]

    @property
    def states(self) -> list[SessionState]:
        """Every recorded state, in the order the core published them (the list itself,
        which grows as states come)."""
        return self._states

    @property
    def completed(self) -> bool:
        """Whether the core closed (ending its states) while recording."""
        return self._completed

    @property
    def stopped(self) -> bool:
        """Whether ``stop()`` ended the recording."""
        return self._stopped

    def stop(self) -> None:
        """Stop recording; what was recorded stays, and a ``wait_for`` still waiting for a
        state it did not record raises."""
        self._subscription.dispose()
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        self._woken()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _first(self, transition: Transition) -> SessionState | None:
        """The first recorded state with ``transition``, None while one may still come;
        raises ``AssertionError`` once none can. Called holding ``_changed``."""
        state = next((s for s in self._states if s.transition is transition), None)
        if state is None and self._completed:
            raise AssertionError(f"the core closed without a {transition.name} state")
        if state is None and self._stopped:
            raise AssertionError(f"the recorder stopped without a {transition.name} state")
        return state

    def _record(self, state: SessionState) -> None:
        with self._changed:
            if self._stopped:  # published on the core's thread as stop() disposed
                return
            self._states.append(state)
            self._changed.notify_all()
        self._woken()

    def _end(self) -> None:
        with self._changed:
            self._completed = True
            self._changed.notify_all()
        self._woken()

    def _woken(self) -> None:
        """Something was recorded or the recording ended: wake what waits another way."""


class StateRecorder(_Recording):
    """Records every state ``core`` publishes from now on, the current state first.

    Use it as a context manager, or call ``stop()``:

    ```python
    import asyncio

    from mimi_reactive import AuthRoute, MimiCore, Transition
    from mimi_reactive.testing import ScriptedBackend, StateRecorder


    async def main() -> None:
        backend = ScriptedBackend()
        async with MimiCore.start(client_id="a", client_secret="s", backend=backend) as core:
            with StateRecorder(core) as recorder:
                await core.auth.authenticate(AuthRoute.sign_up_anonymously())
            assert recorder.transitions == [Transition.INITIAL, Transition.ANONYMOUS_CREATED]


    asyncio.run(main())
    ```

    A ``BlockingMimiCore`` is recorded by ``BlockingStateRecorder``.
    """

    def __init__(self, core: MimiCore) -> None:
        if not isinstance(core, MimiCore):
            raise TypeError(
                core_of_the_other_kind(core, MimiCore, BlockingMimiCore, "BlockingStateRecorder")
            )
        self._waiters: list[asyncio.Future[None]] = []
        super().__init__(core.auth.states)

    async def wait_for(self, transition: Transition) -> SessionState:
        """Wait until a state with ``transition`` has been recorded; return the first.

        Raises ``AssertionError`` if the core closes or the recorder stops first. Bound the
        wait with ``asyncio.timeout``.
        """
        while True:
            with self._changed:
                state = self._first(transition)
                if state is not None:
                    return state
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
            await waiter

    def _woken(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class BlockingStateRecorder(_Recording):
    """Records every state a ``BlockingMimiCore`` publishes from now on, the current state
    first, for tests of code that is not async; ``wait_for`` blocks, up to a timeout.

    The core publishes on its own thread: the recorder may be read and waited on from any
    other. Use it as a context manager, or call ``stop()``:

    ```python
    from mimi_reactive import AuthRoute, BlockingMimiCore, Transition
    from mimi_reactive.testing import BlockingStateRecorder, ScriptedBackend

    backend = ScriptedBackend()
    with BlockingMimiCore.start(client_id="a", client_secret="s", backend=backend) as core:
        with BlockingStateRecorder(core) as recorder:
            core.auth.dispatch(AuthRoute.sign_up_anonymously())  # does not wait
            created = recorder.wait_for(Transition.ANONYMOUS_CREATED, timeout=5)
        assert created.user == core.auth.current_user
        assert recorder.transitions == [Transition.INITIAL, Transition.ANONYMOUS_CREATED]
    ```

    A ``MimiCore`` is recorded by ``StateRecorder``.
    """

    def __init__(self, core: BlockingMimiCore) -> None:
        if not isinstance(core, BlockingMimiCore):
            raise TypeError(
                core_of_the_other_kind(core, BlockingMimiCore, MimiCore, "StateRecorder")
            )
        self._core_thread = core._loop.thread
        super().__init__(core.auth.states)

    @property
    def states(self) -> list[SessionState]:
        """Every state recorded so far, in the order the core published them (a copy: the
        core's thread adds to the recording meanwhile)."""
        with self._changed:
            return list(self._states)

    def wait_for(self, transition: Transition, *, timeout: float = 10.0) -> SessionState:
        """Block until a state with ``transition`` has been recorded; return the first.

        Raises ``AssertionError`` if the core closes or the recorder stops first, or if
        ``timeout`` seconds pass without one; ``ReentrantCallError`` on the core's own
        thread (a subscriber's), where the state could never come while it waits.
        """
        check_seconds("timeout", timeout)
        if threading.current_thread() is self._core_thread:
            raise ReentrantCallError(
                "wait_for on the core's own thread (a subscriber, say) would block the "
                "states it waits for; wait on another thread"
            )
        deadline = time.monotonic() + timeout
        with self._changed:
            while (state := self._first(transition)) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {transition.name} state within {timeout:g} s")
                self._changed.wait(remaining)
        return state
