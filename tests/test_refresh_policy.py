"""RefreshPolicy: the one rule for when tokens are refreshed and handed out."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mimi_reactive import ConfigurationError, MimiUser, RefreshPolicy, Session

from . import strategies as st_
from .strategies import session_for

U1 = MimiUser("u1")


def test_an_hour_long_token_is_due_at_four_fifths_and_usable_until_thirty_seconds_before() -> None:
    """The defaults: refresh when 20 % of the lifetime is left, stop handing out 30 s early."""
    policy = RefreshPolicy()
    hour = session_for(U1, obtained_at=1000.0)
    assert policy.due_at(hour, 1000.0) == 1000.0 + 2880.0
    assert policy.usable_until(hour, 1000.0) == 1000.0 + 3570.0


def test_tokens_that_never_expire_are_never_due() -> None:
    """Without a lifetime the token is always usable and never refreshed."""
    policy = RefreshPolicy()
    forever = session_for(U1, expires_in=None)
    assert policy.due_at(forever, 0.0) is None
    assert policy.is_usable(forever, 1e12)
    assert policy.next_refresh_at(forever, degraded=False, now=0.0) is None


@given(st_.timed_sessions, st_.refresh_policies, st_.instants)
def test_due_no_later_than_unusable(candidate: Session, policy: RefreshPolicy, now: float) -> None:
    """Tokens fall due no later than they stop being handed out, so a caller that finds
    the token unusable always gets a refresh, never a stale token."""
    due, until = policy.due_at(candidate, now), policy.usable_until(candidate, now)
    assert (due is None) == (until is None)
    if due is not None and until is not None:
        assert due <= until


@given(st_.timed_sessions, st_.refresh_policies, st_.instants)
def test_unusable_implies_due(candidate: Session, policy: RefreshPolicy, now: float) -> None:
    """Whenever the access token may not be handed out, a refresh is due."""
    if not policy.is_usable(candidate, now):
        assert policy.is_due(candidate, now)


@given(st_.timed_sessions, st_.refresh_policies, st_.instants)
def test_the_keeper_never_refreshes_before_the_guard_agrees(
    candidate: Session, policy: RefreshPolicy, now: float
) -> None:
    """When the keeper's time comes, the guard finds the tokens due (no wasted command)."""
    at = policy.next_refresh_at(candidate, degraded=False, now=now)
    if at is not None:
        assert policy.is_due(candidate, at)


@given(st_.timed_sessions, st_.refresh_policies, st_.instants)
def test_the_keeper_never_loops_faster_than_the_minimum_interval(
    candidate: Session, policy: RefreshPolicy, now: float
) -> None:
    """However short the lifetime, background refreshes are min_interval apart at least
    (a session from the future excepted: it is due at once, and its refresh is not)."""
    assume(candidate.obtained_at <= now)
    at = policy.next_refresh_at(candidate, degraded=False, now=now)
    if at is not None:
        assert at >= candidate.obtained_at + policy.min_interval


@given(st_.timed_sessions, st_.refresh_policies, st_.instants)
def test_no_token_lives_longer_than_its_lifetime_from_now(
    candidate: Session, policy: RefreshPolicy, now: float
) -> None:
    """Wherever the clock stands (set back since, or a stored time wrong), the access token
    expires, and stops being handed out, no later than its lifetime from now."""
    expires_in = candidate.tokens.expires_in
    assume(expires_in is not None)
    assert expires_in is not None
    expires_at, until = candidate.expires_at(now), policy.usable_until(candidate, now)
    assert expires_at is not None
    assert until is not None
    assert until <= expires_at <= now + expires_in


@given(
    st_.timed_sessions,
    st_.refresh_policies,
    st_.clock_set_backs,
    st.booleans(),
)
def test_tokens_from_the_future_are_due_now_and_renewed_by_the_keeper_now(
    candidate: Session, policy: RefreshPolicy, behind: float, degraded: bool
) -> None:
    """Tokens obtained after ``now`` are of unknown age: due at once, for the guard and the
    keeper alike, and still handed out meanwhile (their lifetime counts from now)."""
    now = max(0.0, candidate.obtained_at - behind)  # the clock set back since they came
    assume(candidate.obtained_at > now and candidate.tokens.expires_in is not None)
    assert candidate.tokens.expires_in is not None
    assert policy.is_due(candidate, now)
    assert policy.next_refresh_at(candidate, degraded=degraded, now=now) == now
    assert candidate.expires_at(now) == now + candidate.tokens.expires_in
    if candidate.tokens.expires_in >= 1.0:  # any shorter may round to nothing at 5e9 s
        assert policy.is_usable(candidate, now)


@given(st_.timed_sessions, st_.refresh_policies, st_.instants)
def test_a_degraded_session_is_retried_now(
    candidate: Session, policy: RefreshPolicy, now: float
) -> None:
    """A degraded session is retried at once; the keeper spaces retries out itself."""
    assert policy.next_refresh_at(candidate, degraded=True, now=now) == now


@given(st_.lasting_lifetimes, st_.refresh_policies)
def test_fresh_tokens_are_usable_and_not_due(lifetime: float, policy: RefreshPolicy) -> None:
    """Right after tokens of a second or more arrive they are handed out and not yet due."""
    fresh = session_for(U1, obtained_at=1000.0, expires_in=lifetime)
    assert policy.is_usable(fresh, fresh.obtained_at)
    due = policy.due_at(fresh, fresh.obtained_at)
    assert due is not None
    assert math.isfinite(due)
    assert due > fresh.obtained_at


def test_ahead_must_leave_some_lifetime() -> None:
    """A policy that would refresh the moment tokens arrive is refused at construction."""
    for ahead in (1.0, -0.1):
        with pytest.raises(ValueError, match="ahead"):
            RefreshPolicy(ahead=ahead)


@pytest.mark.parametrize("min_interval", [0, 0.0, 1e-9, 0.009])
def test_a_floor_that_would_let_the_keeper_loop_is_refused(min_interval: float) -> None:
    """min_interval 0 (or under 10 ms) is refused at construction, saying why: with tokens
    that live 0 seconds the keeper would refresh thousands of times a second."""
    with pytest.raises(ConfigurationError, match=r"min_interval must be 0\.01 seconds or more"):
        RefreshPolicy(min_interval=min_interval)
    assert RefreshPolicy(min_interval=0.01).min_interval == 0.01
