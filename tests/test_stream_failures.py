"""Guarantees 4 and 7: a raising subscriber or observer is isolated, and the stream never
errors: a backend's fault or misbuilt answer becomes a FAILED state and the stream goes on.

Each scenario breaks on plain BehaviorSubject wiring and holds on ours. Numbers follow
docs/guarantees.md.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from mimi_reactive import (
    AuthRoute,
    AuthTokens,
    BackendSession,
    DeleteAccount,
    LogOut,
    MemorySessionStorage,
    MimiConfiguration,
    MimiCore,
    MimiCoreError,
    MimiUser,
    Session,
    SessionRevokedError,
    SessionState,
    Transition,
)
from mimi_reactive.testing import Reply, ScriptedBackend, StateRecorder

from .helpers import SIGN_UP, library_events
from .plain_wiring import PlainWiring

# 4. A raising subscriber is isolated.


async def test_4_a_raising_subscriber_does_not_stop_the_others(
    core: MimiCore, caplog: pytest.LogCaptureFixture
) -> None:
    """The command completes, later subscribers get the state, the error is logged with
    the subscriber's traceback."""

    def explode(state: SessionState) -> None:
        raise RuntimeError("subscriber bug")

    caplog.set_level(logging.ERROR, logger="mimi_reactive")
    core.auth.states.subscribe(explode)
    recorder = StateRecorder(core)
    user = await core.auth.authenticate(SIGN_UP)
    assert recorder.users == [None, user]
    failed = [r for r in library_events(caplog) if r.getMessage().startswith("stream.")]
    assert len(failed) == 2  # the replay on subscribe, then the sign-up
    for record in failed:
        assert record.exc_info is not None
        assert record.exc_info[0] is RuntimeError
        assert "explode" in caplog.text  # the app's own frame is in the traceback

    plain = PlainWiring()
    plain.subject.subscribe(_raise_on_change)
    later: list[SessionState] = []
    plain.subject.subscribe(later.append)
    with pytest.raises(RuntimeError):
        plain.dispatch(SIGN_UP)  # the subscriber's error hits the emitter
    assert len(later) == 1  # and the later subscriber never got the state


def _raise_on_change(state: SessionState) -> None:
    if state.transition is not Transition.INITIAL:
        raise RuntimeError("subscriber bug")


@pytest.mark.parametrize("detach", [False, True])
async def test_4_the_app_chooses_whether_a_faulty_subscriber_is_detached(detach: bool) -> None:
    """With detach_failing_subscribers the faulty subscriber hears nothing after it raised."""
    calls: list[Transition] = []

    def explode(state: SessionState) -> None:
        calls.append(state.transition)
        raise RuntimeError("subscriber bug")

    configuration = MimiConfiguration(
        allow_anonymous_user_only=True, detach_failing_subscribers=detach
    )
    async with MimiCore.start(
        client_id="app", client_secret="s", backend=ScriptedBackend(), configuration=configuration
    ) as core:
        core.auth.states.subscribe(explode)
        recorder = StateRecorder(core)
        await core.auth.authenticate(SIGN_UP)
        await core.auth.log_out()
    assert recorder.transitions[-1] is Transition.LOGGED_OUT
    expected = [Transition.INITIAL]
    if not detach:
        expected += [Transition.ANONYMOUS_CREATED, Transition.LOGGED_OUT]
    assert calls == expected


async def test_4_a_raising_observer_is_isolated(core: MimiCore) -> None:
    """An observer that raises does not stop other observers or the command."""
    heard: list[MimiUser | None] = []

    class Faulty:
        def auth_controller_did_update(self, *args: object) -> None:
            raise ValueError("observer bug")

    class Good:
        def auth_controller_did_update(self, controller, current, old, error):  # type: ignore[no-untyped-def]
            heard.append(current)

    core.auth.add_observer(Faulty())
    core.auth.add_observer(Good())
    user = await core.auth.authenticate(SIGN_UP)
    assert heard == [user]


# 7. The stream never errors.


async def test_7_a_backend_fault_becomes_a_failed_state(
    core: MimiCore, backend: ScriptedBackend
) -> None:
    """A fault in the backend is a FAILED state; the stream lives on and later commands run."""
    backend.script(Reply.fail(RuntimeError("backend bug")))
    errors: list[Exception] = []
    core.auth.states.subscribe(on_error=errors.append)
    recorder = StateRecorder(core)
    with pytest.raises(MimiCoreError) as raised:
        await core.auth.authenticate(SIGN_UP)
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert recorder.states[-1].transition is Transition.FAILED
    assert recorder.states[-1].error is raised.value
    await core.auth.authenticate(SIGN_UP)
    assert recorder.transitions[-1] is Transition.ANONYMOUS_CREATED
    assert errors == []

    plain_backend = ScriptedBackend()
    plain = PlainWiring(plain_backend)
    plain_backend.script(Reply.fail(RuntimeError("backend bug")))
    plain_errors: list[Exception] = []
    plain.subject.subscribe(on_error=plain_errors.append)
    await plain.authenticate(SIGN_UP)
    await plain.authenticate(SIGN_UP)
    assert len(plain_errors) == 1
    assert plain.subject.is_stopped  # nothing after the fault is ever published


