"""The pure guards: what a command may do in a state, and why."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest
from hypothesis import find, given
from hypothesis import strategies as st

from mimi_reactive import (
    AuthRoute,
    BackendCapabilities,
    InvalidRouteError,
    LogOut,
    MimiConfiguration,
    MimiUser,
    Reason,
    SessionState,
    SignUpAnonymously,
    Transition,
)
from mimi_reactive._credential_rules import anonymous_id_problem
from mimi_reactive._guards import (
    _GUARDS_FOR,
    GUARDS,
    GuardContext,
    decide,
    is_blank_anonymous_id,
)
from mimi_reactive._messages import (
    Authenticate,
    Command,
    EndSession,
    Proceed,
    Refused,
    Satisfied,
    Skipped,
)
from mimi_reactive._server._models import AnonymousLogIn
from mimi_reactive._server._secrets import new_secret

from . import strategies as st_
from .strategies import session_for, session_of

ANON_ONLY = MimiConfiguration(allow_anonymous_user_only=True)
OPEN = MimiConfiguration(allow_anonymous_user_only=False)
ALICE = MimiUser(id="u-alice", anonymous_id="alice-anonymous-id-0000", is_anonymous=True)
BOB = MimiUser(id="u-bob", anonymous_id=None, is_anonymous=False, email="bob@example.test")
NOBODY = SessionState()


def logged_in(user: MimiUser) -> SessionState:
    return SessionState(user=user, transition=Transition.LOGGED_IN)


def decision(
    command: Command,
    state: SessionState = NOBODY,
    configuration: MimiConfiguration = ANON_ONLY,
    capabilities: BackendCapabilities = BackendCapabilities(),  # noqa: B008
) -> object:
    return decide(context(state, command, configuration, capabilities))


def context(
    state: SessionState,
    command: Command,
    configuration: MimiConfiguration,
    capabilities: BackendCapabilities,
    now: float = 0.0,
) -> GuardContext:
    """What the store would hand the guards: the state and the session behind it."""
    return GuardContext(
        state, command, configuration, capabilities, session=session_of(state.user), now=now
    )


@pytest.mark.parametrize("blank", [None, "", " ", "\t\n"])
def test_blank_anonymous_id_is_skipped(blank: str | None) -> None:
    """A blank anonymous id is skipped with its reason, whoever is logged in."""
    assert decision(AuthRoute.log_in_anonymously(blank)) == Skipped(Reason.BLANK_ANONYMOUS_ID)
    assert decision(AuthRoute.log_in_anonymously(blank), logged_in(ALICE)) == Skipped(
        Reason.BLANK_ANONYMOUS_ID
    )


MALFORMED_CREDENTIALS = [
    (" a@b.test", "password1", Reason.EMAIL_MALFORMED),
    ("a@b.test\n", "password1", Reason.EMAIL_MALFORMED),
    ("", "password1", Reason.EMAIL_MALFORMED),
    ("a@localhost", "password1", Reason.EMAIL_MALFORMED),
    ("a" * 248 + "@b.test", "password1", Reason.EMAIL_MALFORMED),  # 255 characters
    ("a@b.test", "", Reason.PASSWORD_EMPTY),
    ("", "", Reason.EMAIL_MALFORMED),
]
CREDENTIAL_ROUTES = [AuthRoute.log_in, AuthRoute.sign_up, AuthRoute.promote]


@pytest.mark.parametrize("state", [NOBODY, logged_in(ALICE), logged_in(BOB)])
@pytest.mark.parametrize("route", CREDENTIAL_ROUTES, ids=lambda route: route.__name__)
@pytest.mark.parametrize(("email", "password", "reason"), MALFORMED_CREDENTIALS)
def test_credentials_no_service_takes_are_skipped_before_any_plan(
    email: str,
    password: str,
    reason: Reason,
    route: Callable[..., AuthRoute],
    state: SessionState,
) -> None:
    """A malformed email or an empty password is skipped with its reason, whoever is logged
    in: no plan, so nobody is logged out first."""
    command = route(email=email, password=password)
    assert decision(command, state, OPEN) == Skipped(reason)


@pytest.mark.parametrize("route", CREDENTIAL_ROUTES, ids=lambda route: route.__name__)
def test_anonymous_only_refuses_malformed_credentials_for_what_they_are(
    route: Callable[..., AuthRoute],
) -> None:
    """In anonymous-only mode a credential route is refused as such, malformed or not."""
    command = route(email=" a@b.test", password="")
    assert decision(command, logged_in(ALICE)) == Refused(Reason.ANONYMOUS_ONLY_FORBIDS_CREDENTIALS)


def test_a_well_formed_log_in_over_another_user_still_logs_them_out_first() -> None:
    """A well-formed log-in (its password may be wrong: only the service can tell) plans the
    switch: log the current user out, then log in."""
    route = AuthRoute.log_in(email="a@b.test", password="x")
    assert decision(route, logged_in(ALICE), OPEN) == Proceed(
        (EndSession(session_for(ALICE)), Authenticate(route, replacing=ALICE))
    )


def test_same_anonymous_id_is_already_satisfied() -> None:
    """Logging in the anonymous id already logged in plans nothing."""
    route = AuthRoute.log_in_anonymously(ALICE.anonymous_id)
    assert decision(route, logged_in(ALICE)) == Satisfied(Reason.ALREADY_LOGGED_IN)


def test_different_user_is_logged_out_first() -> None:
    """With another user logged in, the plan logs them out before logging in."""
    route = AuthRoute.log_in_anonymously("another-anonymous-id-1111")
    assert decision(route, logged_in(ALICE)) == Proceed(
        (EndSession(session_for(ALICE)), Authenticate(route, replacing=ALICE))
    )


def test_nobody_logged_in_logs_straight_in() -> None:
    """With nobody logged in, the plan is the log-in alone."""
    route = AuthRoute.log_in_anonymously("another-anonymous-id-1111")
    assert decision(route) == Proceed((Authenticate(route),))


@pytest.mark.parametrize("configuration", [ANON_ONLY, OPEN], ids=["anonymous-only", "open"])
@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (NOBODY, Proceed((Authenticate(AuthRoute.sign_up_anonymously()),))),
        (logged_in(ALICE), Satisfied(Reason.ALREADY_LOGGED_IN)),
        (
            logged_in(BOB),
            Proceed(
                (
                    EndSession(session_for(BOB)),
                    Authenticate(AuthRoute.sign_up_anonymously(), replacing=BOB),
                )
            ),
        ),
    ],
    ids=["nobody", "anonymous-user", "registered-user"],
)
def test_anonymous_sign_up_keeps_an_anonymous_user_logged_in(
    state: SessionState, expected: object, configuration: MimiConfiguration
) -> None:
    """An anonymous sign-up over an anonymous user is satisfied with no call (a new user
    would leave them behind for good); over a registered one it switches."""
    assert decision(AuthRoute.sign_up_anonymously(), state, configuration) == expected


@pytest.mark.parametrize("configuration", [ANON_ONLY, OPEN], ids=["anonymous-only", "open"])
def test_a_route_the_backend_cannot_do_says_so_whatever_the_configuration(
    configuration: MimiConfiguration,
) -> None:
    """A backend without log-in by id refuses it as backend_cannot, not by asking for an
    anonymous-only mode that would not help."""
    caps = BackendCapabilities(routes=frozenset({SignUpAnonymously}))
    route = AuthRoute.log_in_anonymously("some-anonymous-id-2222")
    assert decision(route, configuration=configuration, capabilities=caps) == Refused(
        Reason.BACKEND_CANNOT
    )


def test_anonymous_log_in_needs_anonymous_only_mode() -> None:
    """Logging in by anonymous id is refused unless the app is anonymous-only."""
    for anonymous_id in ("some-anonymous-id-2222", None):
        assert decision(AuthRoute.log_in_anonymously(anonymous_id), configuration=OPEN) == Refused(
            Reason.ANONYMOUS_LOG_IN_NEEDS_ANONYMOUS_ONLY
        )


@pytest.mark.parametrize(
    "route",
    [
        AuthRoute.log_in(email="a@b.test", password="password1"),
        AuthRoute.sign_up(email="a@b.test", password="password1"),
        AuthRoute.promote(email="a@b.test", password="password1"),
    ],
)
def test_anonymous_only_refuses_credential_routes(route: AuthRoute) -> None:
    """In anonymous-only mode no route can make a user non-anonymous."""
    assert decision(route, logged_in(ALICE)) == Refused(Reason.ANONYMOUS_ONLY_FORBIDS_CREDENTIALS)


def test_unsupported_route_is_refused() -> None:
    """A route the backend cannot perform is refused before any call."""
    caps = BackendCapabilities(routes=frozenset({SignUpAnonymously}))
    route = AuthRoute.log_in_anonymously("some-anonymous-id-2222")
    assert decision(route, capabilities=caps) == Refused(Reason.BACKEND_CANNOT)


def test_log_out_with_nobody_is_satisfied() -> None:
    """Logging out when nobody is logged in has nothing to do."""
    assert decision(LogOut()) == Satisfied(Reason.NO_USER_LOGGED_IN)
    assert decision(LogOut(), logged_in(BOB)) == Proceed((EndSession(session_for(BOB)),))


def test_promote_needs_a_logged_in_anonymous_user() -> None:
    """Promotion is refused without an anonymous user, and planned alone with one."""
    route = AuthRoute.promote(email="a@b.test", password="password1")
    assert decision(route, configuration=OPEN) == Refused(Reason.PROMOTE_NEEDS_ANONYMOUS_USER)
    assert decision(route, logged_in(BOB), OPEN) == Refused(Reason.PROMOTE_NEEDS_ANONYMOUS_USER)
    assert decision(route, logged_in(ALICE), OPEN) == Proceed(
        (Authenticate(route, session_of(ALICE)),)
    )


@given(st_.states, st_.commands, st_.capabilities)
def test_anonymous_only_never_plans_a_non_anonymous_route(
    state: SessionState, command: Command, capabilities: BackendCapabilities
) -> None:
    """Whatever the state, anonymous-only mode plans only anonymous routes."""
    verdict = decide(context(state, command, ANON_ONLY, capabilities))
    if isinstance(verdict, Proceed):
        for effect in verdict.effects:
            if isinstance(effect, Authenticate):
                assert effect.route.is_anonymous


@given(st_.states, st_.commands, st_.configurations, st_.capabilities)
def test_every_plan_starts_from_the_current_user(
    state: SessionState,
    command: Command,
    configuration: MimiConfiguration,
    capabilities: BackendCapabilities,
) -> None:
    """A plan logs out only the user logged in, and only when someone is logged in."""
    verdict = decide(context(state, command, configuration, capabilities))
    if isinstance(verdict, Proceed):
        ends = [e for e in verdict.effects if isinstance(e, EndSession)]
        assert all(end.session.user == state.user for end in ends)
        assert len(ends) <= 1
        if state.user is None:
            assert not ends
    else:
        assert verdict.reason in Reason


@given(
    st_.states,
    st_.every_command,
    st_.configurations,
    st_.capabilities,
    st_.session_ages,
    st.booleans(),
    st.booleans(),
)
def test_each_command_is_asked_about_by_the_guards_that_look_at_it(
    state: SessionState,
    command: Command,
    configuration: MimiConfiguration,
    capabilities: BackendCapabilities,
    now: float,
    same_user: bool,
    degraded: bool,
) -> None:
    """Asking only a command's own guards decides as asking every guard in order would."""
    user = state.user
    if user is not None:
        state = attrs.evolve(state, degraded=degraded)
        if same_user and user.anonymous_id is not None:
            command = AuthRoute.log_in_anonymously(user.anonymous_id)
    guard_context = context(state, command, configuration, capabilities, now)
    verdicts = (guard(guard_context) for guard in GUARDS)
    expected = next((verdict for verdict in verdicts if verdict is not None), None)
    decided = decide(guard_context)
    if expected is None:
        assert isinstance(decided, Proceed)
    else:
        assert decided == expected


