"""The behaviour every backend promises, run on each: the reference server, the Firebase Auth
emulator and the scripted backend. A case skips only what a backend's capabilities exclude."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mimi_reactive import (
    AnonymousAuthManager,
    AuthRoute,
    ClientCredentials,
    ConflictError,
    DeleteAccount,
    Failure,
    FileSessionStorage,
    InvalidCredentialsError,
    InvalidRouteError,
    LogIn,
    LogInAnonymously,
    MimiCore,
    NotLoggedInError,
    Promote,
    Reason,
    RouteRefusedError,
    SessionRevokedError,
    SignUp,
    SignUpAnonymously,
    Skipped,
    Transition,
    TransportError,
    UnsupportedRouteError,
    WeakPasswordError,
)
from mimi_reactive._backend import ALL_ROUTES
from mimi_reactive.testing import StateRecorder

from .contract_backends import (
    RENEW_AT_ONCE,
    FirebaseHarness,
    Harness,
    ReferenceHarness,
    ScriptedHarness,
    new_email,
    new_password,
)
from .tcp_gate import TcpGate

WAIT = 10.0
EXAMPLES: dict[type[AuthRoute], AuthRoute] = {
    SignUpAnonymously: AuthRoute.sign_up_anonymously(),
    LogInAnonymously: AuthRoute.log_in_anonymously("some-anonymous-id"),
    LogIn: AuthRoute.log_in(email="someone@example.com", password="a password"),
    SignUp: AuthRoute.sign_up(email="someone@example.com", password="a password"),
    Promote: AuthRoute.promote(email="someone@example.com", password="a password"),
}


@pytest.fixture(params=["reference", "firebase", "scripted"])
def service_under_test(request: pytest.FixtureRequest) -> tuple[str, Any]:
    """Which backend, with the running service it needs (started only for its own cases)."""
    name = str(request.param)
    if name == "reference":
        return name, (request.getfixturevalue("server"), request.getfixturevalue("client_secret"))
    if name == "firebase":
        return name, request.getfixturevalue("firebase_emulator")
    return name, None


@pytest.fixture
async def service(service_under_test: tuple[str, Any]) -> AsyncIterator[Harness]:
    """Each backend in turn, behind its harness."""
    name, running = service_under_test
    harness: Harness
    if name == "reference":
        server, client_secret = running
        gate = TcpGate("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
        await gate.start()
        harness = ReferenceHarness(server, client_secret, gate)
    elif name == "firebase":
        gate = TcpGate("127.0.0.1", running.port)
        await gate.start()
        harness = FirebaseHarness(running, gate)
    else:
        harness = ScriptedHarness()
    yield harness
    await harness.close()


def needs(service: Harness, *routes: type[AuthRoute], delete: bool = False) -> None:
    """Skip unless the backend declares these routes (and deletion)."""
    missing = [route.__name__ for route in routes if route not in service.capabilities.routes]
    if delete and not service.capabilities.delete:
        missing.append("delete")
    if missing:
        pytest.skip(f"{service.name} does not declare {', '.join(missing)}")


async def test_anonymous_sign_up_publishes_the_new_user(service: Harness) -> None:
    """An anonymous sign-up logs in a new anonymous user: ANONYMOUS_CREATED."""
    needs(service, SignUpAnonymously)
    core, _ = await service.core()
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    assert user.is_anonymous
    assert user.email is None
    assert user.id
    assert transition(core) is Transition.ANONYMOUS_CREATED
    assert core.auth.current_user == user


async def test_a_stored_session_is_restored_and_still_works(
    service: Harness, tmp_path: Path
) -> None:
    """A restart with FileSessionStorage is RESTORED with the same user, and it renews."""
    needs(service, SignUpAnonymously)
    storage = FileSessionStorage(tmp_path / "session.json")
    first, _ = await service.core(storage=storage)
    user = await first.auth.authenticate(AuthRoute.sign_up_anonymously())
    await first.close()
    again, backend = await service.core(storage=FileSessionStorage(tmp_path / "session.json"))
    assert again.auth.state.transition is Transition.RESTORED
    assert again.auth.current_user == user
    await again.auth.refresh()
    assert backend.counts["refresh"] == 1
    assert again.auth.current_user == user


async def test_tokens_renew_ahead_of_expiry_in_the_background(service: Harness) -> None:
    """The keeper renews tokens before they expire, without publishing a state."""
    needs(service, SignUpAnonymously)
    core, backend = await service.core(refresh=RENEW_AT_ONCE)
    recorder = StateRecorder(core)
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    async with asyncio.timeout(WAIT):
        await backend.wait_for_calls("refresh", 2)
    assert core.auth.current_user == user
    assert recorder.transitions == [Transition.INITIAL, Transition.ANONYMOUS_CREATED]


async def test_concurrent_callers_share_one_refresh(service: Harness) -> None:
    """Fifty callers of access_token() on an expired token cause a single refresh."""
    needs(service, SignUpAnonymously)
    now = [time.time()]
    core, backend = await service.core(clock=lambda: now[0])
    await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    now[0] += 3600
    tokens = await asyncio.gather(*(core.auth.access_token() for _ in range(50)))
    assert backend.counts["refresh"] == 1
    assert set(tokens) == {tokens[0]}


async def test_network_trouble_degrades_then_recovers(service: Harness) -> None:
    """Offline, a renewal leaves the user logged in but DEGRADED; back online, RECOVERED."""
    needs(service, SignUpAnonymously)
    core, _ = await service.core()
    recorder = StateRecorder(core)
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    service.go_offline()
    with pytest.raises(TransportError):
        await core.auth.refresh()
    degraded = core.auth.state
    assert degraded.transition is Transition.DEGRADED
    assert degraded.degraded
    assert degraded.user == user
    service.go_online()
    async with asyncio.timeout(WAIT):
        recovered = await recorder.wait_for(Transition.RECOVERED)
    assert recovered.user == user
    assert not recovered.degraded
    assert Transition.LOGGED_OUT not in recorder.transitions


async def test_a_session_the_service_ended_expires(service: Harness, tmp_path: Path) -> None:
    """When the service refuses to renew, the session ends: SESSION_EXPIRED, storage clear."""
    needs(service, SignUpAnonymously)
    storage = FileSessionStorage(tmp_path / "session.json")
    core, _ = await service.core(storage=storage)
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    session = await storage.load()
    assert session is not None
    await service.end_session(session)
    with pytest.raises(SessionRevokedError):
        await core.auth.refresh()
    expired = core.auth.state
    assert expired.transition is Transition.SESSION_EXPIRED
    assert expired.user is None
    assert expired.previous_user == user
    assert await storage.load() is None


async def test_signing_in_over_a_user_switches(service: Harness) -> None:
    """A sign-in while someone is logged in logs them out, then in: SWITCHED_USER."""
    needs(service, SignUpAnonymously, SignUp)
    core, _ = await service.core()
    recorder = StateRecorder(core)
    first = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    route = AuthRoute.sign_up(email=new_email(), password=new_password())
    second = await core.auth.authenticate(route)
    assert second.id != first.id
    switched = core.auth.state
    assert switched.transition is Transition.SWITCHED_USER
    assert switched.previous_user == first
    assert recorder.transitions[-2:] == [Transition.LOGGED_OUT, Transition.SWITCHED_USER]


async def test_an_anonymous_sign_up_over_an_anonymous_user_keeps_them(service: Harness) -> None:
    """Signing up anonymously while an anonymous user is logged in keeps that user, with no
    call (as Firebase's signInAnonymously()): a new one would leave them behind for good."""
    needs(service, SignUpAnonymously)
    core, backend = await service.core()
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    calls = backend.total
    outcome = await core.auth.run(AuthRoute.sign_up_anonymously())
    assert (outcome.error, outcome.reason) == (None, Reason.ALREADY_LOGGED_IN)
    assert outcome.state.user == user
    assert transition(core) is Transition.ANONYMOUS_CREATED
    assert backend.total == calls


async def test_concurrent_anonymous_sign_ups_make_one_user(service: Harness) -> None:
    """Five anonymous sign-ups at once with nobody logged in make one user: the first
    signs up, the others find that user logged in."""
    needs(service, SignUpAnonymously)
    core, backend = await service.core()
    route = AuthRoute.sign_up_anonymously()
    outcomes = await asyncio.gather(*(core.auth.run(route) for _ in range(5)))
    assert [outcome.error for outcome in outcomes] == [None] * 5
    assert len({outcome.state.user for outcome in outcomes}) == 1
    assert backend.counts["authenticate"] == 1


async def test_an_anonymous_sign_up_over_a_registered_user_switches(service: Harness) -> None:
    """Signing up anonymously while a registered user is logged in switches to a new
    anonymous user: the registered one can log in again."""
    needs(service, SignUpAnonymously, SignUp)
    core, _ = await service.core()
    route = AuthRoute.sign_up(email=new_email(), password=new_password())
    registered = await core.auth.authenticate(route)
    anonymous = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    assert anonymous.is_anonymous
    assert anonymous.id != registered.id
    assert transition(core) is Transition.SWITCHED_USER


async def test_log_out_ends_the_session_and_revokes_where_it_can(
    service: Harness, tmp_path: Path
) -> None:
    """Log-out clears the session at once; the service is told only if it can revoke."""
    needs(service, SignUpAnonymously)
    storage = FileSessionStorage(tmp_path / "session.json")
    core, backend = await service.core(storage=storage)
    await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    session = await storage.load()
    assert session is not None
    await core.auth.log_out()
    assert transition(core) is Transition.LOGGED_OUT
    assert await storage.load() is None
    other = service.backend()
    await other.open(_credentials(service))
    try:
        if service.capabilities.revoke:
            async with asyncio.timeout(WAIT):
                await backend.wait_for_calls("revoke")  # revoked in the background
            await core.close()  # waits for the background revocation to finish
            with pytest.raises(SessionRevokedError):
                await other.refresh(session)
        else:
            await core.close()
            assert backend.counts["revoke"] == 0
            await other.refresh(session)  # local log-out: the service still honours it
    finally:
        await other.close()


async def test_promotion_keeps_the_user_id(service: Harness) -> None:
    """Promoting the anonymous user gives it credentials and keeps its id: PROMOTED."""
    needs(service, SignUpAnonymously, Promote, LogIn)
    core, _ = await service.core()
    anonymous = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    email, password = new_email(), new_password()
    promoted = await core.auth.authenticate(AuthRoute.promote(email=email, password=password))
    assert transition(core) is Transition.PROMOTED
    assert promoted.id == anonymous.id
    assert not promoted.is_anonymous
    assert promoted.email == email
    await core.auth.refresh()
    assert core.auth.current_user == promoted
    await core.auth.log_out()
    again = await core.auth.authenticate(AuthRoute.log_in(email=email, password=password))
    assert again.id == anonymous.id


async def test_promotion_to_a_taken_email_conflicts_and_keeps_the_anonymous_user(
    service: Harness,
) -> None:
    """Promoting to an email someone has fails with ConflictError; the session stays."""
    needs(service, SignUpAnonymously, SignUp, Promote)
    email = new_email()
    owner, _ = await service.core()
    await owner.auth.authenticate(AuthRoute.sign_up(email=email, password=new_password()))
    core, _ = await service.core()
    anonymous = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    with pytest.raises(ConflictError):
        await core.auth.authenticate(AuthRoute.promote(email=email, password=new_password()))
    assert transition(core) is Transition.FAILED
    assert core.auth.current_user == anonymous
    await core.auth.refresh()
    assert core.auth.current_user == anonymous


async def test_credentials_sign_up_log_in_and_errors_are_typed(service: Harness) -> None:
    """Sign-up and log-in work; a taken email, a wrong password or email raise typed errors."""
    needs(service, SignUp, LogIn)
    core, _ = await service.core()
    email, password = new_email(), new_password()
    user = await core.auth.authenticate(AuthRoute.sign_up(email=email, password=password))
    assert transition(core) is Transition.SIGNED_UP
    assert not user.is_anonymous
    assert user.email == email
    with pytest.raises(ConflictError):
        await core.auth.authenticate(AuthRoute.sign_up(email=email, password=new_password()))
    await core.auth.log_out()
    with pytest.raises(InvalidCredentialsError):
        await core.auth.authenticate(AuthRoute.log_in(email=email, password=new_password()))
    with pytest.raises(InvalidCredentialsError):
        await core.auth.authenticate(AuthRoute.log_in(email=new_email(), password=password))
    again = await core.auth.authenticate(AuthRoute.log_in(email=email, password=password))
    assert again == user
    assert transition(core) is Transition.LOGGED_IN


async def test_a_too_short_new_password_is_a_weak_password_error(service: Harness) -> None:
    """Sign-up and promotion with a 3-character password raise WeakPasswordError (every
    service's minimum is longer) and change nothing: the anonymous user stays."""
    needs(service, SignUpAnonymously, SignUp, Promote)
    core, _ = await service.core()
    with pytest.raises(WeakPasswordError):
        await core.auth.authenticate(AuthRoute.sign_up(email=new_email(), password="abc"))
    assert core.auth.current_user is None
    anonymous = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    with pytest.raises(WeakPasswordError):
        await core.auth.authenticate(AuthRoute.promote(email=new_email(), password="abc"))
    assert transition(core) is Transition.FAILED
    assert core.auth.current_user == anonymous


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        (AuthRoute.log_in(email=" w@example.com", password="a password"), Reason.EMAIL_MALFORMED),
        (AuthRoute.log_in(email="w@example.com\n", password="a password"), Reason.EMAIL_MALFORMED),
        (AuthRoute.log_in(email="", password="a password"), Reason.EMAIL_MALFORMED),
        (AuthRoute.log_in(email="w@example.com", password=""), Reason.PASSWORD_EMPTY),
        (AuthRoute.sign_up(email="w@localhost", password="a password"), Reason.EMAIL_MALFORMED),
        (AuthRoute.sign_up(email="w@example.com", password=""), Reason.PASSWORD_EMPTY),
        (
            AuthRoute.promote(email="w smith@example.com", password="a password"),
            Reason.EMAIL_MALFORMED,
        ),
        (AuthRoute.promote(email="w@example.com", password=""), Reason.PASSWORD_EMPTY),
    ],
    ids=lambda value: value.value if isinstance(value, Reason) else type(value).__name__,
)
async def test_credentials_no_service_takes_keep_the_user_logged_in(
    service: Harness, tmp_path: Path, route: AuthRoute, reason: Reason
) -> None:
    """A malformed email or an empty password is InvalidRouteError with its reason before
    any call: no LOGGED_OUT, and the stored session still holds the anonymous user."""
    needs(service, SignUpAnonymously, type(route))
    storage = FileSessionStorage(tmp_path / "session.json")
    core, backend = await service.core(storage=storage)
    recorder = StateRecorder(core)
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    calls = backend.total
    outcome = await core.auth.run(route)
    assert isinstance(outcome.error, InvalidRouteError)
    assert outcome.reason is reason
    assert recorder.transitions == [Transition.INITIAL, Transition.ANONYMOUS_CREATED]
    assert core.auth.current_user == user
    stored = await FileSessionStorage(tmp_path / "session.json").load()
    assert stored is not None
    assert stored.user == user
    assert backend.total == calls


