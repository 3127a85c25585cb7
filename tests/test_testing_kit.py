"""mimi_reactive.testing: what app developers use to test their own flows."""

from __future__ import annotations

import asyncio
import errno
import re
from collections.abc import Awaitable, Callable

import pytest
import reactivex
from reactivex import operators as ops
from reactivex.testing import ReactiveTest, TestScheduler

from mimi_reactive import (
    AnonymousAuthManager,
    AuthRoute,
    BackendCapabilities,
    BackendError,
    ConflictError,
    CoreClosedError,
    Failure,
    InvalidCredentialsError,
    LogInAnonymously,
    LogOut,
    MimiConfiguration,
    MimiCore,
    Session,
    SessionState,
    SessionStorage,
    SessionStorageError,
    SignUpAnonymously,
    StartingCore,
    Success,
    Transition,
    TransportError,
    UnsupportedRouteError,
    WeakPasswordError,
)
from mimi_reactive.testing import FailingStorage, Reply, ScriptedBackend, StateRecorder

ANONYMOUS_ONLY = MimiConfiguration(allow_anonymous_user_only=True)
OPEN = MimiConfiguration()


def start(
    backend: ScriptedBackend,
    configuration: MimiConfiguration = ANONYMOUS_ONLY,
    storage: SessionStorage | None = None,
) -> StartingCore:
    """A core of the app on ``backend``, started when awaited or entered."""
    return MimiCore.start(
        client_id="app",
        client_secret="s",
        backend=backend,
        configuration=configuration,
        storage=storage,
    )


async def test_recorder_captures_transitions_and_completion() -> None:
    """The recorder holds every state from its start, and knows when the core closed."""
    async with start(ScriptedBackend()) as core:
        with StateRecorder(core) as recorder:
            user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
            await core.auth.log_out()
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())  # after stop()
    assert recorder.transitions == [
        Transition.INITIAL,
        Transition.ANONYMOUS_CREATED,
        Transition.LOGGED_OUT,
    ]
    assert recorder.users == [None, user, None]
    assert not recorder.completed  # it had stopped before the core closed


async def test_recorder_waits_for_a_transition_from_a_dispatched_command() -> None:
    """wait_for returns the first state with the transition, or fails if the core closes."""
    async with start(ScriptedBackend(latency=0.01)) as core:
        recorder = StateRecorder(core)
        core.auth.dispatch(AuthRoute.sign_up_anonymously())
        async with asyncio.timeout(5):
            state = await recorder.wait_for(Transition.ANONYMOUS_CREATED)
        assert state.user == core.auth.current_user
    with pytest.raises(AssertionError, match="LOGGED_OUT"):
        await recorder.wait_for(Transition.LOGGED_OUT)


async def test_a_wait_for_ends_when_the_recorder_stops() -> None:
    """wait_for raises once the recorder is stopped, whether it was waiting already or is
    called after stop(): its states can no longer come (the core may never close)."""
    async with start(ScriptedBackend()) as core:
        recorder = StateRecorder(core)
        waiting = asyncio.ensure_future(recorder.wait_for(Transition.ANONYMOUS_CREATED))
        await asyncio.sleep(0)  # it is waiting
        recorder.stop()
        async with asyncio.timeout(5):
            with pytest.raises(AssertionError, match="stopped without a ANONYMOUS_CREATED"):
                await waiting
            await core.auth.authenticate(AuthRoute.sign_up_anonymously())
            with pytest.raises(AssertionError, match="stopped"):
                await recorder.wait_for(Transition.ANONYMOUS_CREATED)
        assert await recorder.wait_for(Transition.INITIAL) is recorder.states[0]


def test_a_misspelled_call_name_is_refused_with_the_names_there_are() -> None:
    """only_for naming a call that does not exist raises, listing every valid name; a bare
    string (a set of its letters) raises TypeError."""
    with pytest.raises(ValueError, match="unknown: signup_anon") as raised:
        Reply.fail(TransportError("down"), only_for=("signup_anon",))
    for name in ("sign_up_anonymously", "log_in", "refresh", "revoke", "delete"):
        assert name in str(raised.value)
    with pytest.raises(TypeError, match="only_for"):
        Reply.succeed(only_for="sign_up_anonymously")
    assert Reply.never(only_for=["refresh"]).only_for == frozenset({"refresh"})


