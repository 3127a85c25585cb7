"""The client is quiet by default and hard to misuse: what a new user would trip over."""

from __future__ import annotations

import asyncio
import math
import textwrap
import threading
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimi_reactive import (
    AnonymousAuthManager,
    AuthRoute,
    AuthTokens,
    BackendCapabilities,
    BackendSession,
    BlockingMimiCore,
    ClientCredentials,
    ConfigurationError,
    FileSessionStorage,
    LogOut,
    MimiConfiguration,
    MimiCore,
    MimiCoreError,
    MimiUser,
    RefreshPolicy,
    RetryPolicy,
    Session,
    SignUpAnonymously,
    Transition,
    TransportError,
    WrongEventLoopError,
)
from mimi_reactive._checks import LATEST_INSTANT, LONGEST_LIFETIME
from mimi_reactive.backends.firebase import FirebaseBackend
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.testing import Reply, ScriptedBackend, StateRecorder
from mimi_reactive.verify import AccessTokenVerifier

from .helpers import completed, run_python

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


# Wrong arguments: refused at once, naming the argument, before anything changes.

NOT_TEXT: list[object] = [123, b"secret-bytes", ["x"], 1.5, {"a": 1}]
NOT_FLAGS: list[object] = ["no", "", 1, 0, None]
NOT_SECONDS: list[object] = ["1", None, True, [1]]
BAD_SECONDS: list[object] = [-1, -0.001, math.nan, math.inf, -math.inf]
_ISSUED = BackendSession(MimiUser("u"), AuthTokens("a"))
BAD_TIMEOUTS: list[object] = [*BAD_SECONDS, 0, 0.0]  # 0 is no timeout at all to aiohttp
SURROUNDED: list[object] = [" app", "app ", "app\n", "\tapp"]
_ROUTE: dict[str, object] = {"email": "a@b.test", "password": "password1"}
_START = partial(MimiCore.start, backend=ScriptedBackend())
_BLOCKING_START = partial(BlockingMimiCore.start, backend=ScriptedBackend())
_VERIFIER: dict[str, object] = {"issuer": "http://h"}
BLANK_CREDENTIALS: list[object] = ["", "  ", "\n"]
# What MimiCore.start and BlockingMimiCore.start both refuse (the one check) before the core starts.
_EITHER_START: list[tuple[dict[str, object], str, list[object], type]] = [
    ({}, "backend", ["http://127.0.0.1:8080", None, HttpBackend], TypeError),
    ({}, "storage", ["session.json", {}, FileSessionStorage], TypeError),
    ({}, "client_id", ["", "app:admin", *SURROUNDED], ConfigurationError),
    ({"client_id": "app"}, "client_secret", [""], ConfigurationError),
]

