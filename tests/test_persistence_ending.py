"""When a refresh is refused, over the reference server (docs/guarantees.md, "An anonymous
user outlives its sessions"): a reused refresh token, a session expired unused, one ended on
purpose, a deleted user, and a degraded session that lost its refresh token."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mimi_reactive import (
    AuthRoute,
    BackendError,
    FileSessionStorage,
    MimiCore,
    MimiUser,
    RetryPolicy,
    SessionEndedError,
    SessionRevokedError,
    Transition,
)
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.testing import StateRecorder

from .conftest import Service, make_service
from .helpers import CountingBackend, event_names
from .lossy_proxy import LossyProxy
from .server_helpers import Clock


async def test_refresh_token_reuse_ends_the_session_of_a_user_with_credentials(
    service: Service, tmp_path: Path
) -> None:
    """A stolen spent refresh token used again revokes the family: SESSION_EXPIRED here for a
    user with no anonymous id to log back in with."""
    backend = CountingBackend(HttpBackend(service.url))
    storage = FileSessionStorage(tmp_path / "session.json")
    async with service.core(storage, backend=backend, allow_anonymous_user_only=False) as core:
        recorder = StateRecorder(core)
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        user = await core.auth.authenticate(
            AuthRoute.promote(email="stolen@example.test", password="long enough")
        )
        stolen = backend.sessions[0].tokens.refresh_token
        await core.auth.refresh()  # rotates: the stolen token is spent now
        # and again: a token whose successor was spent too cannot be a lost answer's retry,
        # so the server's refresh-reuse interval does not apply to it
        await core.auth.refresh()
        status, error = await service.post(
            "/v1/token", {"grant_type": "refresh_token", "refresh_token": stolen}
        )
        assert (status, error["error"]["code"]) == (400, "invalid_grant")
        with pytest.raises(SessionRevokedError):
            await core.auth.refresh()
        expired = recorder.states[-1]
        assert expired.transition is Transition.SESSION_EXPIRED
        assert expired.user is None
        assert expired.previous_user == user
        assert isinstance(expired.error, SessionRevokedError)
        assert expired.error.code == "invalid_grant"
    assert await storage.load() is None


async def test_refresh_token_reuse_logs_an_anonymous_user_back_in_by_id(
    service: Service, tmp_path: Path
) -> None:
    """A reused refresh token ends the session's tokens at the server, but an anonymous user is
    logged back in by its id (a lost answer and a long time offline look the same as a theft):
    the same user goes on in a new session, with no SESSION_EXPIRED and nothing forgotten."""
    backend = CountingBackend(HttpBackend(service.url))
    storage = FileSessionStorage(tmp_path / "session.json")
    async with service.core(storage, backend=backend) as core:
        recorder = StateRecorder(core)
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        spent = backend.sessions[0].tokens.refresh_token
        await core.auth.refresh()
        await core.auth.refresh()  # the spent token's successor is spent: no retry window
        status, error = await service.post(
            "/v1/token", {"grant_type": "refresh_token", "refresh_token": spent}
        )
        assert (status, error["error"]["reason"]) == (400, "reused")
        await core.auth.refresh()
        assert core.auth.current_user == user
        assert Transition.SESSION_EXPIRED not in [state.transition for state in recorder.states]
        token = await core.auth.access_token()
        status, answer = await service.post("/v1/token/introspect", {"token": token})
        assert (status, answer["active"], answer["user_id"]) == (200, True, user.id)
    stored = await storage.load()
    assert stored is not None
    assert stored.user == user


class ShiftedClock:
    """The real clock, moved on by hand: the core's, where the server's is a ``Clock``."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


@pytest.fixture
async def idling(tmp_path: Path, client_secret: str) -> AsyncIterator[tuple[Service, Clock]]:
    """A service whose sessions end after 10 minutes unused, on a clock the test moves."""
    clock = Clock(time.time())
    settings = {"access_token_ttl": 60.0, "session_idle_timeout": 600.0, "clock": clock}
    async for running in make_service(tmp_path, client_secret, **settings):
        yield running, clock


