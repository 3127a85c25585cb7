"""The session rules, end to end against the reference server on loopback."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from mimi_reactive import (
    AnonymousAuthManager,
    AuthRoute,
    Failure,
    InvalidCredentialsError,
    InvalidRouteError,
    MimiConfiguration,
    MimiCore,
    MimiUser,
    Reason,
    RouteRefusedError,
    SessionState,
    Skipped,
    Success,
    Transition,
)

from .conftest import StartCore
from .helpers import CountingBackend, transitions

OPEN = MimiConfiguration(allow_anonymous_user_only=False)


def record(core: MimiCore) -> list[SessionState]:
    seen: list[SessionState] = []
    core.auth.states.subscribe(seen.append)
    return seen


async def new_anonymous_id(start_core: StartCore) -> str:
    """Create an anonymous user elsewhere (another product) and return its id."""
    other = await start_core()
    user = await other.auth.authenticate(AuthRoute.sign_up_anonymously())
    await other.close()
    assert user.anonymous_id is not None
    return user.anonymous_id


async def test_clean_start_has_no_user(start_core: StartCore) -> None:
    """A new core has nobody logged in and replays the initial state."""
    core = await start_core()
    assert core.auth.current_user is None
    assert record(core) == [SessionState()]
    users: list[MimiUser | None] = []
    core.auth.mimi_user.subscribe(users.append)
    assert users == [None]


async def test_sign_up_anonymously_creates_a_user_with_a_strong_id(start_core: StartCore) -> None:
    """Signing up anonymously publishes ANONYMOUS_CREATED with a fresh, long anonymous id."""
    core = await start_core()
    seen = record(core)
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    assert user.is_anonymous
    assert user.email is None
    assert user.anonymous_id is not None
    assert len(user.anonymous_id) >= 22
    assert transitions(seen) == [Transition.INITIAL, Transition.ANONYMOUS_CREATED]
    assert core.auth.current_user == user


async def test_stored_id_logs_back_in_after_reinstall(start_core: StartCore) -> None:
    """A new core logs the same user back in with the stored anonymous id."""
    first = await start_core()
    created = await first.auth.authenticate(AuthRoute.sign_up_anonymously())
    await first.close()

    second = await start_core()
    seen = record(second)
    result = await AnonymousAuthManager(second).authenticate_anonymous_user(created.anonymous_id)
    assert result == Success(created.anonymous_id)  # type: ignore[arg-type]
    assert second.auth.current_user == created
    assert transitions(seen) == [Transition.INITIAL, Transition.LOGGED_IN]


@pytest.mark.parametrize("blank", [None, "", "   "])
async def test_blank_id_is_skipped_without_a_call(
    counting_core: tuple[MimiCore, CountingBackend], blank: str | None
) -> None:
    """A blank id gives Skipped, makes no call and publishes no state."""
    core, backend = counting_core
    seen = record(core)
    assert await AnonymousAuthManager(core).authenticate_anonymous_user(blank) == Skipped()
    with pytest.raises(InvalidRouteError) as raised:
        await core.auth.authenticate(AuthRoute.log_in_anonymously(blank))
    assert raised.value.reason is Reason.BLANK_ANONYMOUS_ID
    assert backend.total == 0
    assert seen == [SessionState()]


async def test_same_id_succeeds_without_a_call(
    counting_core: tuple[MimiCore, CountingBackend],
) -> None:
    """Logging in the id already logged in is a Success with no call and no state."""
    core, backend = counting_core
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    seen = record(core)
    calls = backend.total
    manager = AnonymousAuthManager(core)
    assert await manager.authenticate_anonymous_user(user.anonymous_id) == Success(
        user.anonymous_id  # type: ignore[arg-type]
    )
    assert await core.auth.authenticate(AuthRoute.log_in_anonymously(user.anonymous_id)) == user
    assert backend.total == calls
    assert len(seen) == 1


async def test_different_user_is_logged_out_then_switched(
    counting_core: tuple[MimiCore, CountingBackend], start_core: StartCore
) -> None:
    """Another id logs the current user out (LOGGED_OUT) then in (SWITCHED_USER)."""
    core, backend = counting_core
    first = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    other_id = await new_anonymous_id(start_core)
    seen = record(core)
    result = await AnonymousAuthManager(core).authenticate_anonymous_user(other_id)
    assert result == Success(other_id)
    assert transitions(seen) == [
        Transition.ANONYMOUS_CREATED,
        Transition.LOGGED_OUT,
        Transition.SWITCHED_USER,
    ]
    assert seen[1].previous_user == first
    assert seen[2].previous_user == first
    assert seen[2].user is not None
    assert seen[2].user.anonymous_id == other_id
    await core.close()  # waits for the background revocation of the first user
    assert backend.counts["revoke"] == 1


async def test_failed_switch_leaves_the_session_logged_out(
    counting_core: tuple[MimiCore, CountingBackend],
) -> None:
    """An unknown id after a user: logged out first, then FAILED with nobody logged in."""
    core, _ = counting_core
    first = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    seen = record(core)
    result = await AnonymousAuthManager(core).authenticate_anonymous_user(secrets.token_urlsafe(32))
    assert isinstance(result, Failure)
    assert isinstance(result.error, InvalidCredentialsError)
    assert result.error.code == "invalid_anonymous_id"
    assert transitions(seen) == [
        Transition.ANONYMOUS_CREATED,
        Transition.LOGGED_OUT,
        Transition.FAILED,
    ]
    assert seen[-1].user is None
    assert seen[-1].error is result.error
    assert seen[1].previous_user == first
    assert core.auth.current_user is None


async def test_failed_log_in_from_nobody_publishes_one_failed_state(
    start_core: StartCore,
) -> None:
    """A failure emits exactly one FAILED state carrying the error."""
    core = await start_core()
    seen = record(core)
    with pytest.raises(InvalidCredentialsError) as raised:
        await core.auth.authenticate(AuthRoute.log_in_anonymously(secrets.token_urlsafe(32)))
    assert transitions(seen) == [Transition.INITIAL, Transition.FAILED]
    assert seen[-1].error is raised.value


async def test_anonymous_log_in_refused_without_anonymous_only(
    start_core: StartCore, server: object
) -> None:
    """Without anonymous-only mode, logging in by id is refused and nothing changes."""
    core = await start_core(OPEN)
    seen = record(core)
    result = await AnonymousAuthManager(core).authenticate_anonymous_user("some-id-0123456789")
    assert isinstance(result, Failure)
    assert isinstance(result.error, RouteRefusedError)
    assert result.error.reason is Reason.ANONYMOUS_LOG_IN_NEEDS_ANONYMOUS_ONLY
    with pytest.raises(RouteRefusedError):
        await core.auth.authenticate(AuthRoute.log_in_anonymously("some-id-0123456789"))
    assert seen == [SessionState()]


@pytest.mark.parametrize(
    "route",
    [
        AuthRoute.log_in(email="ann@example.test", password="correct horse"),
        AuthRoute.sign_up(email="ann@example.test", password="correct horse"),
        AuthRoute.promote(email="ann@example.test", password="correct horse"),
    ],
)
async def test_anonymous_only_refuses_credentials(
    counting_core: tuple[MimiCore, CountingBackend], route: AuthRoute
) -> None:
    """In anonymous-only mode credential routes are refused; the user stays anonymous."""
    core, backend = counting_core
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    calls = backend.total
    seen = record(core)
    with pytest.raises(RouteRefusedError) as raised:
        await core.auth.authenticate(route)
    assert raised.value.reason is Reason.ANONYMOUS_ONLY_FORBIDS_CREDENTIALS
    assert core.auth.current_user == user
    assert user.is_anonymous
    assert backend.total == calls
    assert len(seen) == 1


async def test_credential_routes_and_promotion_when_allowed(start_core: StartCore) -> None:
    """With anonymous-only off: promote keeps the user id; log-in and sign-up work."""
    core = await start_core(OPEN)
    seen = record(core)
    anonymous = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    promoted = await core.auth.authenticate(
        AuthRoute.promote(email="Ann@Example.test", password="correct horse")
    )
    assert promoted.id == anonymous.id
    assert not promoted.is_anonymous
    assert promoted.email == "ann@example.test"
    await core.auth.log_out()
    again = await core.auth.authenticate(
        AuthRoute.log_in(email="ann@example.test", password="correct horse")
    )
    assert again.id == anonymous.id
    signed_up = await core.auth.authenticate(
        AuthRoute.sign_up(email="bo@example.test", password="another secret")
    )
    assert transitions(seen) == [
        Transition.INITIAL,
        Transition.ANONYMOUS_CREATED,
        Transition.PROMOTED,
        Transition.LOGGED_OUT,
        Transition.LOGGED_IN,
        Transition.LOGGED_OUT,
        Transition.SWITCHED_USER,
    ]
    assert seen[-1].user == signed_up
    assert seen[-1].previous_user == again


async def test_log_out_revokes_and_is_idempotent(
    counting_core: tuple[MimiCore, CountingBackend],
) -> None:
    """Logging out publishes LOGGED_OUT once; again with nobody does nothing."""
    core, backend = counting_core
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    seen = record(core)
    await core.auth.log_out()
    await core.auth.log_out()
    assert transitions(seen) == [Transition.ANONYMOUS_CREATED, Transition.LOGGED_OUT]
    assert seen[-1].previous_user == user
    await core.close()  # waits for the background revocation
    assert backend.counts["revoke"] == 1


async def test_commands_run_in_call_order_and_everyone_sees_the_same(
    start_core: StartCore,
) -> None:
    """Concurrent commands run one at a time in call order; subscribers agree."""
    core = await start_core()
    ids = [await new_anonymous_id(start_core) for _ in range(3)]
    first, second = record(core), record(core)
    results = await asyncio.gather(
        *(AnonymousAuthManager(core).authenticate_anonymous_user(i) for i in ids),
        core.auth.log_out(),
    )
    assert results[:3] == [Success(i) for i in ids]
    logged_in = [s.user.anonymous_id for s in first if s.user is not None]
    assert logged_in == ids
    assert first == second
    assert first[-1] == core.auth.state
    assert core.auth.state.transition is Transition.LOGGED_OUT


async def test_observers_get_current_old_user_and_error(start_core: StartCore) -> None:
    """Observers hear each change as (controller, current, old, error) until removed."""
    core = await start_core()
    heard: list[tuple[object, MimiUser | None, MimiUser | None, Exception | None]] = []

    class Observer:
        def auth_controller_did_update(
            self,
            controller: object,
            current_user: MimiUser | None,
            old_user: MimiUser | None,
            error: Exception | None,
        ) -> None:
            heard.append((controller, current_user, old_user, error))

    handle = core.auth.add_observer(Observer())
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    with pytest.raises(InvalidCredentialsError) as raised:
        await core.auth.authenticate(AuthRoute.log_in_anonymously(secrets.token_urlsafe(32)))
    assert heard == [
        (core.auth, user, None, None),
        (core.auth, None, user, None),
        (core.auth, None, None, raised.value),
    ]
    handle.remove()
    await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    assert len(heard) == 3


async def test_mimi_user_emits_only_changes(start_core: StartCore) -> None:
    """mimi_user replays and is distinct until changed: a failure adds nothing."""
    core = await start_core()
    users: list[MimiUser | None] = []
    core.auth.mimi_user.subscribe(users.append)
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    await core.auth.authenticate(AuthRoute.log_in_anonymously(user.anonymous_id))
    await core.auth.log_out()
    with pytest.raises(InvalidCredentialsError):
        await core.auth.authenticate(AuthRoute.log_in_anonymously(secrets.token_urlsafe(32)))
    assert users == [None, user, None]