# (constructor, its other arguments, the argument given wrong values, the values, the error)
_WRONG_ARGUMENTS: list[tuple[Callable[..., object], dict[str, object], str, list[object], type]] = [
    (AuthRoute.log_in_anonymously, {}, "anonymous_id", NOT_TEXT, TypeError),
    (ClientCredentials, {}, "client_id", NOT_TEXT, TypeError),
    (ClientCredentials, {}, "client_secret", NOT_TEXT, TypeError),
    (
        ClientCredentials,
        {},
        "client_id",
        [*BLANK_CREDENTIALS, "app:admin", *SURROUNDED],
        ConfigurationError,
    ),
    (ClientCredentials, {}, "client_secret", BLANK_CREDENTIALS, ConfigurationError),
    *(
        (route, _ROUTE, field, NOT_TEXT, TypeError)
        for route in (AuthRoute.log_in, AuthRoute.sign_up, AuthRoute.promote)
        for field in _ROUTE
    ),
    (LogOut, {}, "everywhere", NOT_FLAGS, TypeError),
    (MimiConfiguration, {}, "allow_anonymous_user_only", NOT_FLAGS, TypeError),
    (MimiConfiguration, {}, "detach_failing_subscribers", NOT_FLAGS, TypeError),
    (MimiConfiguration, {}, "refresh", [{}, None], TypeError),
    (MimiConfiguration, {}, "retry", [{}, None], TypeError),
    (RetryPolicy, {}, "initial_delay", NOT_SECONDS, TypeError),
    (RetryPolicy, {}, "initial_delay", BAD_SECONDS, ConfigurationError),
    (RetryPolicy, {}, "max_delay", NOT_SECONDS, TypeError),
    (RetryPolicy, {}, "max_delay", BAD_SECONDS, ConfigurationError),
    (RetryPolicy, {}, "max_attempts", [1.0, "3", True, None], TypeError),
    (RetryPolicy, {}, "max_attempts", [0, -1], ConfigurationError),
    (RetryPolicy, {"max_delay": 1}, "initial_delay", [1.001, 100], ConfigurationError),
    (RefreshPolicy, {}, "ahead", NOT_SECONDS, TypeError),
    (RefreshPolicy, {}, "ahead", [-0.1, 1, 1.5, math.nan, math.inf], ConfigurationError),
    (RefreshPolicy, {}, "leeway", NOT_SECONDS, TypeError),
    (RefreshPolicy, {}, "leeway", BAD_SECONDS, ConfigurationError),
    (RefreshPolicy, {}, "min_interval", NOT_SECONDS, TypeError),
    (RefreshPolicy, {}, "min_interval", [*BAD_SECONDS, 0, 0.0, 0.009], ConfigurationError),
    (_START, {}, "close_grace_period", NOT_SECONDS, TypeError),
    (_START, {}, "close_grace_period", BAD_SECONDS, ConfigurationError),
    (_START, {}, "configuration", [{}, "anonymous"], TypeError),
    (_START, {}, "clock", [5.0, None], TypeError),
    *(
        (start, others, argument, values, error)
        for start in (_START, _BLOCKING_START)
        for others, argument, values, error in _EITHER_START
    ),
    (HttpBackend, {}, "base_url", [123, None, b"http://h"], TypeError),
    (HttpBackend, {"base_url": "http://h"}, "timeout", NOT_SECONDS, TypeError),
    (HttpBackend, {"base_url": "http://h"}, "timeout", BAD_TIMEOUTS, ConfigurationError),
    (FirebaseBackend, {}, "api_key", [123, None, b"key"], TypeError),
    (FirebaseBackend, {}, "api_key", SURROUNDED, ConfigurationError),
    (FirebaseBackend, {"api_key": "k"}, "timeout", BAD_TIMEOUTS, ConfigurationError),
    (AnonymousAuthManager, {}, "core", [None, "core", ScriptedBackend()], TypeError),
    (StateRecorder, {}, "core", [None, "core", ScriptedBackend()], TypeError),
    # What a backend builds from the service's answer: its JSON copied as it came is refused
    # (ValueError, not ConfigurationError, for a value out of range: a backend's bug).
    (MimiUser, {}, "id", [*NOT_TEXT, None], TypeError),
    (MimiUser, {"id": "u"}, "anonymous_id", NOT_TEXT, TypeError),
    (MimiUser, {"id": "u"}, "email", NOT_TEXT, TypeError),
    (MimiUser, {"id": "u"}, "is_anonymous", NOT_FLAGS, TypeError),
    (AuthTokens, {}, "access_token", [*NOT_TEXT, None], TypeError),
    (AuthTokens, {"access_token": "a"}, "refresh_token", NOT_TEXT, TypeError),
    (AuthTokens, {"access_token": "a"}, "expires_in", ["3600", True, [1]], TypeError),
    (
        AuthTokens,
        {"access_token": "a"},
        "expires_in",
        [*BAD_SECONDS, LONGEST_LIFETIME + 1, 10**400],
        ValueError,
    ),
    (BackendSession, {"tokens": AuthTokens("a")}, "user", ["u", None, AuthTokens("a")], TypeError),
    (BackendSession, {"user": MimiUser("u")}, "tokens", ["t", None, MimiUser("u")], TypeError),
    (Session, {"tokens": AuthTokens("a"), "obtained_at": 0}, "user", ["u", None], TypeError),
    (Session, {"user": MimiUser("u"), "obtained_at": 0}, "tokens", ["t", None], TypeError),
    (
        Session,
        {"user": MimiUser("u"), "tokens": AuthTokens("a")},
        "obtained_at",
        NOT_SECONDS,
        TypeError,
    ),
    (
        Session,
        {"user": MimiUser("u"), "tokens": AuthTokens("a")},
        "obtained_at",
        [*BAD_SECONDS, LATEST_INSTANT * 2],
        ValueError,
    ),
    # A backend's session stamped with the local time: a clock that reads nonsense is refused.
    (Session.issued, {"issued": _ISSUED}, "obtained_at", NOT_SECONDS, TypeError),
    (
        Session.issued,
        {"issued": _ISSUED},
        "obtained_at",
        [*BAD_SECONDS, LATEST_INSTANT + 1.0, LATEST_INSTANT * 2],
        ValueError,
    ),
    (
        BackendCapabilities,
        {},
        "routes",
        [["x"], frozenset({"x"}), {SignUpAnonymously}, "SignUpAnonymously", None],
        TypeError,
    ),
    *(
        (BackendCapabilities, {}, flag, NOT_FLAGS, TypeError)
        for flag in ("refresh", "revoke", "revoke_everywhere", "delete")
    ),
    *(
        (AccessTokenVerifier, _VERIFIER, argument, values, error)
        for argument in ("leeway", "jwks_ttl", "jwks_max_stale", "timeout")
        for values, error in ((NOT_SECONDS, TypeError), (BAD_SECONDS, ConfigurationError))
    ),
    (AccessTokenVerifier, {}, "issuer", [None, 5, b"http://h"], TypeError),
    (
        AccessTokenVerifier,
        {},
        "issuer",
        ["", "not a url", "ftp://h", "http://", "h:8080", "http://h?x=1", "http://h:0"],
        ConfigurationError,
    ),
    (AccessTokenVerifier, _VERIFIER, "clients", ["app-admin", b"app", 5, ["app", 5]], TypeError),
    (AccessTokenVerifier, _VERIFIER, "clients", [[], set()], ConfigurationError),
    (Reply.succeed, {}, "delay", NOT_SECONDS, TypeError),
    (Reply.succeed, {}, "delay", BAD_SECONDS, ConfigurationError),
    (Reply.succeed, {}, "only_for", ["sign_up_anonymously", 5, [5]], TypeError),
    (Reply.never, {}, "only_for", [(), ("signup_anon",), ["log_in", "login"]], ConfigurationError),
    (Reply.fail, {}, "error", ["oops", None, TransportError], TypeError),
    (ScriptedBackend, {}, "latency", NOT_SECONDS, TypeError),
    (ScriptedBackend, {}, "latency", BAD_SECONDS, ConfigurationError),
    (ScriptedBackend, {}, "token_ttl", BAD_SECONDS, ConfigurationError),
]