async def test_the_scripted_backend_refuses_passwords_as_the_server_does() -> None:
    """A new password under 8 characters is WeakPasswordError, an empty log-in password
    (which the guards skip before any backend) an invalid_request BackendError, as the
    reference server answers."""
    backend = ScriptedBackend()
    async with start(backend, OPEN) as core:
        with pytest.raises(WeakPasswordError, match="8 characters"):
            await core.auth.authenticate(AuthRoute.sign_up(email="a@b.test", password="x" * 7))
        await core.auth.authenticate(AuthRoute.sign_up(email="a@b.test", password="x" * 8))
    with pytest.raises(BackendError) as raised:
        await backend.authenticate(AuthRoute.log_in(email="a@b.test", password=""), None)
    assert raised.value.code == "invalid_request"


async def test_scripted_backend_behaves_like_the_service_by_default() -> None:
    """Unscripted: users persist across cores, unknown ids and taken emails fail."""
    backend = ScriptedBackend()
    async with start(backend) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    async with start(backend) as core:
        manager = AnonymousAuthManager(core)
        assert await manager.authenticate_anonymous_user(user.anonymous_id) == Success(
            user.anonymous_id or ""
        )
        other = backend.add_anonymous_user()
        assert await manager.authenticate_anonymous_user(other.anonymous_id) == Success(
            other.anonymous_id  # type: ignore[arg-type]
        )
        unknown = await manager.authenticate_anonymous_user("never-issued-id-000000")
        assert isinstance(unknown, Failure)
        assert isinstance(unknown.error, InvalidCredentialsError)
    async with start(backend, OPEN) as core:
        await core.auth.authenticate(AuthRoute.sign_up(email="a@b.test", password="pass word"))
        with pytest.raises(ConflictError):
            await core.auth.authenticate(AuthRoute.sign_up(email="A@b.test", password="x" * 8))
    # Log-outs are revoked in the background; closing each core waited for them.
    assert [c for c in backend.calls if c != "revoke"] == [
        "sign_up_anonymously",
        "log_in_anonymously",
        "log_in_anonymously",
        "log_in_anonymously",
        "sign_up",
        "sign_up",
    ]
    assert backend.calls.count("revoke") == 3


async def test_scripted_failure_latency_and_hang() -> None:
    """Scripted replies fail, delay or never answer, in order; then it answers normally."""
    backend = ScriptedBackend()
    never = Reply.never(only_for=("sign_up_anonymously",))  # not the log-out's revoke
    backend.script(Reply.fail(TransportError("offline")), Reply.succeed(delay=0.05), never)
    async with start(backend) as core:
        with pytest.raises(TransportError):
            await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        loop = asyncio.get_running_loop()
        began = loop.time()
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        assert loop.time() - began >= 0.05
        await core.auth.log_out()  # else the sign-up finds the anonymous user logged in
        stuck = core.auth.dispatch(AuthRoute.sign_up_anonymously())
        await asyncio.sleep(0.05)
        assert not stuck.done()  # the call never answers...
        await core.close(grace_period=0.05)  # ...until close() gives up on it
    with pytest.raises(CoreClosedError):
        stuck.result()


@pytest.mark.parametrize("call", ["sign_up_anonymously", "refresh", "revoke", "delete"])
async def test_every_unscripted_call_takes_the_latency(call: str) -> None:
    """With ``latency`` and no reply scripted, each call answers normally, after it."""
    backend = ScriptedBackend(latency=0.05)
    loop = asyncio.get_running_loop()
    began = loop.time()
    signed_up = Session.issued(await backend.authenticate(SignUpAnonymously(), None), 0.0)
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "sign_up_anonymously": lambda: backend.authenticate(SignUpAnonymously(), None),
        "refresh": lambda: backend.refresh(signed_up),
        "revoke": lambda: backend.revoke(signed_up),
        "delete": lambda: backend.delete(signed_up),
    }
    await calls[call]()
    assert loop.time() - began >= 0.1
    assert backend.calls == ["sign_up_anonymously", call]


