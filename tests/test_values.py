"""The equality and hash every value class shares (value_eq, value_hash): as attrs' own; and
the values made through their slots' setters (field_setters), as their classes build them."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimi_reactive import (
    AuthRoute,
    AuthTokens,
    MimiUser,
    Reason,
    Session,
    SessionState,
    SessionStorageError,
    Transition,
    TransportError,
)
from mimi_reactive._made import (
    new_authenticate,
    new_end_session,
    new_outcome,
    new_proceed,
    new_signed_in,
    new_signed_out,
    new_state,
)
from mimi_reactive._messages import (
    Authenticate,
    EndSession,
    Outcome,
    Proceed,
    RefreshFailed,
    SessionExpired,
    SignedIn,
    SignedOut,
)
from mimi_reactive._values import value_eq, value_hash

from .strategies import secrets_, states

# Sessions drawn from few values of each field, so that two draws are often equal.
few_sessions = st.builds(
    Session,
    st.sampled_from([MimiUser("user-1", "id-1"), MimiUser("user-2", "id-2")]),
    st.builds(
        AuthTokens, st.sampled_from(["a1", "a2"]), st.just("r"), st.sampled_from([None, 60.0])
    ),
    st.sampled_from([0.0, 1.0]),
)


def fields_of(session: Session) -> tuple[object, ...]:
    """A session's fields in order: what attrs' generated equality compares."""
    return tuple(getattr(session, field.name) for field in attrs.fields(Session))


def test_sessions_compare_through_the_shared_methods() -> None:
    """Session (the values below) takes value_eq and value_hash, not attrs' own."""
    assert (vars(Session)["__eq__"], vars(Session)["__hash__"]) == (value_eq, value_hash)


@given(few_sessions, few_sessions)
def test_values_are_equal_exactly_when_their_fields_are(a: Session, b: Session) -> None:
    """Two values are equal (and not unequal) exactly when every field is equal."""
    assert (a == b) is (fields_of(a) == fields_of(b))
    assert (a != b) is (fields_of(a) != fields_of(b))


@given(few_sessions, few_sessions)
def test_equal_values_hash_alike(a: Session, b: Session) -> None:
    """Equal values have one hash, so they work as keys and in sets."""
    if a == b:
        assert hash(a) == hash(b)
        assert len({a, b}) == 1
    copy = attrs.evolve(a)
    assert copy == a
    assert hash(copy) == hash(a)


@given(few_sessions)
def test_a_value_is_never_equal_to_another_type(session: Session) -> None:
    """A value compared with something of another type is unequal, not an error."""
    assert session != fields_of(session)
    assert session != object()


def test_values_of_two_classes_with_the_same_fields_differ() -> None:
    """Two events of different classes holding the same error are different events."""
    error = TransportError("offline")
    assert RefreshFailed(error) != SessionExpired(error)
    assert RefreshFailed(error) == RefreshFailed(error)


@given(states, secrets_, secrets_)
def test_a_field_kept_out_of_equality_is_ignored(state: SessionState, a: str, b: str) -> None:
    """Outcomes differing only in the access token they carry (eq=False) are equal and hash
    alike, as attrs' generated methods would have it."""
    first, second = Outcome(state, access_token=a), Outcome(state, access_token=b)
    assert first == second
    assert hash(first) == hash(second)
    assert Outcome(state, skipped=True) != Outcome(state)


ALICE, BOB = MimiUser("user-1", "id-1"), MimiUser("user-2", "id-2")
SWITCHED = SessionState(ALICE, BOB, Transition.SWITCHED_USER)
ALICES = Session(ALICE, AuthTokens("a1", "r1", 60.0), 1.0)
TO_BOB = AuthRoute.log_in_anonymously("id-2")


@pytest.mark.parametrize(
    ("fields", "make", "build"),
    [
        pytest.param(((EndSession(ALICES),),), new_proceed, Proceed, id="a decision"),
        pytest.param((ALICES, True), new_end_session, EndSession, id="a log-out everywhere"),
        pytest.param((TO_BOB, None, ALICE), new_authenticate, Authenticate, id="a sign-in"),
        pytest.param((TO_BOB, ALICES, None), new_authenticate, Authenticate, id="a promotion"),
        pytest.param((TransportError("offline"),), new_signed_out, SignedOut, id="a log-out"),
        pytest.param(
            (BOB, TO_BOB, ALICE, SessionStorageError("not saved")),
            new_signed_in,
            SignedIn,
            id="a switch's sign-in",
        ),
        pytest.param(
            (ALICE, BOB, Transition.SWITCHED_USER, None, False),
            new_state,
            SessionState,
            id="a switch",
        ),
        pytest.param(
            (None, ALICE, Transition.LOGGED_OUT, SessionStorageError("not removed"), False),
            new_state,
            SessionState,
            id="a log-out not kept",
        ),
        pytest.param(
            (BOB, BOB, Transition.DEGRADED, TransportError("offline"), True),
            new_state,
            SessionState,
            id="a degraded state",
        ),
        pytest.param(
            (SWITCHED, None, None, False, "access-1"),
            new_outcome,
            lambda *fields: Outcome(*fields[:4], access_token=fields[4]),
            id="a command done",
        ),
        pytest.param(
            (SWITCHED, TransportError("offline"), Reason.BLANK_ANONYMOUS_ID, True, None),
            new_outcome,
            lambda *fields: Outcome(*fields[:4], access_token=fields[4]),
            id="a command skipped",
        ),
    ],
)
def test_a_value_made_through_its_slots_is_the_one_its_class_builds(
    fields: tuple[object, ...], make: Callable[..., object], build: Callable[..., object]
) -> None:
    """What _made's functions make (skipping attrs' __init__) is, field for field, the
    frozen value the class's constructor builds: equal, with the same hash and repr, and not
    to be changed."""
    made, built = make(*fields), build(*fields)
    assert type(made) is type(built)
    assert attrs.astuple(made, recurse=False) == fields  # type: ignore[arg-type]
    assert (made, hash(made), repr(made)) == (built, hash(built), repr(built))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.error = None  # type: ignore[attr-defined]