def _calls() -> list[tuple[str, Callable[[], object], type]]:
    """(argument, a call giving it a wrong value, the error it must raise)."""
    return [
        (argument, partial(constructor, **{**others, argument: value}), error)
        for constructor, others, argument, values, error in _WRONG_ARGUMENTS
        for value in values
    ]


@pytest.mark.parametrize(("argument", "call", "error"), _calls())
def test_a_public_value_refuses_a_wrong_argument_naming_it(
    argument: str, call: Callable[[], object], error: type
) -> None:
    """Each public constructor refuses a wrong type with TypeError and a wrong setting with
    ConfigurationError (a ValueError and a MimiCoreError), a wrong value of a session with
    ValueError, naming the argument, not the value."""
    with pytest.raises(error) as raised:
        call()
    message = str(raised.value)
    assert argument in message
    assert "secret-bytes" not in message
    if error is ValueError:  # a session's value: the backend's bug, not the app's setting
        assert not isinstance(raised.value, MimiCoreError)


@pytest.mark.parametrize("obtained_at", [0, 0.0, 1.5e9, LATEST_INSTANT])
def test_an_issued_session_is_the_one_the_constructor_builds(obtained_at: float) -> None:
    """Session.issued (which skips re-checking what BackendSession checked) builds the same
    frozen value as Session(...): equal, with the same hash, and not to be changed."""
    issued = Session.issued(_ISSUED, obtained_at)
    built = Session(_ISSUED.user, _ISSUED.tokens, obtained_at)
    assert type(issued) is Session
    assert (issued, hash(issued), repr(issued)) == (built, hash(built), repr(built))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        issued.obtained_at = 1.0  # type: ignore[misc]


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers())
def test_a_duration_is_taken_exactly_when_it_is_finite_and_not_negative(value: float) -> None:
    """RetryPolicy's delays and the grace period accept any finite number of seconds >= 0
    and refuse every other."""
    if math.isfinite(value) and value >= 0:
        assert RetryPolicy(initial_delay=value, max_delay=value).max_delay == value
    else:
        with pytest.raises(ConfigurationError, match="initial_delay"):
            RetryPolicy(initial_delay=value)