async def test_the_scripted_backend_issues_tokens_no_other_session_has() -> None:
    """Each session's access and refresh tokens are URL-safe and unguessable (43 characters,
    as ``secrets.token_urlsafe(32)``), and no token is issued twice."""
    backend = ScriptedBackend()
    sessions = [await backend.authenticate(SignUpAnonymously(), None) for _ in range(20)]
    tokens = [token for s in sessions for token in (s.tokens.access_token, s.tokens.refresh_token)]
    assert len(set(tokens)) == len(tokens) == 40
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", token or "") for token in tokens)


async def test_backend_without_a_route_is_refused_by_the_guards() -> None:
    """A backend that cannot log in by id gets the route refused, with no call made."""
    backend = ScriptedBackend(
        capabilities=BackendCapabilities(routes=frozenset({SignUpAnonymously}))
    )
    async with start(backend) as core:
        result = await AnonymousAuthManager(core).authenticate_anonymous_user("some-id-123456789")
    assert isinstance(result, Failure)
    assert isinstance(result.error, UnsupportedRouteError)
    assert backend.calls == []


def welcome_banner(states: reactivex.Observable[SessionState]) -> reactivex.Observable[str | None]:
    """An app's UI logic: greet a user for 3 seconds; show a failure until the next state."""

    def banner_for(state: SessionState) -> reactivex.Observable[str | None]:
        if state.transition is Transition.FAILED:
            return reactivex.just("We could not sign you in")
        if state.user is not None:
            hide = reactivex.timer(3.0).pipe(ops.map(lambda _: None))
            return reactivex.concat(reactivex.just("Welcome!"), hide)
        return reactivex.just(None)

    return states.pipe(ops.switch_map(banner_for), ops.distinct_until_changed())


async def test_a_failing_storage_fails_as_a_full_or_read_only_disk() -> None:
    """While ``failing``, a FailingStorage's save fails as a full disk's and its clear as a
    read-only one's: the app gets SessionStorageError naming the storage, the OSError
    chained; its load never fails, and once it works again it keeps what it is given."""
    storage = FailingStorage(failing=True)
    async with start(ScriptedBackend(), storage=storage) as core:
        signed_up = await core.auth.run(AuthRoute.sign_up_anonymously())
        logged_out = await core.auth.run(LogOut())
        assert await storage.load() is None
        storage.failing = False
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        stored = await storage.load()
    for outcome, code in ((signed_up, errno.ENOSPC), (logged_out, errno.EROFS)):
        assert isinstance(outcome.error, SessionStorageError)
        assert str(outcome.error).startswith("FailingStorage(failing=True) could not")
        assert isinstance(outcome.error.__cause__, OSError)
        assert outcome.error.__cause__.errno == code
    assert stored is not None
    assert stored.user == user


async def test_virtual_time_example() -> None:
    """Record real states with the scripted backend, then replay them on virtual time."""
    backend = ScriptedBackend()
    backend.script(Reply.succeed(), Reply.fail(TransportError("offline")))
    async with start(backend) as core:
        recorder = StateRecorder(core)
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        await core.auth.run(AuthRoute.log_in_anonymously("some-other-id-00000"))
    initial, created, logged_out, failed = recorder.states

    scheduler = TestScheduler()
    states = scheduler.create_hot_observable(
        ReactiveTest.on_next(210, initial),
        ReactiveTest.on_next(220, created),
        ReactiveTest.on_next(240, logged_out),
        ReactiveTest.on_next(241, failed),
    )
    results = scheduler.start(lambda: welcome_banner(states))
    assert results.messages == [
        ReactiveTest.on_next(210, None),
        ReactiveTest.on_next(220, "Welcome!"),
        ReactiveTest.on_next(223, None),  # three virtual seconds later, no real waiting
        ReactiveTest.on_next(241, "We could not sign you in"),
    ]


async def test_the_scripted_backend_logs_in_by_id_only_with_an_id() -> None:
    """A log-in by anonymous id with none never finds a user who has none (one who signed
    up with an email): it is refused as an unknown id is."""
    backend = ScriptedBackend()
    route = AuthRoute.sign_up(email="a@example.com", password="password-1")
    signed_up = await backend.authenticate(route, None)
    assert signed_up.user.anonymous_id is None
    with pytest.raises(InvalidCredentialsError):
        await backend.authenticate(LogInAnonymously(None), None)