async def test_a_wrong_password_over_a_user_logs_them_out_first(service: Harness) -> None:
    """A well-formed log-in the service refuses is a switch that failed: LOGGED_OUT, then
    FAILED with InvalidCredentialsError and nobody logged in (only the service can tell)."""
    needs(service, SignUpAnonymously, SignUp, LogIn)
    email = new_email()
    owner, _ = await service.core()
    await owner.auth.authenticate(AuthRoute.sign_up(email=email, password=new_password()))
    core, _ = await service.core()
    recorder = StateRecorder(core)
    await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    outcome = await core.auth.run(AuthRoute.log_in(email=email, password=new_password()))
    assert isinstance(outcome.error, InvalidCredentialsError)
    assert recorder.transitions[-2:] == [Transition.LOGGED_OUT, Transition.FAILED]
    assert core.auth.current_user is None


@pytest.mark.parametrize("anonymous_only", [True, False], ids=["anonymous-only", "open"])
@pytest.mark.parametrize("blank", [None, "", "   "], ids=["none", "empty", "spaces"])
async def test_the_manager_answers_every_blank_id_alike(
    service: Harness, anonymous_only: bool, blank: str | None
) -> None:
    """A blank stored id is Skipped by a core that can log in by id, and refused with that
    core's reason by one that cannot, never raised: no call, no new state."""
    core, backend = await service.core(anonymous_only=anonymous_only)
    recorder = StateRecorder(core)
    result = await AnonymousAuthManager(core).authenticate_anonymous_user(blank)
    if LogInAnonymously not in service.capabilities.routes:
        assert isinstance(result, Failure)
        assert isinstance(result.error, UnsupportedRouteError)
        assert result.error.reason is Reason.BACKEND_CANNOT
    elif anonymous_only:
        assert result == Skipped(Reason.BLANK_ANONYMOUS_ID)
    else:
        assert isinstance(result, Failure)
        assert isinstance(result.error, RouteRefusedError)
        assert result.error.reason is Reason.ANONYMOUS_LOG_IN_NEEDS_ANONYMOUS_ONLY
    assert recorder.transitions == [Transition.INITIAL]
    assert backend.total == 0


