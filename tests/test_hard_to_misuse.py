"""The client is quiet by default and hard to misuse: what a new user would trip over (the
library's logging, the core awaited on the wrong loop, an observer that is not one, a core
never closed). Wrong arguments are in test_wrong_arguments.py."""

from __future__ import annotations

import asyncio
import gc
import textwrap
import threading
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mimi_reactive import (
    AuthRoute,
    LogOut,
    MimiCore,
    Transition,
    WrongEventLoopError,
)
from mimi_reactive.testing import Reply, ScriptedBackend

from .helpers import run_python

T = TypeVar("T")

A_WHOLE_FLOW = """
import asyncio, sys
from mimi_reactive import (
    AnonymousAuthManager, AuthRoute, FileSessionStorage, MimiConfiguration, MimiCore,
)
from mimi_reactive.testing import ScriptedBackend

def faulty(state):
    raise ValueError("a subscriber bug")

async def main(path):
    backend = ScriptedBackend()
    async with MimiCore.start(
        client_id="app", client_secret="secret", backend=backend,
        configuration=MimiConfiguration(allow_anonymous_user_only=True),
        storage=FileSessionStorage(path),
    ) as core:
        core.auth.states.subscribe(faulty)
        manager = AnonymousAuthManager(core)
        await manager.authenticate_anonymous_user(None)
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        await core.auth.refresh()
        await core.auth.log_out()
        await manager.authenticate_anonymous_user(user.anonymous_id)
        await manager.authenticate_anonymous_user("an-id-nobody-has-000000")
        await core.auth.run(AuthRoute.log_in(email="a@b.test", password="password1"))

asyncio.run(main(sys.argv[1]))
"""