class MisbuildingBackend(ScriptedBackend):
    """A custom backend with a bug in one method: it copies the service's JSON fields as they
    come (strings), so building its answer raises, or it answers None instead of a session."""

    def __init__(self, broken: str, *, answers_none: bool) -> None:
        super().__init__()
        self.broken = ""  # set once the user is in: the method that misbuilds from then on
        self._will_break = broken
        self._answers_none = answers_none

    def break_now(self) -> None:
        self.broken = self._will_break

    def _misbuilt(self, method: str, issued: BackendSession) -> BackendSession:
        if self.broken != method:
            return issued
        if self._answers_none:
            return None  # type: ignore[return-value]
        user = issued.user
        flag: Any = "false"  # as the JSON had it
        return BackendSession(MimiUser(user.id, user.anonymous_id, flag), issued.tokens)

    async def authenticate(self, route: AuthRoute, session: Session | None) -> BackendSession:
        return self._misbuilt("authenticate", await super().authenticate(route, session))

    async def refresh(self, session: Session) -> BackendSession:
        return self._misbuilt("refresh", await super().refresh(session))

    async def revoke(self, session: Session, *, everywhere: bool = False) -> None:
        self._build_wrongly("revoke")
        await super().revoke(session, everywhere=everywhere)

    async def delete(self, session: Session) -> None:
        self._build_wrongly("delete")
        await super().delete(session)

    def _build_wrongly(self, method: str) -> None:
        """What a call answering nothing may build: a value of the service's JSON."""
        if self.broken == method:
            lifetime: Any = "3600"
            AuthTokens("access", "refresh", lifetime)


async def _run(core: MimiCore, command: AuthRoute | LogOut | DeleteAccount | None) -> Any:
    """The error ``command`` ended with (None: a forced refresh, through ``refresh()``)."""
    if command is not None:
        return (await core.auth.run(command)).error
    try:
        await core.auth.refresh()
    except MimiCoreError as error:
        return error
    return None


# (backend method, the command that calls it, whether the user stays, the state published)
_MISBUILT_CALLS: dict[
    str, tuple[str, AuthRoute | LogOut | DeleteAccount | None, bool, Transition]
] = {
    "sign-up": ("authenticate", SIGN_UP, False, Transition.FAILED),
    "promotion": (
        "authenticate",
        AuthRoute.promote(email="a@b.test", password="password1"),
        True,
        Transition.FAILED,
    ),
    "refresh": ("refresh", None, True, Transition.DEGRADED),
    "log-in by id after a refused refresh": ("authenticate", None, True, Transition.DEGRADED),
    "log-out everywhere": ("revoke", LogOut(everywhere=True), False, Transition.LOGGED_OUT),
    "account deletion": ("delete", DeleteAccount(), True, Transition.FAILED),
}


# Each call building its answer wrongly (raising) and answering None, but revoke and delete,
# which answer nothing: they raise while building, or not at all.
_MISBUILT_CASES = [
    pytest.param(*call, answers_none, id=f"{name}-{'answers-none' if answers_none else 'raises'}")
    for name, call in _MISBUILT_CALLS.items()
    for answers_none in (False, True)
    if not (answers_none and call[0] in ("revoke", "delete"))
]


@pytest.mark.parametrize(
    ("method", "command", "user_stays", "transition", "answers_none"), _MISBUILT_CASES
)
async def test_7_a_backend_building_a_wrong_answer_fails_the_command_and_the_stream_goes_on(
    method: str,
    command: AuthRoute | LogOut | DeleteAccount | None,
    user_stays: bool,
    transition: Transition,
    answers_none: bool,
) -> None:
    """At every call the core makes, a backend whose answer is of the wrong type (a value built
    from JSON strings, refused at construction, or None) ends the command with a
    MimiCoreError caused by the TypeError, naming no secret; the stream goes on, nothing
    wrong is held or stored, and the next command runs."""
    backend = MisbuildingBackend(method, answers_none=answers_none)
    storage = MemorySessionStorage()
    async with MimiCore.start(backend=backend, storage=storage) as core:
        errors: list[Exception] = []
        core.auth.states.subscribe(on_error=errors.append)
        user = None if command == SIGN_UP else await core.auth.authenticate(SIGN_UP)
        if method == "authenticate" and command is None:  # refused, not ended: log in by id
            backend.script(Reply.fail(SessionRevokedError("invalid_grant", "expired unused")))
        backend.break_now()
        error = await _run(core, command)
        assert isinstance(error, MimiCoreError)
        assert isinstance(error.__cause__, TypeError)
        assert user is None or str(user.anonymous_id) not in str(error.__cause__)
        state = core.auth.state
        assert state.transition is transition
        assert state.user == (user if user_stays else None)
        assert isinstance(state.user is None or state.user.is_anonymous, bool)
        assert (await storage.load() is not None) is user_stays
        backend.broken = ""
        assert (await core.auth.run(LogOut())).error is None
        assert (await core.auth.run(SIGN_UP)).state.transition is Transition.ANONYMOUS_CREATED
        assert errors == []
