"""The sealed results of the anonymous log-in manager."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import attrs
import pytest

from mimi_reactive import (
    AnonymousAuthManager,
    AnonymousLogInResult,
    AuthRoute,
    BlockingAnonymousAuthManager,
    BlockingMimiCore,
    CoreClosedError,
    Failure,
    InvalidRouteError,
    MimiCore,
    MimiCoreError,
    ReentrantCallError,
    SessionState,
    SessionStorage,
    SessionStorageError,
    Skipped,
    Success,
    Transition,
    TransportError,
)
from mimi_reactive.testing import FailingStorage, ScriptedBackend

from .conftest import ANONYMOUS_ONLY
from .helpers import CountingBackend
from .strategies import SPOILT_ANONYMOUS_IDS


def kind(result: AnonymousLogInResult) -> str:
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


@pytest.mark.parametrize("spoil", SPOILT_ANONYMOUS_IDS.values(), ids=SPOILT_ANONYMOUS_IDS.keys())
async def test_a_malformed_id_fails_before_the_user_is_logged_out(
    counting_core: tuple[MimiCore, CountingBackend], spoil: Callable[[str], str]
) -> None:
    """An id no service issues (the real one with a newline, say) is a Failure with
    InvalidRouteError; the current user stays logged in and the service is not called."""
    core, backend = counting_core
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    assert user.anonymous_id is not None
    calls = backend.total
    malformed = spoil(user.anonymous_id)
    result = await AnonymousAuthManager(core).authenticate_anonymous_user(malformed)
    assert isinstance(result, Failure)
    assert isinstance(result.error, InvalidRouteError)
    assert user.anonymous_id[4:] not in str(result.error)
    assert core.auth.current_user == user
    assert backend.total == calls


def anonymous_only_core(
    backend: ScriptedBackend, storage: SessionStorage
) -> AbstractAsyncContextManager[MimiCore]:
    """An anonymous-only core on ``backend`` keeping its session in ``storage``."""
    return MimiCore.start(
        client_id="a",
        client_secret="s",
        backend=backend,
        storage=storage,
        configuration=ANONYMOUS_ONLY,
    )


async def test_a_log_in_the_storage_could_not_keep_is_a_success_that_says_so() -> None:
    """The id is logged in but the storage failed to save the session: Success (the user is
    logged in, degraded, until a save works) with the SessionStorageError in storage_error,
    not a Failure that would have the app sign in again."""
    backend = ScriptedBackend()
    user = backend.add_anonymous_user()
    storage = FailingStorage()
    storage.failing = True
    async with anonymous_only_core(backend, storage) as core:
        result = await AnonymousAuthManager(core).authenticate_anonymous_user(user.anonymous_id)
        assert isinstance(result, Success)
        assert result.anonymous_id == user.anonymous_id
        assert isinstance(result.storage_error, SessionStorageError)
        assert core.auth.current_user == user
        assert core.auth.state.degraded
        assert Success(user.anonymous_id or "") == Success(user.anonymous_id or "", None)


async def test_a_switch_whose_log_out_the_storage_could_not_keep_is_a_failure() -> None:
    """Switching users first logs the current one out; when the storage cannot forget it,
    the switch stops there with nobody logged in: Failure(SessionStorageError)."""
    backend = ScriptedBackend()
    first, second = backend.add_anonymous_user(), backend.add_anonymous_user()
    storage = FailingStorage()
    async with anonymous_only_core(backend, storage) as core:
        manager = AnonymousAuthManager(core)
        assert await manager.authenticate_anonymous_user(first.anonymous_id) == Success(
            first.anonymous_id or ""
        )
        storage.failing = True
        result = await manager.authenticate_anonymous_user(second.anonymous_id)
        assert isinstance(result, Failure)
        assert isinstance(result.error, SessionStorageError)
        assert core.auth.current_user is None


def after_close(core: BlockingMimiCore, anonymous_id: str) -> AnonymousLogInResult:
    """The blocking manager's log-in on a core closed before it."""
    manager = BlockingAnonymousAuthManager(core)
    core.close()
    return manager.authenticate_anonymous_user(anonymous_id)


def in_a_subscriber(core: BlockingMimiCore, anonymous_id: str) -> AnonymousLogInResult:
    """The blocking manager's log-in from a subscriber, on the core's own thread."""
    manager = BlockingAnonymousAuthManager(core)
    results: list[AnonymousLogInResult] = []

    def on_state(state: SessionState) -> None:
        if state.transition is Transition.ANONYMOUS_CREATED:
            results.append(manager.authenticate_anonymous_user(anonymous_id))

    core.auth.states.subscribe(on_state)
    core.auth.authenticate(AuthRoute.sign_up_anonymously())
    [result] = results
    return result


@pytest.mark.parametrize(
    ("log_in", "error"),
    [(after_close, CoreClosedError), (in_a_subscriber, ReentrantCallError)],
    ids=["closed core", "core's own thread"],
)
def test_the_blocking_manager_answers_a_refused_call_with_a_failure(
    log_in: Callable[[BlockingMimiCore, str], AnonymousLogInResult], error: type[MimiCoreError]
) -> None:
    """A call the blocking core refuses is a Failure with that error, as the async manager
    answers it, never raised: the manager never raises a MimiCoreError."""
    backend = ScriptedBackend()
    anonymous_id = backend.add_anonymous_user().anonymous_id
    assert anonymous_id is not None
    with BlockingMimiCore.start(backend=backend, configuration=ANONYMOUS_ONLY) as core:
        result = log_in(core, anonymous_id)
    assert isinstance(result, Failure)
    assert isinstance(result.error, error)
