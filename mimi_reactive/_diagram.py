"""The session's state diagram, drawn from the reducer itself.

Every event is fed to the pure reducer in every phase (logged out, logged in, degraded); each
legal pair that publishes a state becomes an edge labelled with its transition. The docs show
the result as a Mermaid diagram and a test fails when the two disagree, so the picture cannot
drift from the code. ``python -m mimi_reactive._diagram`` prints it.
"""

from __future__ import annotations

import attrs

from ._exceptions import TransportError
from ._messages import (
    AccountDeleted,
    AuthRoute,
    CommandFailed,
    Event,
    RefreshFailed,
    SessionAdopted,
    SessionExpired,
    SignedIn,
    SignedOut,
    TokensRefreshed,
)
from ._reducer import IllegalTransitionError, reduce
from ._state import SessionState, Transition
from ._user import MimiUser

__all__ = ["edges", "mermaid"]

_ANONYMOUS = MimiUser("user-a", "anonymous-id-of-user-a")
_PROMOTED = attrs.evolve(_ANONYMOUS, anonymous_id=None, is_anonymous=False, email="a@b.test")
_OTHER = MimiUser("user-b", "anonymous-id-of-user-b")
_OFFLINE = TransportError("offline")

# One state per phase: what the reducer decides by.
_PHASES = {
    "LoggedOut": SessionState(),
    "LoggedIn": SessionState(_ANONYMOUS, transition=Transition.LOGGED_IN),
    "Degraded": SessionState(_ANONYMOUS, _ANONYMOUS, Transition.DEGRADED, _OFFLINE, degraded=True),
}


def _events() -> list[Event]:
    """One event of each kind and shape the shell can report."""
    password = "a password"  # noqa: S105 - a sample route, never sent anywhere
    return [
        SignedIn(_ANONYMOUS, AuthRoute.sign_up_anonymously()),
        SignedIn(_ANONYMOUS, AuthRoute.log_in_anonymously("anonymous-id-of-user-a")),
        SignedIn(_PROMOTED, AuthRoute.log_in(email="a@b.test", password=password)),
        SignedIn(_PROMOTED, AuthRoute.sign_up(email="a@b.test", password=password)),
        SignedIn(_OTHER, AuthRoute.log_in_anonymously("anonymous-id-of-user-b"), _ANONYMOUS),
        SignedIn(_PROMOTED, AuthRoute.promote(email="a@b.test", password=password)),
        SignedOut(),
        CommandFailed(_OFFLINE),
        TokensRefreshed(_ANONYMOUS),
        TokensRefreshed(_PROMOTED),
        RefreshFailed(_OFFLINE),
        SessionExpired(_OFFLINE),
        SessionAdopted(None),
        SessionAdopted(_ANONYMOUS),
        SessionAdopted(_OTHER),
        SessionAdopted(_PROMOTED),
        SessionAdopted(_ANONYMOUS, _OFFLINE),  # the storage lost the session held
        SessionAdopted(_ANONYMOUS, kept=True),  # and a write-back kept it after all
        AccountDeleted(),
    ]


def _phase_of(state: SessionState) -> str:
    if state.user is None:
        return "LoggedOut"
    return "Degraded" if state.degraded else "LoggedIn"


def edges() -> list[tuple[str, str, str]]:
    """Every (from phase, to phase, transition) the reducer can publish, sorted."""
    found: set[tuple[str, str, str]] = set()
    for name, state in _PHASES.items():
        for event in _events():
            try:
                after = reduce(state, event)
            except IllegalTransitionError:
                continue
            if after is not state:
                found.add((name, _phase_of(after), after.transition.value.upper()))
    return sorted(found)


def mermaid() -> str:
    """The diagram as a Mermaid ``stateDiagram-v2``."""
    lines = ["stateDiagram-v2", "    [*] --> LoggedOut: INITIAL", "    [*] --> LoggedIn: RESTORED"]
    lines += [f"    {source} --> {target}: {label}" for source, target, label in edges()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(mermaid(), end="")
