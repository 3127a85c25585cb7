"""Wrong arguments are refused at once, naming the argument, before anything changes: every
public constructor and setting, the calls on a started core, bad URLs and keys, and a backend
already serving a core."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

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
    SessionFilePathError,
    SignUpAnonymously,
    Transition,
    TransportError,
)
from mimi_reactive._checks import LATEST_INSTANT, LONGEST_LIFETIME
from mimi_reactive.backends.firebase import FirebaseBackend
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.testing import BlockingStateRecorder, Reply, ScriptedBackend, StateRecorder
from mimi_reactive.verify import AccessTokenVerifier

from .helpers import completed

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
    (BlockingStateRecorder, {}, "core", [None, "core", ScriptedBackend()], TypeError),
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


HUGE = "x" * 100_000
TOO_LONG_FOR_THE_OS = {
    "a huge base URL": (partial(HttpBackend, HUGE), ConfigurationError),
    "a huge ftp URL": (partial(HttpBackend, "ftp://" + HUGE), ConfigurationError),
    "a huge emulator host": (partial(FirebaseBackend, "k", emulator_host=HUGE), ConfigurationError),
    "a huge session file path": (partial(FileSessionStorage, HUGE), SessionFilePathError),
    "a file name past the OS's limit": (
        partial(FileSessionStorage, "y" * 300 + "/session.json"),
        SessionFilePathError,
    ),
}


@pytest.mark.parametrize(
    ("call", "error"), TOO_LONG_FOR_THE_OS.values(), ids=TOO_LONG_FOR_THE_OS.keys()
)
def test_a_huge_value_is_refused_quoting_only_its_start(
    call: Callable[[], object], error: type[MimiCoreError]
) -> None:
    """A huge URL or path is refused with its own typed error (a path the OS finds too long
    is a SessionFilePathError, not a raw OSError) whose message quotes only its start."""
    with pytest.raises(error) as raised:
        call()
    assert len(str(raised.value)) < 200
    assert "characters)" in str(raised.value)  # it says how long the value was
    assert raised.value.__cause__ is None  # no chained error quoting it whole
    assert raised.value.__suppress_context__ or raised.value.__context__ is None