async def test_log_in_by_anonymous_id(service: Harness) -> None:
    """An anonymous user logs back in by its anonymous id, as the same user."""
    needs(service, SignUpAnonymously, LogInAnonymously)
    core, _ = await service.core(anonymous_only=True)
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    await core.auth.log_out()
    again = await core.auth.authenticate(AuthRoute.log_in_anonymously(user.anonymous_id))
    assert again.id == user.id
    assert transition(core) is Transition.LOGGED_IN


async def test_account_deletion_logs_out_for_good(service: Harness, tmp_path: Path) -> None:
    """Deleting the account publishes ACCOUNT_DELETED, clears storage; it cannot log in."""
    needs(service, SignUp, LogIn, delete=True)
    storage = FileSessionStorage(tmp_path / "session.json")
    core, backend = await service.core(storage=storage)
    email, password = new_email(), new_password()
    user = await core.auth.authenticate(AuthRoute.sign_up(email=email, password=password))
    session = await storage.load()
    assert session is not None
    await core.auth.delete_account()
    deleted = core.auth.state
    assert deleted.transition is Transition.DELETED
    assert deleted.user is None
    assert deleted.previous_user == user
    assert await storage.load() is None
    assert backend.counts["delete"] == 1
    with pytest.raises(InvalidCredentialsError):
        await core.auth.authenticate(AuthRoute.log_in(email=email, password=password))
    with pytest.raises(SessionRevokedError):
        await backend.refresh(session)
    with pytest.raises(NotLoggedInError):
        await core.auth.delete_account()


