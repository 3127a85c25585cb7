"""Closing misused: a core whose event loop ended unclosed, a close() cancelled midway, and a
start awaited twice or never. The calls on another loop of a running core are in
test_hard_to_misuse.py."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Awaitable, Callable

import pytest

from mimi_reactive import AuthRoute, CoreClosedError, LogOut, MimiCore, Session, StartingCore
from mimi_reactive.server import IdentityServer
from mimi_reactive.testing import ScriptedBackend

from .conftest import CLIENT_ID
from .helpers import SIGN_UP, run_python
from .test_hard_to_misuse import ON_ANOTHER_LOOP

# The app forgets close(): the core outlives its loop, ended one of two ways.
FORGOTTEN = """
import asyncio, gc, sys
from mimi_reactive import AuthRoute, CoreClosedError, MimiConfiguration, MimiCore
from mimi_reactive.backends.http import HttpBackend

url, client_id, secret, ended_by, then = sys.argv[1:]

async def main():
    core = await MimiCore.start(
        client_id=client_id, client_secret=secret, backend=HttpBackend(url),
        configuration=MimiConfiguration(allow_anonymous_user_only=True),
    )
    await core.auth.authenticate(AuthRoute.sign_up_anonymously())  # a pooled connection
    return core

async def later(core):
    try:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    except CoreClosedError:
        print("refused")
    if then == "close":
        await core.close()
        await core.close()
        print("closed")

if ended_by == "asyncio.run":  # its clean-up cancels the core's tasks
    core = asyncio.run(main())
else:  # a loop closed by hand: no clean-up ran
    loop = asyncio.new_event_loop()
    core = loop.run_until_complete(main())
    loop.close()
asyncio.run(later(core))
del core
gc.collect()
print("exited")
"""


@pytest.mark.parametrize(
    ("ended_by", "then"),
    [("asyncio.run", "close"), ("asyncio.run", "forget"), ("by-hand", "close")],
)
async def test_a_core_whose_loop_ended_refuses_commands_and_leaks_nothing(
    server: IdentityServer, client_secret: str, ended_by: str, then: str
) -> None:
    """A core whose loop ended unclosed raises CoreClosedError, closes quietly from a new loop,
    and aiohttp reports nothing leaked; forgotten for good, only our warning says so."""
    script = textwrap.dedent(FORGOTTEN)
    arguments = (server.url, CLIENT_ID, client_secret, ended_by, then)
    done = await asyncio.to_thread(
        run_python, "-W", "always::ResourceWarning", "-c", script, *arguments
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused", *(["closed"] if then == "close" else []), "exited"]
    warned = done.stderr.count("ResourceWarning: a MimiCore was never closed")
    assert warned == (0 if then == "close" else 1), done.stderr
    assert "Unclosed" not in done.stderr, done.stderr  # aiohttp's session and connector
    if ended_by == "asyncio.run":  # not even a socket (closed by hand, asyncio reports its own)
        assert "unclosed" not in done.stderr, done.stderr


def _start_on_a_loop_that_ends() -> MimiCore:
    async def start() -> MimiCore:
        core = await MimiCore.start(client_id="a", client_secret="s", backend=ScriptedBackend())
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        return core

    return asyncio.run(start())


COMMANDS = {
    name: call for name, call in ON_ANOTHER_LOOP.items() if name not in ("close", "updates")
}


@pytest.mark.parametrize("call", COMMANDS.values(), ids=COMMANDS.keys())
def test_every_command_on_a_core_whose_loop_ended_raises_core_closed(
    call: Callable[[MimiCore, str], Awaitable[object]],
) -> None:
    """Awaited from a new loop once the core's loop ended, a command raises CoreClosedError,
    not WrongEventLoopError pointing to a dispatch() that would fail too."""
    core = _start_on_a_loop_that_ends()

    async def later() -> None:
        with pytest.raises(CoreClosedError):
            await call(core, "an-id-nobody-has-000000")
        with pytest.raises(CoreClosedError):
            await core.auth.dispatch(AuthRoute.sign_up_anonymously())
        with pytest.raises(CoreClosedError):
            core.auth.add_observer(_Observer())
        await core.close()  # the app closes it late: not warned of as never closed

    asyncio.run(later())


def test_close_and_updates_on_a_core_whose_loop_ended_end_at_once() -> None:
    """close() from a new loop returns (twice), and updates() ends there, as on a closed core."""
    core = _start_on_a_loop_that_ends()

    async def later() -> list[object]:
        await core.close()
        await core.close()
        return [state async for state in core.auth.updates()]

    assert asyncio.run(later()) == []


class _Observer:
    def auth_controller_did_update(self, *_: object) -> None:
        """Never called."""


class _ClosingBackend(ScriptedBackend):
    """A scripted backend that counts its closes."""

    closes = 0

    async def close(self) -> None:
        self.closes += 1


async def test_a_cancelled_close_refuses_commands_and_a_later_close_finishes() -> None:
    """A close() cancelled midway has already refused commands (CoreClosedError), and a
    later close() releases the backend."""
    backend = _ClosingBackend()
    core = await MimiCore.start(client_id="a", client_secret="s", backend=backend)
    closing = asyncio.create_task(core.close())
    await asyncio.sleep(0)  # it began, and waits for the keeper's tasks to end
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert backend.closes == 0
    with pytest.raises(CoreClosedError):
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    await core.close()
    assert backend.closes == 1


class _SlowToClose(ScriptedBackend):
    """A backend whose close waits until let go, counting the closes that finished."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = asyncio.Event()
        self.let_go = asyncio.Event()
        self.closed = 0

    async def close(self) -> None:
        self.closing.set()
        await self.let_go.wait()
        self.closed += 1


