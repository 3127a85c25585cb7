"""The obvious wiring the stream guarantees are measured against.

The same pure core (guards and reducer), but a plain ``BehaviorSubject`` and a naive shell:
effects run and states publish synchronously, inside whatever call asked for them; async
sign-ins publish whenever their call returns; errors go to ``on_error``. Each guarantee's test
shows the scenario breaking here and holding on ``MimiCore``.
"""

from __future__ import annotations

import uuid

from reactivex.subject import BehaviorSubject

from mimi_reactive import (
    AuthBackend,
    AuthRoute,
    BackendCapabilities,
    MimiConfiguration,
    MimiUser,
    SessionState,
    SignUpAnonymously,
)
from mimi_reactive._guards import GuardContext, decide
from mimi_reactive._messages import (
    Authenticate,
    Command,
    EndSession,
    Proceed,
    SignedIn,
    SignedOut,
)
from mimi_reactive._reducer import reduce

from .strategies import session_of

ANONYMOUS_ONLY = MimiConfiguration(allow_anonymous_user_only=True)


class PlainWiring:
    """Our guards and reducer behind a plain BehaviorSubject, wired the naive way."""

    def __init__(self, backend: AuthBackend | None = None) -> None:
        self.subject: BehaviorSubject[SessionState] = BehaviorSubject(SessionState())
        self.backend = backend

    @property
    def state(self) -> SessionState:
        return self.subject.value

    def dispatch(self, command: Command) -> None:
        """Run the command synchronously, publishing each state as it happens."""
        session = session_of(self.state.user)
        context = GuardContext(
            self.state, command, ANONYMOUS_ONLY, BackendCapabilities(), session=session
        )
        decision = decide(context)
        if not isinstance(decision, Proceed):
            return
        for effect in decision.effects:
            match effect:
                case EndSession():
                    self.subject.on_next(reduce(self.state, SignedOut()))
                case Authenticate(route=route, replacing=replacing):
                    assert isinstance(route, SignUpAnonymously)
                    user = MimiUser(str(uuid.uuid4()), uuid.uuid4().hex)
                    self.subject.on_next(reduce(self.state, SignedIn(user, route, replacing)))

    async def authenticate(self, route: AuthRoute) -> MimiUser | None:
        """Await the backend, then publish: no queue, and errors go to on_error."""
        assert self.backend is not None
        try:
            session = await self.backend.authenticate(route, None)
            if self.state.user is not None:
                self.subject.on_next(reduce(self.state, SignedOut()))
            self.subject.on_next(reduce(self.state, SignedIn(session.user, route)))
        except Exception as error:
            self.subject.on_error(error)
            return None
        return session.user
