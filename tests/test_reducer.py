"""The pure reducer: each event in each phase gives the next state."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimi_reactive import (
    AuthRoute,
    MimiUser,
    SessionState,
    SessionStorageError,
    Transition,
    TransportError,
)
from mimi_reactive._messages import (
    AccountDeleted,
    CommandFailed,
    Event,
    RefreshFailed,
    SessionAdopted,
    SignedIn,
    SignedOut,
    TokensRefreshed,
)
from mimi_reactive._reducer import IllegalTransitionError, reduce

from . import strategies as st_

ALICE = MimiUser(id="u-alice", anonymous_id="alice-anonymous-id-0000")
BOB = MimiUser(id="u-bob", anonymous_id="bob-anonymous-id-00000")
NOBODY = SessionState()


@pytest.mark.parametrize(
    ("route", "transition"),
    [
        (AuthRoute.sign_up_anonymously(), Transition.ANONYMOUS_CREATED),
        (AuthRoute.log_in_anonymously("x" * 20), Transition.LOGGED_IN),
        (AuthRoute.log_in(email="a@b.test", password="password1"), Transition.LOGGED_IN),
        (AuthRoute.sign_up(email="a@b.test", password="password1"), Transition.SIGNED_UP),
    ],
)
def test_sign_in_from_nobody(route: AuthRoute, transition: Transition) -> None:
    """Signing in from nobody is tagged by the route."""
    assert reduce(NOBODY, SignedIn(ALICE, route)) == SessionState(ALICE, None, transition)


def test_switch_keeps_the_replaced_user() -> None:
    """Signing in after logging a user out to make room is a switch from that user."""
    out = reduce(SessionState(ALICE, transition=Transition.LOGGED_IN), SignedOut())
    assert out == SessionState(None, ALICE, Transition.LOGGED_OUT)
    route = AuthRoute.log_in_anonymously(BOB.anonymous_id)
    assert reduce(out, SignedIn(BOB, route, replaced=ALICE)) == SessionState(
        BOB, ALICE, Transition.SWITCHED_USER
    )


@pytest.mark.parametrize(
    ("before", "route", "transition"),
    [
        (NOBODY, AuthRoute.sign_up_anonymously(), Transition.ANONYMOUS_CREATED),
        (
            SessionState(ALICE, transition=Transition.LOGGED_IN),
            AuthRoute.promote(email="a@b.test", password="password1"),
            Transition.PROMOTED,
        ),
    ],
)
def test_a_sign_in_the_storage_could_not_keep_is_degraded_with_its_error(
    before: SessionState, route: AuthRoute, transition: Transition
) -> None:
    """A sign-in or promotion that was not kept names the storage's error and is degraded
    (the keeper renews it until a save succeeds); the transition is the usual one."""
    unsaved = SessionStorageError("could not save the session: No space left on device")
    after = reduce(before, SignedIn(ALICE, route, error=unsaved))
    assert (after.user, after.transition, after.error) == (ALICE, transition, unsaved)
    assert after.degraded


def test_a_deletion_the_storage_could_not_forget_carries_its_error() -> None:
    """The account is gone either way; DELETED says the storage still holds the session."""
    unforgotten = SessionStorageError("could not clear the session: Read-only file system")
    state = SessionState(ALICE, transition=Transition.LOGGED_IN)
    assert reduce(state, AccountDeleted(unforgotten)) == SessionState(
        None, ALICE, Transition.DELETED, unforgotten
    )


def test_promote_keeps_the_user_id() -> None:
    """Promotion replaces the anonymous user by the same user with credentials."""
    promoted = MimiUser(id=ALICE.id, is_anonymous=False, email="a@b.test")
    state = SessionState(ALICE, transition=Transition.LOGGED_IN)
    route = AuthRoute.promote(email="a@b.test", password="password1")
    assert reduce(state, SignedIn(promoted, route)) == SessionState(
        promoted, ALICE, Transition.PROMOTED
    )


@given(st_.states)
def test_failure_keeps_the_user_and_carries_the_error(state: SessionState) -> None:
    """A failure changes nothing but the transition and the error."""
    error = TransportError("down")
    after = reduce(state, CommandFailed(error))
    assert after == SessionState(state.user, state.user, Transition.FAILED, error)


def test_illegal_events_raise() -> None:
    """The state machine rejects events its phase does not allow."""
    with pytest.raises(IllegalTransitionError):
        reduce(NOBODY, SignedOut())
    with pytest.raises(IllegalTransitionError):
        reduce(SessionState(ALICE), SignedIn(BOB, AuthRoute.sign_up_anonymously()))
    with pytest.raises(IllegalTransitionError):
        reduce(NOBODY, SignedIn(BOB, AuthRoute.promote(email="a@b.test", password="p" * 8)))


@given(st_.states, st_.users)
def test_reduce_is_pure(state: SessionState, user: MimiUser) -> None:
    """The same state and event always give the same state, and the input is untouched."""
    before = state
    event = (
        SignedOut() if state.user is not None else SignedIn(user, AuthRoute.sign_up_anonymously())
    )
    assert reduce(state, event) == reduce(state, event)
    assert state == before


@given(
    st_.logged_in_states,
    st_.users,
    st.booleans(),
    st.sampled_from(["refreshed", "refresh_failed", "adopted"]),
)
def test_an_event_that_changes_nothing_returns_the_same_object(
    state: SessionState, other: MimiUser, degraded: bool, kind: str
) -> None:
    """When the next state equals the current one it is the current object itself, so the
    store publishes nothing by an identity check."""
    state = attrs.evolve(state, degraded=degraded)
    assert state.user is not None
    events: dict[str, Event] = {
        "refreshed": TokensRefreshed(state.user),
        "refresh_failed": RefreshFailed(TransportError("down")),
        "adopted": SessionAdopted(state.user),
    }
    for event in (events[kind], SessionAdopted(other)):
        after = reduce(state, event)
        if after == state:
            assert after is state


_UNSAVED = SessionStorageError("the storage could not save the session: Read-only file system")
_DOWN = TransportError("down")
_KEPT = SessionAdopted(ALICE, kept=True)


# (the events after ALICE logged in, whether a write-back that keeps the session then
# recovers it, the transitions published): a write-back ends only what the storage caused.
DEGRADATIONS: dict[str, tuple[list[Event], bool, list[Transition]]] = {
    "save failed": ([RefreshFailed(_UNSAVED)], True, [Transition.DEGRADED]),
    "file lost, not written back": ([SessionAdopted(ALICE, _UNSAVED)], True, [Transition.DEGRADED]),
    "save failed, then a renewal on the network": (
        [RefreshFailed(_UNSAVED), RefreshFailed(_DOWN)],
        False,
        [Transition.DEGRADED, Transition.DEGRADED],
    ),
    "renewal failed on the network": ([RefreshFailed(_DOWN)], False, [Transition.DEGRADED]),
    "renewal failed, then one worked but its save failed": (
        [RefreshFailed(_DOWN), RefreshFailed(_UNSAVED)],
        True,
        [Transition.DEGRADED, Transition.DEGRADED],
    ),
    "save failed twice, the network twice": (
        [
            RefreshFailed(_UNSAVED),
            RefreshFailed(_UNSAVED),
            RefreshFailed(_DOWN),
            RefreshFailed(_DOWN),
        ],
        False,
        [Transition.DEGRADED, Transition.DEGRADED],
    ),
}


@pytest.mark.parametrize("case", DEGRADATIONS.values(), ids=DEGRADATIONS.keys())
def test_a_write_back_recovers_only_a_degradation_the_storage_alone_caused(
    case: tuple[list[Event], bool, list[Transition]],
) -> None:
    """A write-back that keeps the session (kept=True) is RECOVERED only while the storage
    alone degraded it; a renewal that failed (its tokens may be expired) keeps it DEGRADED
    until a kept renewal. DEGRADED is published again only when the cause changes."""
    events, recovers, published = case
    state = SessionState(ALICE, transition=Transition.LOGGED_IN)
    seen = []
    for event in events:
        after = reduce(state, event)
        if after is not state:
            seen.append(after.transition)
        state = after
    assert seen == published
    assert state.degraded
    written_back = reduce(state, _KEPT)
    if recovers:
        assert written_back == SessionState(ALICE, ALICE, Transition.RECOVERED)
    else:
        assert written_back is state
        assert reduce(state, TokensRefreshed(ALICE)).transition is Transition.RECOVERED
