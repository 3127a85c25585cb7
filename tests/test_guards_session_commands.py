"""The pure guards on the commands that act on the session itself, not a route: log out
(everywhere), delete the account, refresh, sync. What each decides, and why."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given

from mimi_reactive import (
    BackendCapabilities,
    LogOut,
    MimiConfiguration,
    MimiUser,
    Reason,
    RefreshPolicy,
)
from mimi_reactive._guards import decide
from mimi_reactive._messages import (
    AdoptSession,
    Command,
    DeleteAccount,
    DeleteUser,
    EndSession,
    Proceed,
    RefreshSession,
    RefreshTokens,
    Refused,
    Satisfied,
    SyncSession,
)

from . import strategies as st_
from .strategies import session_for
from .test_guards import ALICE, BOB, NOBODY, OPEN, context, logged_in

CAN = BackendCapabilities(refresh=True, revoke_everywhere=True, delete=True)
CANNOT = BackendCapabilities(refresh=False, revoke_everywhere=False, delete=False)
# session_for's tokens last an hour: with the default policy they fall due at 2880 s.
DUE = 2880.0


# (command, who is logged in, what the backend can do, the decision)
DECISIONS: dict[str, tuple[Command, MimiUser | None, BackendCapabilities, object]] = {
    "log out everywhere": (
        LogOut(everywhere=True),
        BOB,
        CAN,
        Proceed((EndSession(session_for(BOB), everywhere=True),)),
    ),
    "log out everywhere, the backend cannot": (
        LogOut(everywhere=True),
        BOB,
        CANNOT,
        Refused(Reason.BACKEND_CANNOT_LOG_OUT_EVERYWHERE),
    ),
    "log out here, the backend cannot everywhere": (
        LogOut(),
        BOB,
        CANNOT,
        Proceed((EndSession(session_for(BOB)),)),
    ),
    "delete": (DeleteAccount(), ALICE, CAN, Proceed((DeleteUser(session_for(ALICE)),))),
    "delete, nobody logged in": (DeleteAccount(), None, CAN, Refused(Reason.NO_USER_LOGGED_IN)),
    "delete, the backend cannot": (
        DeleteAccount(),
        ALICE,
        CANNOT,
        Refused(Reason.BACKEND_CANNOT_DELETE_ACCOUNTS),
    ),
    # What the backend refuses comes first (docs/architecture.md): logging in would not help.
    "delete, nobody logged in, the backend cannot": (
        DeleteAccount(),
        None,
        CANNOT,
        Refused(Reason.BACKEND_CANNOT_DELETE_ACCOUNTS),
    ),
    "refresh": (
        RefreshSession(force=True),
        ALICE,
        CAN,
        Proceed((RefreshTokens(session_for(ALICE)),)),
    ),
    "refresh, nobody logged in": (
        RefreshSession(force=True),
        None,
        CAN,
        Refused(Reason.NO_USER_LOGGED_IN),
    ),
    "refresh, the backend cannot": (
        RefreshSession(force=True),
        ALICE,
        CANNOT,
        Refused(Reason.BACKEND_CANNOT_REFRESH),
    ),
    "refresh of fresh tokens, the backend cannot": (
        RefreshSession(),
        ALICE,
        CANNOT,
        Refused(Reason.BACKEND_CANNOT_REFRESH),
    ),
    # access_token() with nobody logged in raises NotLoggedInError, whatever the backend
    # (README): the refresh it asks for is refused as such.
    "refresh, nobody logged in, the backend cannot": (
        RefreshSession(),
        None,
        CANNOT,
        Refused(Reason.NO_USER_LOGGED_IN),
    ),
    "sync, nobody logged in": (SyncSession(), None, CAN, Proceed((AdoptSession(None),))),
    "sync": (SyncSession(), ALICE, CAN, Proceed((AdoptSession(session_for(ALICE)),))),
}


@pytest.mark.parametrize(
    ("command", "user", "capabilities", "expected"), DECISIONS.values(), ids=DECISIONS.keys()
)
def test_a_session_command_is_decided_by_who_is_logged_in_and_what_the_backend_can(
    command: Command, user: MimiUser | None, capabilities: BackendCapabilities, expected: object
) -> None:
    """Log-outs, deletions, refreshes and syncs are refused, or planned on the session held."""
    state = NOBODY if user is None else logged_in(user)
    assert decide(context(state, command, OPEN, capabilities)) == expected


# (seconds since the hour-long tokens came, forced, degraded, whether a refresh is planned)
REFRESHES: dict[str, tuple[float, bool, bool, bool]] = {
    "fresh": (0.0, False, False, False),
    "just before due": (DUE - 1.0, False, False, False),
    "due": (DUE, False, False, True),
    "expired": (7200.0, False, False, True),
    "fresh, forced": (0.0, True, False, True),
    "fresh, degraded": (0.0, False, True, True),
}


@pytest.mark.parametrize(
    ("now", "force", "degraded", "planned"), REFRESHES.values(), ids=REFRESHES.keys()
)
def test_a_refresh_of_tokens_not_yet_due_is_satisfied_unless_forced_or_degraded(
    now: float, force: bool, degraded: bool, planned: bool
) -> None:
    """Tokens not due are kept (TOKENS_FRESH); due ones, a forced refresh (refresh()) and
    a degraded session (retried at once) plan a refresh of the session held."""
    state = attrs.evolve(logged_in(ALICE), degraded=degraded)
    verdict = decide(context(state, RefreshSession(force=force), OPEN, CAN, now))
    if planned:
        assert verdict == Proceed((RefreshTokens(session_for(ALICE)),))
    else:
        assert verdict == Satisfied(Reason.TOKENS_FRESH)


@given(st_.session_ages, st_.refresh_policies)
def test_the_guard_refreshes_exactly_when_the_policy_says_the_tokens_are_due(
    now: float, policy: RefreshPolicy
) -> None:
    """An unforced refresh of a session in good health is planned iff the policy finds the
    tokens due at that time: the guard and the keeper ask the one rule."""
    configuration = MimiConfiguration(refresh=policy)
    verdict = decide(context(logged_in(ALICE), RefreshSession(), configuration, CAN, now))
    due = policy.is_due(session_for(ALICE), now)
    assert isinstance(verdict, Proceed) == due
    if not due:
        assert verdict == Satisfied(Reason.TOKENS_FRESH)
