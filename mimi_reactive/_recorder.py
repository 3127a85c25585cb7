"""``StateRecorder``: capture what a core publishes, for assertions."""

from __future__ import annotations

import asyncio
from types import TracebackType

from ._core import MimiCore
from ._state import SessionState, Transition
from ._user import MimiUser

__all__ = ["StateRecorder"]


class StateRecorder:
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
    """

    def __init__(self, core: MimiCore) -> None:
        if not isinstance(core, MimiCore):
            raise TypeError(f"core must be a MimiCore, not {type(core).__name__}")
        self.states: list[SessionState] = []
        self.completed = False
        self.stopped = False
        self._waiters: list[asyncio.Future[None]] = []
        self._subscription = core.auth.states.subscribe(self._record, on_completed=self._end)

    @property
    def transitions(self) -> list[Transition]:
        """The transition of each recorded state."""
        return [state.transition for state in self.states]

    @property
    def users(self) -> list[MimiUser | None]:
        """The user of each recorded state."""
        return [state.user for state in self.states]

    async def wait_for(self, transition: Transition) -> SessionState:
        """Wait until a state with ``transition`` has been recorded; return the first.

        Raises ``AssertionError`` if the core closes or the recorder stops first. Bound the
        wait with ``asyncio.timeout``.
        """

        def found() -> SessionState | None:
            return next((s for s in self.states if s.transition is transition), None)

        while (state := found()) is None:
            if self.completed:
                raise AssertionError(f"the core closed without a {transition.name} state")
            if self.stopped:
                raise AssertionError(f"the recorder stopped without a {transition.name} state")
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        return state

    def stop(self) -> None:
        """Stop recording; what was recorded stays, and a ``wait_for`` still waiting for a
        state it did not record raises."""
        self._subscription.dispose()
        self.stopped = True
        self._notify()

    def __enter__(self) -> StateRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _record(self, state: SessionState) -> None:
        self.states.append(state)
        self._notify()

    def _end(self) -> None:
        self.completed = True
        self._notify()

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