@pytest.mark.parametrize("anonymous_only", [True, False])
async def test_an_anonymous_session_that_expired_unused_logs_back_in_by_id(
    idling: tuple[Service, Clock], tmp_path: Path, anonymous_only: bool
) -> None:
    """Back after the idle timeout, the core logs its anonymous user back in by id (in either
    configuration): same user, a working token, no SESSION_EXPIRED, the new pair stored."""
    service, server_clock = idling
    path = tmp_path / "session.json"
    backend = CountingBackend(HttpBackend(service.url))
    options: dict[str, Any] = {"allow_anonymous_user_only": anonymous_only}
    async with service.core(FileSessionStorage(path), **options) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    client_clock = ShiftedClock()
    server_clock.now += 601
    client_clock.shift = 601
    async with service.core(
        FileSessionStorage(path), backend=backend, clock=client_clock, **options
    ) as core:
        recorder = StateRecorder(core)
        assert core.auth.current_user == user
        token = await core.auth.access_token()
        assert backend.counts["refresh"] == 1  # refused: the session idled out
        assert backend.counts["authenticate"] == 1  # by id
        assert core.auth.current_user == user
        assert recorder.transitions == [Transition.RESTORED]
        _, answer = await service.post("/v1/token/introspect", {"token": token})
        assert answer["active"] is True
        stored = await FileSessionStorage(path).load()
        assert stored is not None
        assert stored.user == user
        assert stored.tokens.access_token == token


