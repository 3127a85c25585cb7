"""A Hypothesis state machine drives a core with every route against a reference model.

The model below restates the rules from the issue independently of the guards and reducer.
After every step the machine checks the stream guarantees (docs/guarantees.md 1-3 and 7):
every step finishes (no deadlock), all subscribers saw the same states ending at the current
one, no state repeats, the stream never errored, and the transitions are the model's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections.abc import Awaitable
from typing import Any, TypeVar

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from mimi_reactive import (
    AuthBackend,
    AuthRoute,
    CommandFuture,
    LogOut,
    MimiConfiguration,
    MimiCore,
    SessionState,
    Transition,
    TransportError,
)
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer
from mimi_reactive.testing import Reply, ScriptedBackend, StateRecorder

T = TypeVar("T")
T_ = Transition
EMAILS = ["ann@example.test", "bob@example.test"]
PASSWORDS = ["password one", "password two"]
STEP_TIMEOUT = 20.0
SIGN_IN_CALLS = ("sign_up_anonymously", "log_in_anonymously", "log_in", "sign_up", "promote")


@attrs.frozen
class ModelUser:
    anonymous_id: str | None
    email: str | None


@attrs.define
class Model:
    """The rules, restated: what a command should publish and who is logged in after."""

    anonymous_only: bool
    user: ModelUser | None = None
    known_ids: set[str] = attrs.Factory(set)
    passwords: dict[str, str] = attrs.Factory(dict)
    failures_pending: int = 0  # scripted transport failures for the next sign-in calls

    def _call_fails(self) -> bool:
        if self.failures_pending:
            self.failures_pending -= 1
            return True
        return False

    def _sign_in(self, ok: bool, new_user: ModelUser | None, fresh: Transition) -> list[T_]:
        """Log out whoever is there (revoked in the background), then sign in."""
        published: list[T_] = []
        switching = self.user is not None
        if switching:
            published.append(T_.LOGGED_OUT)
            self.user = None
        if self._call_fails() or not ok:
            return [*published, T_.FAILED]
        self.user = new_user
        return [*published, T_.SWITCHED_USER if switching else fresh]

    @property
    def anonymous_user_logged_in(self) -> bool:
        return self.user is not None and self.user.email is None

    def sign_up_anonymously(self, created_id: str | None) -> list[T_]:
        """``created_id`` names the new user; whether it succeeds is the model's call. An
        anonymous user logged in stays, with no call: a sign-up would leave them behind."""
        if self.anonymous_user_logged_in:
            return []
        result = self._sign_in(True, ModelUser(created_id, None), T_.ANONYMOUS_CREATED)
        if result[-1] is not T_.FAILED and created_id is not None:
            self.known_ids.add(created_id)
        return result

    def log_in_anonymously(self, anonymous_id: str | None) -> list[T_]:
        if not self.anonymous_only:
            return []
        if anonymous_id is None or not anonymous_id.strip():
            return []
        if self.user is not None and self.user.anonymous_id == anonymous_id:
            return []
        ok = anonymous_id in self.known_ids
        return self._sign_in(ok, ModelUser(anonymous_id, None), T_.LOGGED_IN)

    def log_in(self, email: str, password: str) -> list[T_]:
        if self.anonymous_only:
            return []
        ok = self.passwords.get(email) == password
        return self._sign_in(ok, ModelUser(None, email), T_.LOGGED_IN)

    def sign_up(self, email: str, password: str) -> list[T_]:
        if self.anonymous_only:
            return []
        ok = email not in self.passwords
        result = self._sign_in(ok, ModelUser(None, email), T_.SIGNED_UP)
        if result[-1] is not T_.FAILED:
            self.passwords[email] = password
        return result

    def promote(self, email: str, password: str) -> list[T_]:
        if self.anonymous_only or self.user is None or self.user.anonymous_id is None:
            return []
        if self._call_fails() or email in self.passwords:
            return [T_.FAILED]
        self.known_ids.discard(self.user.anonymous_id)
        self.passwords[email] = password
        self.user = ModelUser(None, email)
        return [T_.PROMOTED]

    def log_out(self) -> list[T_]:
        if self.user is None:
            return []
        self.user = None  # the revocation runs in the background, and never blocks this
        return [T_.LOGGED_OUT]


class SessionMachine(RuleBasedStateMachine):
    """Drives one core; subclasses choose the backend."""

    scripted = True
    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.core: MimiCore | None = None
        self.server: IdentityServer | None = None
        self.stream_errors: list[Exception] = []
        self.recorders: list[StateRecorder] = []
        self.checked = 0  # states of the first recorder already compared with the model

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run one step on the machine's loop; a step that hangs is a deadlock."""
        return self.loop.run_until_complete(asyncio.wait_for(awaitable, STEP_TIMEOUT))

    def make_backend(self) -> AuthBackend:
        raise NotImplementedError

    client_secret = secrets.token_urlsafe(32)

    @initialize(anonymous_only=st.booleans())
    def start(self, anonymous_only: bool) -> None:
        self.model = Model(anonymous_only)
        self.backend = self.make_backend()
        self.core = self.run(
            MimiCore.start(
                client_id="machine",
                client_secret=self.client_secret,
                backend=self.backend,
                configuration=MimiConfiguration(allow_anonymous_user_only=anonymous_only),
            )
        )
        self.recorders = [StateRecorder(self.core), StateRecorder(self.core)]
        self.core.auth.states.subscribe(on_error=self.stream_errors.append)

    def teardown(self) -> None:
        if self.core is not None:
            self.run(self.core.close())
        if self.server is not None:
            self.run(self.server.stop())
        self.loop.close()

    # Commands.

    def perform(self, command: AuthRoute | LogOut, expected: Any) -> None:
        """Run ``command``, then check it published what the model expects."""
        assert self.core is not None
        self.run(self.core.auth.run(command))
        self.expect(expected(self.created_id()))

    def created_id(self) -> str | None:
        assert self.core is not None
        user = self.core.auth.current_user
        return user.anonymous_id if user is not None else None

    def expect(self, transitions: list[T_]) -> None:
        published = self.recorders[0].states[self.checked + 1 :]
        self.checked += len(published)
        assert [s.transition for s in published] == transitions

    @rule(target=ids)
    def sign_up_anonymously(self) -> str:
        self.perform(AuthRoute.sign_up_anonymously(), self.model.sign_up_anonymously)
        return self.created_id() or "never-created-id-000000000"

    @rule(anonymous_id=ids)
    def log_in_known_id(self, anonymous_id: str) -> None:
        self.perform(
            AuthRoute.log_in_anonymously(anonymous_id),
            lambda _: self.model.log_in_anonymously(anonymous_id),
        )

    @rule()
    def log_in_unknown_id(self) -> None:
        unknown = secrets.token_urlsafe(32)
        self.perform(
            AuthRoute.log_in_anonymously(unknown), lambda _: self.model.log_in_anonymously(unknown)
        )

    @rule(blank=st.sampled_from([None, "", "  ", "\t"]))
    def log_in_blank_id(self, blank: str | None) -> None:
        self.perform(
            AuthRoute.log_in_anonymously(blank), lambda _: self.model.log_in_anonymously(blank)
        )

    @rule(email=st.sampled_from(EMAILS), password=st.sampled_from(PASSWORDS))
    def log_in_with_credentials(self, email: str, password: str) -> None:
        self.perform(
            AuthRoute.log_in(email=email, password=password),
            lambda _: self.model.log_in(email, password),
        )

    @rule(email=st.sampled_from(EMAILS), password=st.sampled_from(PASSWORDS))
    def sign_up_with_credentials(self, email: str, password: str) -> None:
        self.perform(
            AuthRoute.sign_up(email=email, password=password),
            lambda _: self.model.sign_up(email, password),
        )

    @rule(email=st.sampled_from(EMAILS), password=st.sampled_from(PASSWORDS))
    def promote(self, email: str, password: str) -> None:
        self.perform(
            AuthRoute.promote(email=email, password=password),
            lambda _: self.model.promote(email, password),
        )

    @rule()
    def log_out(self) -> None:
        self.perform(LogOut(), lambda _: self.model.log_out())

    def created_in(self, states: list[SessionState]) -> str | None:
        """The anonymous id of the user a sign-up created among ``states``, if any."""
        for state in states:
            if state.transition in (T_.ANONYMOUS_CREATED, T_.SWITCHED_USER) and state.user:
                return state.user.anonymous_id
        return None

    def unchecked(self) -> list[SessionState]:
        return self.recorders[0].states[self.checked + 1 :]

    @precondition(lambda self: not self.model.anonymous_user_logged_in)
    @rule()
    def log_out_from_inside_a_subscriber(self) -> None:
        """A subscriber dispatches a log-out on the next state: it runs after the sign-up."""
        core = self.core
        assert core is not None
        dispatched: list[CommandFuture] = []
        replayed = False

        def on_state(state: SessionState) -> None:
            nonlocal replayed
            if not replayed:
                replayed = True
            elif not dispatched:
                dispatched.append(core.auth.dispatch(LogOut()))

        subscription = core.auth.states.subscribe(on_state)
        self.run(core.auth.run(AuthRoute.sign_up_anonymously()))
        subscription.dispose()
        assert len(dispatched) == 1  # a sign-up always publishes at least one state

        async def wait_for_the_log_out() -> None:
            await asyncio.wrap_future(dispatched[0])

        self.run(wait_for_the_log_out())
        created = self.created_in(self.unchecked())
        self.expect(self.model.sign_up_anonymously(created) + self.model.log_out())

    @rule(ticks=st.integers(min_value=0, max_value=3))
    def cancel_a_waiting_caller(self, ticks: int) -> None:
        """Cancel a sign-up's caller at some point: it runs whole or not at all."""
        core = self.core
        assert core is not None

        async def cancel_then_settle() -> None:
            task = asyncio.ensure_future(core.auth.run(AuthRoute.sign_up_anonymously()))
            for _ in range(ticks):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # A blank id changes nothing in any configuration: a barrier behind the sign-up.
            await core.auth.run(AuthRoute.log_in_anonymously(None))

        self.run(cancel_then_settle())
        published = self.unchecked()
        if published:
            self.expect(self.model.sign_up_anonymously(self.created_in(published)))

    @rule()
    def raising_subscriber_joins(self) -> None:
        """A subscriber that raises on every state changes nothing for anyone else."""
        assert self.core is not None

        def explode(state: SessionState) -> None:
            raise RuntimeError("subscriber bug")

        self.core.auth.states.subscribe(explode)

    @precondition(lambda self: self.scripted)
    @rule()
    def next_call_fails(self) -> None:
        assert isinstance(self.backend, ScriptedBackend)
        self.backend.script(Reply.fail(TransportError("offline"), only_for=SIGN_IN_CALLS))
        self.model.failures_pending += 1

    # Invariants.

    @invariant()
    def subscribers_agree_and_end_at_the_current_state(self) -> None:
        if self.core is None:
            return
        first, second = self.recorders
        assert first.states == second.states
        assert first.states[-1] == self.core.auth.state

    @invariant()
    def no_state_repeats(self) -> None:
        states = self.recorders[0].states if self.recorders else []
        assert all(a != b for a, b in itertools.pairwise(states))

    @invariant()
    def the_stream_never_errors(self) -> None:
        assert self.stream_errors == []

    @invariant()
    def the_user_is_the_models(self) -> None:
        if self.core is None:
            return
        user = self.core.auth.current_user
        expected = self.model.user
        if expected is None:
            assert user is None
        else:
            assert user is not None
            assert (user.anonymous_id, user.email) == (expected.anonymous_id, expected.email)
            assert user.is_anonymous == (expected.email is None)


class ScriptedSessionMachine(SessionMachine):
    """Against the scripted in-process backend, with injected failures."""

    scripted = True

    def make_backend(self) -> AuthBackend:
        return ScriptedBackend()


class ServerSessionMachine(SessionMachine):
    """Against the reference server over loopback."""

    scripted = False

    def make_backend(self) -> AuthBackend:
        self.server = IdentityServer(client_id="machine", client_secret=self.client_secret)
        self.run(self.server.start())
        return HttpBackend(self.server.url)


TestScriptedSession = ScriptedSessionMachine.TestCase
TestScriptedSession.settings = settings(max_examples=300, stateful_step_count=40)


@pytest.mark.slow
class TestServerSession(ServerSessionMachine.TestCase):  # type: ignore[misc,valid-type]
    settings = settings(max_examples=40, stateful_step_count=30)
