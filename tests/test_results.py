"""The sealed results of the anonymous-login manager."""

from __future__ import annotations

import attrs
import pytest

from mimi_reactive import (
    AnonymousLoginResult,
    Failure,
    MimiCoreError,
    Skipped,
    Success,
    TransportError,
)


def kind(result: AnonymousLoginResult) -> str:
    match result:
        case Success(anonymous_id=anonymous_id):
            return f"success:{anonymous_id}"
        case Failure(error=TransportError()):
            return "offline"
        case Failure():
            return "failure"
        case Skipped():
            return "skipped"


def test_results_match_and_compare() -> None:
    """Results take part in match, and compare by value (a failure by its exception)."""
    error = TransportError("down")
    assert kind(Success("id-1234567890")) == "success:id-1234567890"
    assert kind(Failure(error)) == "offline"
    assert kind(Failure(MimiCoreError("x"))) == "failure"
    assert kind(Skipped()) == "skipped"
    assert Success("a") == Success("a") != Success("b")
    assert Skipped() == Skipped()
    assert Failure(error) == Failure(error) != Failure(TransportError("down"))


def test_results_are_frozen() -> None:
    """A result cannot be changed after the fact."""
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Success("a").anonymous_id = "b"  # type: ignore[misc]