async def test_a_session_ended_on_purpose_is_not_logged_back_in(
    service: Service, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Logged out everywhere from another device: SESSION_EXPIRED, logged at INFO with why,
    no log-in by id, the storage cleared."""
    caplog.set_level(logging.INFO, logger="mimi_reactive")
    path = tmp_path / "session.json"
    backend = CountingBackend(HttpBackend(service.url))
    async with service.core(FileSessionStorage(path), backend=backend) as core:
        recorder = StateRecorder(core)
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        status, elsewhere = await service.post(
            "/v1/sessions/anonymous", {"anonymous_id": user.anonymous_id}
        )
        assert status == 200
        access = elsewhere["session"]["access_token"]
        status, _ = await service.post("/v1/sessions/revoke-all", {"access_token": access})
        assert status == 200
        with pytest.raises(SessionEndedError):
            await core.auth.refresh()
        assert recorder.states[-1].transition is Transition.SESSION_EXPIRED
        assert recorder.states[-1].previous_user == user
        assert backend.counts["authenticate"] == 1  # the sign-up only
        expired = [r for r in caplog.records if getattr(r, "event", None) == "session.expired"]
        assert [r.levelno for r in expired] == [logging.INFO]
        assert getattr(expired[0], "error", None) == "SessionEndedError"
    assert await FileSessionStorage(path).load() is None


async def test_an_expired_session_of_a_deleted_user_ends(
    idling: tuple[Service, Clock], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The user was deleted elsewhere while this session idled: the id no longer logs in,
    so the session ends (SESSION_EXPIRED, logged at INFO) and the storage is cleared."""
    caplog.set_level(logging.INFO, logger="mimi_reactive")
    service, server_clock = idling
    path = tmp_path / "session.json"
    async with service.core(FileSessionStorage(path)) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    _, elsewhere = await service.post("/v1/sessions/anonymous", {"anonymous_id": user.anonymous_id})
    access = elsewhere["session"]["access_token"]
    assert (await service.post("/v1/users/delete", {"access_token": access}))[0] == 200
    client_clock = ShiftedClock()
    server_clock.now += 601
    client_clock.shift = 601
    async with service.core(FileSessionStorage(path), clock=client_clock) as core:
        with pytest.raises(SessionRevokedError):
            await core.auth.access_token()
        assert core.auth.state.transition is Transition.SESSION_EXPIRED
        assert core.auth.state.previous_user == user
        assert event_names(caplog).count("session.expired") == 1
    assert await FileSessionStorage(path).load() is None


@contextlib.asynccontextmanager
async def degraded_after_idling(
    service: Service, server_clock: Clock, path: Path
) -> AsyncIterator[tuple[MimiCore, MimiUser]]:
    """A user whose session idled out and whose log-in by id then lost its answer: a core
    (degraded, its keeper given up) that holds the id but no refresh token, and whose access
    token expired on its clock."""
    client_clock = ShiftedClock()
    retry = RetryPolicy(initial_delay=0.05, max_delay=0.2, max_attempts=1)
    async with LossyProxy(service.url, path="/v1/sessions/anonymous") as proxy:
        # Through the proxy too: a file another base URL wrote is another origin's.
        backend = HttpBackend(proxy.url, timeout=2)
        async with service.core(FileSessionStorage(path), backend=backend) as core:
            user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        server_clock.now += 601
        client_clock.shift = 601
        async with service.core(
            FileSessionStorage(path),
            backend=HttpBackend(proxy.url, timeout=2),
            clock=client_clock,
            retry=retry,
        ) as core:
            recorder = StateRecorder(core)
            async with asyncio.timeout(10):  # the keeper renews at once, gives up after one try
                degraded = await recorder.wait_for(Transition.DEGRADED)
            assert degraded.user == user
            assert proxy.lost_statuses == [200]  # the log-in by id happened; its answer was lost
            stored = await FileSessionStorage(path).load()
            assert stored is not None
            assert stored.tokens.refresh_token is None
            yield core, user


async def test_deleting_a_degraded_session_without_its_refresh_token_logs_in_by_id_first(
    idling: tuple[Service, Clock], tmp_path: Path
) -> None:
    """delete_account() on a session that idled out, lost its refresh token and whose access
    token expired logs the user in by id for a live token, then deletes: DELETED, and the id
    no longer logs in (it used to end the session, keep the account and lose the id)."""
    service, server_clock = idling
    path = tmp_path / "session.json"
    async with degraded_after_idling(service, server_clock, path) as (core, user):
        await core.auth.delete_account()
        assert core.auth.state.transition is Transition.DELETED
        assert core.auth.state.error is None
    status, _ = await service.post("/v1/sessions/anonymous", {"anonymous_id": user.anonymous_id})
    assert status == 400
    assert await FileSessionStorage(path).load() is None


async def test_logging_out_everywhere_from_a_degraded_session_ends_the_other_sessions(
    idling: tuple[Service, Clock], tmp_path: Path
) -> None:
    """log_out(everywhere=True) from the same degraded session logs in by id for a live token
    and ends every session of the user: another device's refresh is refused after."""
    service, server_clock = idling
    path = tmp_path / "session.json"
    async with degraded_after_idling(service, server_clock, path) as (core, user):
        status, elsewhere = await service.post(
            "/v1/sessions/anonymous", {"anonymous_id": user.anonymous_id}
        )
        assert status == 200
        await core.auth.log_out(everywhere=True)
        assert core.auth.state.transition is Transition.LOGGED_OUT
        assert core.auth.state.error is None
    status, _ = await service.post(
        "/v1/token",
        {"grant_type": "refresh_token", "refresh_token": elsewhere["session"]["refresh_token"]},
    )
    assert status == 400


async def test_a_deletion_whose_log_in_by_id_fails_for_now_keeps_the_id(
    idling: tuple[Service, Clock], tmp_path: Path
) -> None:
    """If that log-in by id fails for now too (the service is down behind its proxy: 500),
    delete_account() raises why and the session, id included, is kept (degraded): nothing is
    lost, and the call can be retried."""
    service, server_clock = idling
    path = tmp_path / "session.json"
    async with degraded_after_idling(service, server_clock, path) as (core, user):
        await service.stop()
        with pytest.raises(BackendError) as failed:
            await core.auth.delete_account()
        assert failed.value.status == 500
        assert core.auth.state.user == user
        assert core.auth.state.degraded
        stored = await FileSessionStorage(path).load()
        assert stored is not None
        assert stored.user == user
        await service.start()
        await core.auth.delete_account()
        assert core.auth.state.transition is Transition.DELETED
