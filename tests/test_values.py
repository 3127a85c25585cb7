"""The equality and hash every value class shares (value_eq, value_hash): as attrs' own."""

from __future__ import annotations

import attrs
from hypothesis import given

from mimi_reactive import SessionState, TransportError
from mimi_reactive._messages import Outcome, RefreshFailed, SessionExpired

from .strategies import secrets_, states


def fields_of(state: SessionState) -> tuple[object, ...]:
    """A state's fields in order: what attrs' generated equality compares."""
    return tuple(getattr(state, field.name) for field in attrs.fields(SessionState))


@given(states, states)
def test_states_are_equal_exactly_when_their_fields_are(a: SessionState, b: SessionState) -> None:
    """Two states are equal (and not unequal) exactly when every field is equal."""
    assert (a == b) is (fields_of(a) == fields_of(b))
    assert (a != b) is (fields_of(a) != fields_of(b))


@given(states)
def test_equal_states_hash_alike(state: SessionState) -> None:
    """A copy of a state is equal to it and has its hash, so states work as keys and in sets."""
    copy = attrs.evolve(state)
    assert copy is not state
    assert copy == state
    assert hash(copy) == hash(state)
    assert len({state, copy}) == 1


@given(states)
def test_a_value_is_never_equal_to_another_type(state: SessionState) -> None:
    """A value compared with something of another type is unequal, not an error."""
    assert state != fields_of(state)
    assert state != object()


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