async def test_what_a_backend_cannot_do_is_refused_before_any_call(service: Harness) -> None:
    """Routes and deletion the capabilities exclude raise UnsupportedRouteError, no call,
    each with its reason."""
    missing = [route for route in ALL_ROUTES if route not in service.capabilities.routes]
    if not missing and service.capabilities.delete:
        pytest.skip(f"{service.name} declares every route and deletion")
    for route in missing:
        core, backend = await service.core(anonymous_only=route is LogInAnonymously)
        before = core.auth.state
        outcome = await core.auth.run(EXAMPLES[route])
        assert isinstance(outcome.error, UnsupportedRouteError), route
        assert outcome.reason is Reason.BACKEND_CANNOT, route
        assert core.auth.state is before
        assert backend.counts.total() == 0
    if not service.capabilities.delete:
        core, backend = await service.core()
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        outcome = await core.auth.run(DeleteAccount())
        assert isinstance(outcome.error, UnsupportedRouteError)
        assert outcome.reason is Reason.BACKEND_CANNOT_DELETE_ACCOUNTS
        assert core.auth.current_user is not None
        assert backend.counts["delete"] == 0


def _credentials(service: Harness) -> ClientCredentials:
    return ClientCredentials(service.client_id, service.client_secret)


def transition(core: MimiCore) -> Transition:
    """The transition of the core's current state (read afresh each time)."""
    return core.auth.state.transition