@given(st_.states, st_.every_command, st_.configurations, st_.capabilities, st.booleans())
def test_a_guard_lets_through_every_command_it_does_not_look_at(
    state: SessionState,
    command: Command,
    configuration: MimiConfiguration,
    capabilities: BackendCapabilities,
    degraded: bool,
) -> None:
    """Each guard, asked on its own, returns None for a command outside its looks_at."""
    state = attrs.evolve(state, degraded=degraded and state.user is not None)
    guard_context = context(state, command, configuration, capabilities)
    own = _GUARDS_FOR[type(command)]
    for guard in GUARDS:
        if guard not in own:
            assert guard(guard_context) is None, guard.__name__


@pytest.mark.parametrize(
    "command_type",
    sorted(_GUARDS_FOR, key=str),  # one order in every pytest-xdist worker
    ids=lambda t: t.__name__,
)
def test_the_commands_drawn_cover_every_command_type(command_type: type) -> None:
    """The strategy above draws every command type decide knows, so none goes unchecked."""
    find(st_.every_command, lambda command: type(command) is command_type)


# The word a guard's name starts with, for the decision it returns.
GUARD_PREFIX = {"Skipped": "skip_", "Refused": "refuse_", "Satisfied": "satisfied_"}


@pytest.mark.parametrize("guard", GUARDS, ids=lambda guard: guard.__name__)
def test_a_guards_name_says_the_decision_it_returns(guard: Callable[..., object]) -> None:
    """skip_* returns Skipped, refuse_* Refused, satisfied_* Satisfied (or None)."""
    decision, none = str(guard.__annotations__["return"]).split(" | ")
    assert none == "None"
    assert guard.__name__.startswith(GUARD_PREFIX[decision])