def test_a_whole_flow_writes_nothing_when_the_app_configured_no_logging(tmp_path: Path) -> None:
    """In a fresh process with no logging configured, the library prints nothing at all,
    even for failures and a raising subscriber."""
    done = run_python("-c", A_WHOLE_FLOW, str(tmp_path / "session.json"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == ""


def test_configured_logging_shows_the_library_events(tmp_path: Path) -> None:
    """An app that configures logging sees the library's events, tracebacks included."""
    script = "import logging; logging.basicConfig(level=logging.DEBUG)\n" + A_WHOLE_FLOW
    done = run_python("-c", script, str(tmp_path / "session.json"))
    assert done.returncode == 0, done.stderr
    assert "mimi_reactive.session:session.command" in done.stderr
    assert "stream.subscriber_failed" in done.stderr
    assert "in faulty" in done.stderr  # the subscriber's own frame
    assert "ValueError: a subscriber bug" in done.stderr


async def test_dispatch_is_awaitable_and_waitable_from_threads() -> None:
    """What dispatch returns can be awaited on the loop and waited on from a thread."""
    async with MimiCore.start(client_id="a", client_secret="s", backend=ScriptedBackend()) as core:
        future = core.auth.dispatch(AuthRoute.sign_up_anonymously())
        outcome = await future
        assert outcome.state.transition is Transition.ANONYMOUS_CREATED
        later = core.auth.dispatch(LogOut())
        from_thread = await asyncio.to_thread(later.result, 10)
        assert from_thread.state.transition is Transition.LOGGED_OUT


async def _first_update(core: MimiCore) -> object:
    async for state in core.auth.updates():
        return state
    return None


# Every awaitable entry point, awaited on a loop other than the core's.
ON_ANOTHER_LOOP: dict[str, Callable[[MimiCore, str], Awaitable[object]]] = {
    "access_token": lambda core, _: core.auth.access_token(),
    "authenticate": lambda core, other: core.auth.authenticate(AuthRoute.log_in_anonymously(other)),
    "close": lambda core, _: core.close(),
    "delete_account": lambda core, _: core.auth.delete_account(),
    "log_out": lambda core, _: core.auth.log_out(),
    "refresh": lambda core, _: core.auth.refresh(),
    "run": lambda core, _: core.auth.run(LogOut()),
    "updates": lambda core, _: _first_update(core),
}


@pytest.mark.parametrize("call", ON_ANOTHER_LOOP.values(), ids=ON_ANOTHER_LOOP.keys())
def test_awaiting_the_core_on_another_loop_is_refused_before_anything_is_queued(
    call: Callable[[MimiCore, str], Awaitable[object]],
) -> None:
    """A core awaited from a loop it does not run on raises WrongEventLoopError pointing to
    dispatch(), and nothing is queued: the state and the backend's calls stay as they were."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    backend = ScriptedBackend()
    other = backend.add_anonymous_user().anonymous_id

    def on_the_core_loop(work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, loop).result(10)

    async def start() -> MimiCore:
        return await MimiCore.start(client_id="a", client_secret="s", backend=backend)

    core = on_the_core_loop(start())
    try:
        user = on_the_core_loop(core.auth.authenticate(AuthRoute.sign_up_anonymously()))
        before = (core.auth.state, list(backend.calls))

        async def elsewhere() -> None:
            with pytest.raises(WrongEventLoopError, match=r"core\.auth\.dispatch"):
                await call(core, other or "")

        asyncio.run(elsewhere())
        # Behind anything queued, a command that changes nothing (already logged in).
        on_the_core_loop(core.auth.run(AuthRoute.log_in_anonymously(user.anonymous_id)))
        assert (core.auth.state, backend.calls) == before
    finally:
        on_the_core_loop(core.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_the_wrong_loop_error_is_a_runtime_error_too() -> None:
    """Code that caught asyncio's RuntimeError for a foreign loop still catches ours."""
    assert issubclass(WrongEventLoopError, RuntimeError)


async def test_an_object_that_is_not_an_observer_is_refused_when_added() -> None:
    """add_observer(print) fails at once with a TypeError saying what is needed."""
    async with MimiCore.start(client_id="a", client_secret="s", backend=ScriptedBackend()) as core:
        with pytest.raises(TypeError, match="auth_controller_did_update"):
            core.auth.add_observer(print)  # type: ignore[arg-type]


async def test_the_close_grace_period_is_set_where_the_core_starts() -> None:
    """With a short grace period given to start, leaving the block after an offline log-out
    does not wait out the default 10 seconds."""
    backend = ScriptedBackend()
    backend.script(Reply.never(only_for=("revoke",)))
    async with asyncio.timeout(5):  # a bound on a hang, far below the 10 s default
        async with MimiCore.start(
            client_id="a", client_secret="s", backend=backend, close_grace_period=0.05
        ) as core:
            await core.auth.authenticate(AuthRoute.sign_up_anonymously())
            await core.auth.log_out()
            assert core.auth.current_user is None  # the log-out did not wait for the service
    assert backend.calls[-1] == "revoke"


def test_a_core_never_closed_warns_with_our_own_message() -> None:
    """Forgetting close() gives one ResourceWarning that says what to do, and the core's
    connections are released instead of reported leaked by aiohttp."""
    script = textwrap.dedent(
        """
        import asyncio, gc, secrets
        from mimi_reactive import AuthRoute, MimiConfiguration, MimiCore
        from mimi_reactive.backends.http import HttpBackend
        from mimi_reactive.server import IdentityServer

        async def main():
            secret = secrets.token_urlsafe(32)
            async with IdentityServer(client_id="a", client_secret=secret) as server:
                core = await MimiCore.start(
                    client_id="a", client_secret=secret, backend=HttpBackend(server.url),
                    configuration=MimiConfiguration(allow_anonymous_user_only=True),
                )
                await core.auth.authenticate(AuthRoute.sign_up_anonymously())
                del core
                gc.collect()
                await asyncio.sleep(0)  # the release is scheduled on this loop
                def releasing():
                    return [t for t in asyncio.all_tasks() if t.get_name().endswith("release")]
                while releasing():  # the app goes on running; wait for the release to end
                    await asyncio.wait(releasing())

        asyncio.run(main())
        print("exited")
        """
    )
    done = run_python("-W", "always::ResourceWarning", "-c", script)
    assert done.returncode == 0, done.stderr
    assert "exited" in done.stdout
    assert done.stderr.count("ResourceWarning: a MimiCore was never closed") == 1, done.stderr
    assert "async with MimiCore.start" in done.stderr
    assert "Unclosed" not in done.stderr + done.stdout


async def test_a_core_the_app_holds_only_the_controller_of_closes_only_with_it() -> None:
    """An app that keeps only core.auth keeps the core open (released under it, its calls
    would raise CoreClosedError); once it drops auth too, the core warns and is released,
    at once: no cycle waits for the collector."""
    released = asyncio.Event()  # the release completes the streams
    gc.disable()  # what is freed must be freed by its last reference going
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            core = await MimiCore.start(backend=ScriptedBackend())
            auth = core.auth
            auth.states.subscribe(on_completed=released.set)
            del core
            gc.collect()
            assert await auth.authenticate(AuthRoute.sign_up_anonymously()) == auth.current_user
            assert caught == []
            del auth
            assert [str(warning.message).split(":")[0] for warning in caught] == [
                "a MimiCore was never closed"
            ]
        async with asyncio.timeout(10):
            await released.wait()
    finally:
        gc.enable()


@pytest.mark.parametrize("name", ["auth", "close", "configuration"])
async def test_a_start_used_as_the_core_says_to_await_it(name: str) -> None:
    """A core's attribute read on MimiCore.start(...) not awaited (a forgotten await) raises
    an AttributeError that says to await it or enter it; any other name gets Python's own."""
    starting = MimiCore.start(backend=ScriptedBackend())
    with pytest.raises(AttributeError, match=r"await MimiCore\.start\(\.\.\.\)") as raised:
        getattr(starting, name)
    assert raised.value.name == name
    with pytest.raises(AttributeError) as other:
        starting.nothing_of_a_core  # type: ignore[attr-defined]  # noqa: B018
    assert str(other.value) == "'StartingCore' object has no attribute 'nothing_of_a_core'"
    assert not hasattr(starting, "__iter__")  # protocols probed by hasattr still say no
    async with starting:
        pass


def test_the_in_process_server_is_silent_too_until_logging_is_configured() -> None:
    """The reference server run in-process writes nothing unless the app configures logging."""
    script = textwrap.dedent(
        """
        import asyncio, secrets, sys
        from mimi_reactive import AuthRoute, MimiConfiguration, MimiCore
        from mimi_reactive.backends.http import HttpBackend
        from mimi_reactive.server import IdentityServer

        async def main():
            secret = secrets.token_urlsafe(32)
            async with IdentityServer(client_id="a", client_secret=secret) as server:
                async with MimiCore.start(
                    client_id="a", client_secret=secret, backend=HttpBackend(server.url),
                    configuration=MimiConfiguration(allow_anonymous_user_only=True),
                ) as core:
                    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
                    await core.auth.log_out()
                    await core.auth.run(AuthRoute.log_in_anonymously("no-such-id-000000000000"))

        if len(sys.argv) > 1:
            import logging
            logging.basicConfig(level=logging.DEBUG)
        asyncio.run(main())
        """
    )
    quiet = run_python("-c", script)
    assert quiet.returncode == 0, quiet.stderr
    assert (quiet.stdout, quiet.stderr) == ("", "")
    loud = run_python("-c", script, "--log")
    assert "mimi_reactive.server:event='server.started'" in loud.stderr