async def test_a_close_cancelled_as_the_backend_closes_leaves_it_to_finish() -> None:
    """A close() cancelled while the backend closes does not cut that close short: it goes
    on, and a later close() waits for it, so the backend ends closed, once."""
    backend = _SlowToClose()
    core = await MimiCore.start(client_id="a", client_secret="s", backend=backend)
    closing = asyncio.create_task(core.close())
    await backend.closing.wait()
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    later = asyncio.create_task(core.close())
    backend.let_go.set()
    await later
    assert backend.closed == 1


class _CancellationHeldUp(_ClosingBackend):
    """Its log-out everywhere waits at the service for ever; cancelled, it holds the command
    until let go, so a close() waits for it to end."""

    def __init__(self) -> None:
        super().__init__()
        self.at_the_service = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.let_go = asyncio.Event()

    async def revoke(self, session: Session, *, everywhere: bool = False) -> None:
        self.at_the_service.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.cancelled.set()
            await self.let_go.wait()


def _cancelled(core: MimiCore) -> tuple[asyncio.Task[None], Callable[[], object]]:
    """A task closing ``core``, and what cancels it."""
    closing = asyncio.create_task(core.close(grace_period=0))
    return closing, closing.cancel


def _timed_out(core: MimiCore) -> tuple[asyncio.Task[None], Callable[[], object]]:
    """A task closing ``core`` in an ``asyncio.timeout``, and what makes that expire."""
    timeouts: list[asyncio.Timeout] = []

    async def close() -> None:
        async with asyncio.timeout(None) as timeout:
            timeouts.append(timeout)
            await core.close(grace_period=0)

    loop = asyncio.get_running_loop()
    return asyncio.create_task(close()), lambda: timeouts[0].reschedule(loop.time())


# How the task closing the core is stopped, and what it then raises.
STOPPED_CLOSES = {
    "cancelled": (_cancelled, asyncio.CancelledError),
    "timed out": (_timed_out, TimeoutError),
}


@pytest.mark.parametrize(("close", "raised"), STOPPED_CLOSES.values(), ids=STOPPED_CLOSES.keys())
async def test_a_close_stopped_as_it_waits_for_the_command_it_cancelled_raises(
    close: Callable[[MimiCore], tuple[asyncio.Task[None], Callable[[], object]]],
    raised: type[BaseException],
) -> None:
    """A close() cancelled (or timed out) while it waits for the command it cancelled to end
    raises that at once, not taken for the command's cancellation and swallowed: the backend
    stays open, the command ends in its own time (its caller CoreClosedError, the streams
    complete), and a later close() closes the backend, once."""
    backend = _CancellationHeldUp()
    core = await MimiCore.start(backend=backend)
    await core.auth.authenticate(SIGN_UP)
    completed: list[bool] = []
    core.auth.states.subscribe(on_completed=lambda: completed.append(True))
    running = core.auth.dispatch(LogOut(everywhere=True))
    await backend.at_the_service.wait()
    closing, stop = close(core)
    await backend.cancelled.wait()  # the close cancelled the command and waits for its end
    stop()
    with pytest.raises(raised):
        await closing
    assert (backend.closes, completed) == (0, [])
    backend.let_go.set()
    with pytest.raises(CoreClosedError):
        await running
    assert completed == [True]
    await core.close()
    assert backend.closes == 1


async def _awaited(starting: StartingCore) -> None:
    core = await starting
    await core.close()


async def _entered(starting: StartingCore) -> None:
    async with starting:
        pass


USES = {"await": _awaited, "async with": _entered}