def test_blankness() -> None:
    """None, empty and whitespace are blank; anything else is not."""
    assert is_blank_anonymous_id(None)
    assert is_blank_anonymous_id(" \t")
    assert not is_blank_anonymous_id(" x ")


@given(st_.issued_anonymous_ids)
def test_an_id_a_backend_could_issue_is_taken(anonymous_id: str) -> None:
    """Every id the server and the scripted backend issue (token_urlsafe), and every id the
    server's format allows, makes a route."""
    assert AuthRoute.log_in_anonymously(anonymous_id).anonymous_id == anonymous_id


def test_the_ids_the_server_issues_are_taken() -> None:
    """The reference server's own ids make routes."""
    for _ in range(100):
        AuthRoute.log_in_anonymously(new_secret())


@given(st_.offered_anonymous_ids)
def test_an_id_the_route_takes_is_one_the_server_takes(anonymous_id: str) -> None:
    """No id the route takes is refused by the server for its format (a 400 after the
    current user was logged out); blank ids are skipped, the rest refused with the reason."""
    if is_blank_anonymous_id(anonymous_id):
        AuthRoute.log_in_anonymously(anonymous_id)  # taken here, skipped by the guard
    elif (reason := anonymous_id_problem(anonymous_id)) is None:
        AuthRoute.log_in_anonymously(anonymous_id)
        AnonymousLogIn(anonymous_id=anonymous_id)  # the server takes it
    else:
        with pytest.raises(InvalidRouteError) as raised:
            AuthRoute.log_in_anonymously(anonymous_id)
        assert raised.value.reason is reason


@pytest.mark.parametrize(
    "spoil", st_.SPOILT_ANONYMOUS_IDS.values(), ids=st_.SPOILT_ANONYMOUS_IDS.keys()
)
def test_an_id_no_backend_issues_is_refused_saying_why(spoil: Callable[[str], str]) -> None:
    """A spoilt id raises InvalidRouteError (a ValueError) with its reason, never the id."""
    issued = new_secret()
    anonymous_id = spoil(issued)
    with pytest.raises(InvalidRouteError) as raised:
        AuthRoute.log_in_anonymously(anonymous_id)
    assert raised.value.reason in {
        Reason.ANONYMOUS_ID_SURROUNDED_BY_WHITESPACE,
        Reason.ANONYMOUS_ID_TOO_LONG,
        Reason.ANONYMOUS_ID_MALFORMED,
    }
    assert issued[4:] not in str(raised.value)
    if anonymous_id != anonymous_id.strip():
        assert "whitespace" in str(raised.value)