# Calls on a started core with a user logged in: none may log them out or call the backend.
WRONG_CALLS: dict[str, Callable[[MimiCore], object]] = {
    "authenticate('sign_up')": lambda core: core.auth.authenticate("sign_up"),  # type: ignore[arg-type]
    "authenticate(None)": lambda core: core.auth.authenticate(None),  # type: ignore[arg-type]
    "run('x')": lambda core: core.auth.run("x"),  # type: ignore[arg-type]
    "run(None)": lambda core: core.auth.run(None),  # type: ignore[arg-type]
    "dispatch(42)": lambda core: core.auth.dispatch(42),  # type: ignore[arg-type]
    "log_out(everywhere='yes')": lambda core: core.auth.log_out(everywhere="yes"),  # type: ignore[arg-type]
    "authenticate_anonymous_user(123)": lambda core: AnonymousAuthManager(
        core
    ).authenticate_anonymous_user(123),  # type: ignore[arg-type]
    "authenticate_anonymous_user(b'abc')": lambda core: AnonymousAuthManager(
        core
    ).authenticate_anonymous_user(b"abc"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("call", WRONG_CALLS.values(), ids=WRONG_CALLS.keys())
async def test_a_wrong_argument_to_a_core_call_is_refused_before_anything_changes(
    call: Callable[[MimiCore], object],
) -> None:
    """A call given the wrong type raises TypeError (under python -O too): the user stays
    logged in and the backend is not called."""
    backend = ScriptedBackend()
    configuration = MimiConfiguration(allow_anonymous_user_only=True)
    async with MimiCore.start(backend=backend, configuration=configuration) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        state, calls = core.auth.state, list(backend.calls)
        with pytest.raises(TypeError):
            await completed(call(core))
        assert core.auth.state is state
        assert backend.calls == calls


BAD_SETTINGS: dict[str, Callable[[], object]] = {
    "a URL without its scheme": partial(HttpBackend, "localhost:8080"),
    "a URL with credentials": partial(HttpBackend, "https://app:secret-1@id.example"),
    "credentials without the scheme": partial(HttpBackend, "app:secret-1@id.example"),
    "a URL with no host": partial(HttpBackend, "http://app:secret-1@"),
    "an ftp URL": partial(HttpBackend, "ftp://app:secret-1@id.example"),
    "a blank API key": partial(FirebaseBackend, "  "),
    "an emulator host with a path": partial(FirebaseBackend, "k", emulator_host="h:1/x"),
    "no client credentials for HttpBackend": partial(
        MimiCore.start, backend=HttpBackend("http://127.0.0.1:9")
    ),
}


@pytest.mark.parametrize("call", BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
async def test_a_bad_setting_raises_a_configuration_error(call: Callable[[], object]) -> None:
    """A bad URL, API key or missing credentials raise ConfigurationError, which is both a
    MimiCoreError and a ValueError, and never show a password."""
    with pytest.raises(ConfigurationError) as raised:
        await completed(call())
    assert isinstance(raised.value, MimiCoreError)
    assert isinstance(raised.value, ValueError)
    assert "secret-1" not in str(raised.value)


@pytest.mark.parametrize(
    "make",
    [partial(HttpBackend, "http://127.0.0.1:9"), partial(FirebaseBackend, "key")],
    ids=["HttpBackend", "FirebaseBackend"],
)
async def test_a_backend_already_serving_a_core_is_refused_by_a_second_one(
    make: Callable[[], HttpBackend | FirebaseBackend],
) -> None:
    """Starting a second core on a backend the first one holds open raises ConfigurationError
    (a MimiCoreError, as every library error) and leaves the first core's backend open."""
    backend = make()
    async with MimiCore.start(client_id="a", client_secret="s", backend=backend) as first:
        with pytest.raises(ConfigurationError, match="already open"):
            await MimiCore.start(client_id="a", client_secret="s", backend=backend)
        assert backend._session is not None
        assert not backend._session.closed
        assert first.auth.state.transition is Transition.INITIAL