@pytest.mark.parametrize("second", USES.values(), ids=USES.keys())
@pytest.mark.parametrize("first", USES.values(), ids=USES.keys())
async def test_a_start_used_twice_says_it_starts_one_core(
    first: Callable[[StartingCore], Awaitable[None]],
    second: Callable[[StartingCore], Awaitable[None]],
) -> None:
    """Awaiting (or entering) MimiCore.start(...) a second time raises a RuntimeError that
    says what to do, not asyncio's "cannot reuse already awaited coroutine"."""
    starting = MimiCore.start(client_id="a", client_secret="s", backend=ScriptedBackend())
    await first(starting)
    with pytest.raises(RuntimeError, match=r"awaited already.*MimiCore\.start\(\.\.\.\) again"):
        await second(starting)


def test_a_start_never_awaited_warns_naming_the_public_call() -> None:
    """A MimiCore.start(...) never awaited warns naming it, not the private MimiCore._start."""
    starting = MimiCore.start(client_id="a", client_secret="s", backend=ScriptedBackend())
    with pytest.warns(RuntimeWarning, match=r"MimiCore\.start\(\.\.\.\) was never awaited"):
        del starting  # CPython frees it at once


# A subscriber's sys.exit() stops the core the app never closes, or closes as it runs
# ("close": close(grace_period=0) cancels a log-out everywhere held at the service, and the
# subscriber exits as its cleared storage is published; "completed": it exits as close()
# completes the streams): the backend is released all the same, once (counted), and aiohttp
# and asyncio report nothing leaked or unretrieved.
STOPPED_BY_A_SUBSCRIBER = """
import asyncio, gc, sys, threading
from mimi_reactive import AuthRoute, BlockingMimiCore, LogOut, MimiCore, Transition
from mimi_reactive.backends.http import HttpBackend

url, client_id, secret, core_kind, call = sys.argv[1:]
closes = []
at_the_service = threading.Event()

class Counting(HttpBackend):
    async def close(self):
        closes.append(1)
        await super().close()

    async def revoke(self, session, *, everywhere=False):
        if everywhere:  # held at the service until close() cancels it
            at_the_service.set()
            await asyncio.Event().wait()
        await super().revoke(session, everywhere=everywhere)

def exit_on_log_out(state):
    if state.transition is Transition.LOGGED_OUT:
        raise SystemExit("bye")

def exit_now():
    raise SystemExit("bye")

async def main():
    core = await MimiCore.start(client_id=client_id, client_secret=secret, backend=Counting(url))
    await core.auth.authenticate(AuthRoute.sign_up_anonymously())  # a pooled connection
    core.auth.states.subscribe(exit_on_log_out)
    if call == "close":
        core.auth.dispatch(LogOut(everywhere=True))
        await asyncio.to_thread(at_the_service.wait, 10)
        await core.close(grace_period=0)
    elif call == "completed":
        core.auth.states.subscribe(on_completed=exit_now)
        await core.close()
    else:
        await (core.auth.log_out() if call == "call" else core.auth.dispatch(LogOut()))

try:
    if core_kind == "async":
        asyncio.run(main())
    else:
        core = BlockingMimiCore.start(
            client_id=client_id, client_secret=secret, backend=Counting(url)
        )
        core.auth.authenticate(AuthRoute.sign_up_anonymously())
        core.auth.states.subscribe(exit_on_log_out)
        if call == "close":
            running = core.auth.dispatch(LogOut(everywhere=True))
            at_the_service.wait(10)
            core.close(grace_period=0)
            running.result(10)
        elif call == "completed":
            core.auth.states.subscribe(on_completed=exit_now)
            core.close()  # returns: the core stopped as it closed
        else:
            core.auth.log_out() if call == "call" else core.auth.dispatch(LogOut()).result(10)
except SystemExit as error:
    print("exited", error)
if core_kind == "blocking":
    core.close()
    del core
gc.collect()
print("closes", len(closes))
"""


@pytest.mark.parametrize("core_kind", ["async", "blocking"])
@pytest.mark.parametrize("call", ["call", "dispatch", "close", "completed"])
async def test_a_core_stopped_by_a_subscriber_exiting_releases_its_backend_once(
    server: IdentityServer, client_secret: str, core_kind: str, call: str
) -> None:
    """A subscriber's sys.exit() stopping a core's loop, unclosed or as close() runs (even as
    it completes the streams), closes its backend exactly once, and aiohttp reports no
    session, connection or socket leaked."""
    arguments = (server.url, CLIENT_ID, client_secret, core_kind, call)
    done = await asyncio.to_thread(
        run_python, "-X", "dev", "-c", textwrap.dedent(STOPPED_BY_A_SUBSCRIBER), *arguments
    )
    assert done.returncode == 0, done.stderr
    # A blocking close() returns when the core stops as it closes: nothing raises "bye".
    exited = [] if (core_kind, call) == ("blocking", "completed") else ["exited", "bye"]
    assert done.stdout.split() == [*exited, "closes", "1"], done.stderr
    assert "nclosed" not in done.stderr, done.stderr  # aiohttp's session, connector, sockets
    assert "never retrieved" not in done.stderr, done.stderr
