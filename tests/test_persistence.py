"""Sessions that survive, over the reference server: restore, renewal, expiry, offline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mimi_reactive import (
    AuthRoute,
    BackendError,
    FileSessionStorage,
    MimiConfiguration,
    MimiCore,
    MimiUser,
    NotLoggedInError,
    RefreshPolicy,
    RetryPolicy,
    SessionEndedError,
    SessionRevokedError,
    SessionStorage,
    SessionStorageError,
    Transition,
    TransportError,
)
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer, ServerSettings
from mimi_reactive.testing import FailingStorage, StateRecorder

from .conftest import CLIENT_ID
from .helpers import CountingBackend, event_names
from .lossy_proxy import LossyProxy
from .server_helpers import Clock, eventually

FAST_RETRY = RetryPolicy(initial_delay=0.05, max_delay=0.2, max_attempts=100)


class Service:
    """The reference server on a fixed port and database file, so it can stop and return."""

    def __init__(self, tmp_path: Path, client_secret: str, settings: ServerSettings) -> None:
        self.database = tmp_path / "identity.sqlite3"
        self.client_secret = client_secret
        self.settings = settings
        self.port = 0
        self.server: IdentityServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = IdentityServer(
            client_id=CLIENT_ID,
            client_secret=self.client_secret,
            database=self.database,
            port=self.port,
            settings=self.settings,
        )
        await self.server.start()
        self.port = int(self.server.url.rsplit(":", 1)[1])

    async def stop(self) -> None:
        assert self.server is not None
        await self.server.stop()

    def core(
        self,
        storage: SessionStorage | None = None,
        backend: Any = None,
        clock: Any = time.time,
        **configuration: Any,
    ) -> Any:
        return MimiCore.start(
            client_id=CLIENT_ID,
            client_secret=self.client_secret,
            backend=backend or HttpBackend(self.url, timeout=2),
            configuration=MimiConfiguration(
                **{"allow_anonymous_user_only": True, "retry": FAST_RETRY, **configuration}
            ),
            storage=storage,
            clock=clock,
        )

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        auth = aiohttp.encode_basic_auth(CLIENT_ID, self.client_secret)
        async with (
            aiohttp.ClientSession(headers={"Authorization": auth}) as http,
            http.post(self.url + path, json=body) as response,
        ):
            return response.status, await response.json()


async def make_service(
    tmp_path: Path, client_secret: str, **settings: Any
) -> AsyncIterator[Service]:
    service = Service(tmp_path, client_secret, ServerSettings(**settings))
    await service.start()
    yield service
    if service.server is not None:
        await service.server.stop()


@pytest.fixture
async def service(tmp_path: Path, client_secret: str) -> AsyncIterator[Service]:
    async for running in make_service(tmp_path, client_secret):
        yield running


@pytest.fixture
async def short_lived(tmp_path: Path, client_secret: str) -> AsyncIterator[Service]:
    """Access tokens live two seconds."""
    async for running in make_service(tmp_path, client_secret, access_token_ttl=2.0):
        yield running


async def test_restart_restores_the_user_without_a_logged_out_flash(
    service: Service, tmp_path: Path
) -> None:
    """A new core on the same file starts RESTORED with the user: no INITIAL state first."""
    storage = FileSessionStorage(tmp_path / "session.json")
    async with service.core(storage) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    async with service.core(FileSessionStorage(tmp_path / "session.json")) as core:
        first: list[Any] = []
        core.auth.states.subscribe(first.append)
        assert first[0].transition is Transition.RESTORED
        assert first[0].user == user
        assert core.auth.current_user == user
        token = await core.auth.access_token()
        _status, answer = await service.post("/v1/token/introspect", {"token": token})
        assert answer["active"] is True


async def test_log_out_is_remembered(service: Service, tmp_path: Path) -> None:
    """After a log-out, the next start has nobody logged in."""
    async with service.core(FileSessionStorage(tmp_path / "s.json")) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        await core.auth.log_out()
    async with service.core(FileSessionStorage(tmp_path / "s.json")) as core:
        assert core.auth.state.transition is Transition.INITIAL
        with pytest.raises(NotLoggedInError):
            await core.auth.access_token()


async def test_tokens_are_renewed_before_they_expire(short_lived: Service) -> None:
    """With half the lifetime left the core renews on its own; the token never lapses."""
    backend = CountingBackend(HttpBackend(short_lived.url))
    async with short_lived.core(backend=backend, refresh=RefreshPolicy(ahead=0.5)) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        first = await core.auth.access_token()
        first_expires_at = core.auth.access_token_expires_at
        assert first_expires_at is not None
        renewed_on_its_own = asyncio.Event()
        renewed_at: list[float] = []

        def on_token(token: str | None) -> None:
            if token not in (None, first):
                renewed_at.append(time.time())  # the core's clock
                renewed_on_its_own.set()

        core.auth.access_tokens.subscribe(on_token)
        async with asyncio.timeout(10):  # due at 1 s, half the 2 s lifetime
            await renewed_on_its_own.wait()
        assert renewed_at[0] < first_expires_at
        assert backend.counts["refresh"] == 1
        renewed = await core.auth.access_token()
        assert renewed != first
        assert backend.counts["refresh"] == 1  # the renewed token was handed out as is
        _, answer = await short_lived.post("/v1/token/introspect", {"token": renewed})
        assert answer["active"] is True
        assert core.auth.state.transition is Transition.ANONYMOUS_CREATED  # no state noise


async def test_fifty_concurrent_callers_share_one_renewal(service: Service) -> None:
    """50 access_token() calls on an expired token cause exactly one refresh."""
    backend = CountingBackend(HttpBackend(service.url))
    now = [time.time()]
    # The core's clock jumps an hour (the token's lifetime) while its keeper sleeps on the
    # real clock: the callers alone find the token expired.
    async with service.core(backend=backend, clock=lambda: now[0]) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        old = await core.auth.access_token()
        now[0] += 3600
        tokens = await asyncio.gather(*(core.auth.access_token() for _ in range(50)))
        assert backend.counts["refresh"] == 1
        assert set(tokens) == {tokens[0]}
        assert tokens[0] != old


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


async def test_server_outage_degrades_then_recovers_without_log_out(
    short_lived: Service,
) -> None:
    """With the server down the session is DEGRADED, never logged out; it RECOVERS after."""
    async with short_lived.core() as core:
        recorder = StateRecorder(core)
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        await short_lived.stop()
        async with asyncio.timeout(10):
            degraded = await recorder.wait_for(Transition.DEGRADED)
        assert degraded.user == user
        assert degraded.degraded
        assert isinstance(degraded.error, TransportError)
        await asyncio.sleep(0.5)  # retries keep failing quietly: no state per attempt
        assert recorder.transitions.count(Transition.DEGRADED) == 1
        await short_lived.start()
        async with asyncio.timeout(10):
            recovered = await recorder.wait_for(Transition.RECOVERED)
        assert recovered.user == user
        assert not recovered.degraded
        assert Transition.LOGGED_OUT not in recorder.transitions
        assert Transition.SESSION_EXPIRED not in recorder.transitions
        token = await core.auth.access_token()
        _, answer = await short_lived.post("/v1/token/introspect", {"token": token})
        assert answer["active"] is True


async def test_after_giving_up_the_keeper_tries_on_and_recovers_with_no_call(
    short_lived: Service, caplog: pytest.LogCaptureFixture
) -> None:
    """A run of attempts that gives up during an outage is followed by one attempt every
    max_delay, so the session RECOVERS once the server is back, with no call from the app."""
    caplog.set_level(logging.WARNING, logger="mimi_reactive")
    backend = CountingBackend(HttpBackend(short_lived.url, timeout=2))
    retry = RetryPolicy(initial_delay=0.05, max_delay=0.2, max_attempts=2)
    async with short_lived.core(backend=backend, retry=retry) as core:
        recorder = StateRecorder(core)
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        await short_lived.stop()

        async def keeper_gave_up() -> bool:
            return "session.refresh_gave_up" in event_names(caplog)

        async with asyncio.timeout(10):
            await eventually(keeper_gave_up)
            tried = backend.counts["refresh"]
            await backend.wait_for_calls("refresh", tried + 2)  # still trying, slowly
            await short_lived.start()
            recovered = await recorder.wait_for(Transition.RECOVERED)
        assert (recovered.user, recovered.error, recovered.degraded) == (user, None, False)
        assert event_names(caplog).count("session.refresh_gave_up") == 1


async def test_offline_log_out_is_immediate_and_revoked_later(
    service: Service, tmp_path: Path
) -> None:
    """Offline, log_out clears the session at once; the revocation lands when back online."""
    backend = CountingBackend(HttpBackend(service.url, timeout=1))
    storage = FileSessionStorage(tmp_path / "session.json")
    async with service.core(storage, backend=backend) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        refresh_token = backend.sessions[0].tokens.refresh_token
        await service.stop()
        began = time.monotonic()
        await core.auth.log_out()
        # Waiting for the revocation would take its whole retry schedule (about 10 s).
        assert time.monotonic() - began < 5
        assert core.auth.state.transition is Transition.LOGGED_OUT
        assert await storage.load() is None
        async with asyncio.timeout(10):  # a few failed revocation attempts, in the background
            await backend.wait_for_calls("revoke", 2)
        await service.start()
        async with asyncio.timeout(5):
            while True:
                status, _ = await service.post(
                    "/v1/token", {"grant_type": "refresh_token", "refresh_token": refresh_token}
                )
                if status == 400:
                    break  # revoked at last
                await asyncio.sleep(0.05)


@pytest.mark.parametrize("skew", [-3600.0, 3600.0])
async def test_server_clock_skew_causes_no_renewal_loop(
    tmp_path: Path, client_secret: str, skew: float
) -> None:
    """An hour of skew either way: renewals stay one per lifetime and tokens stay valid."""
    settings: dict[str, Any] = {
        "access_token_ttl": 2.0,
        "clock": lambda: time.time() + skew,
    }
    async for service in make_service(tmp_path, client_secret, **settings):
        backend = CountingBackend(HttpBackend(service.url))
        async with service.core(backend=backend, refresh=RefreshPolicy(ahead=0.5)) as core:
            await core.auth.authenticate(AuthRoute.sign_up_anonymously())
            await asyncio.sleep(2.5)
            assert 1 <= backend.counts["refresh"] <= 3
            token = await core.auth.access_token()
            _, answer = await service.post("/v1/token/introspect", {"token": token})
            assert answer["active"] is True


async def test_unreadable_session_file_starts_logged_out(
    service: Service, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A corrupt session file is moved aside and the core starts with nobody, warned."""
    path = tmp_path / "session.json"
    path.write_text('{"schema": 1, "session": {"user": "torn')
    caplog.set_level(logging.WARNING, logger="mimi_reactive")
    async with service.core(FileSessionStorage(path)) as core:
        assert core.auth.state.transition is Transition.INITIAL
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    assert "storage.unreadable_session_moved_aside" in event_names(caplog)
    assert len(list(tmp_path.glob("session.json.unreadable-*"))) == 1


async def test_renewed_tokens_are_saved_before_they_are_handed_out(
    service: Service, tmp_path: Path
) -> None:
    """After a renewal the stored tokens are the ones access_token() gives."""
    storage = FileSessionStorage(tmp_path / "session.json")
    async with service.core(storage) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        before = await storage.load()
        await core.auth.refresh()
        after = await storage.load()
        assert before is not None
        assert after is not None
        assert after.tokens != before.tokens
        assert after.tokens.access_token == await core.auth.access_token()


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
    service: Service, tmp_path: Path
) -> None:
    """Logged out everywhere from another device: SESSION_EXPIRED, no log-in by id, the
    storage cleared."""
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
    assert await FileSessionStorage(path).load() is None


async def test_an_expired_session_of_a_deleted_user_ends(
    idling: tuple[Service, Clock], tmp_path: Path
) -> None:
    """The user was deleted elsewhere while this session idled: the id no longer logs in,
    so the session ends (SESSION_EXPIRED) and the storage is cleared."""
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
    assert await FileSessionStorage(path).load() is None


async def test_renewed_tokens_the_storage_cannot_save_degrade_the_session_until_kept(
    service: Service,
) -> None:
    """A refresh whose pair cannot be saved fails with SessionStorageError and leaves the
    session DEGRADED (a restart would present a spent token); once a save works again the
    keeper renews, keeps the pair and the session RECOVERS (with a new pair: not the one
    stored before, whose refresh token the unsaved renewal spent)."""
    storage = FailingStorage()
    async with service.core(storage) as core:
        recorder = StateRecorder(core)
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        spent = await storage.load()
        assert spent is not None
        storage.failing = True
        with pytest.raises(SessionStorageError):
            await core.auth.refresh()
        degraded = core.auth.state
        assert degraded.transition is Transition.DEGRADED
        assert degraded.user == user
        assert isinstance(degraded.error, SessionStorageError)
        assert isinstance(degraded.error.__cause__, OSError)
        storage.failing = False
        async with asyncio.timeout(10):
            recovered = await recorder.wait_for(Transition.RECOVERED)
        assert recovered.user == user
        kept = await storage.load()
        assert kept is not None
        assert kept.tokens.refresh_token != spent.tokens.refresh_token
        assert kept.tokens.access_token == await core.auth.access_token()
        _, answer = await service.post("/v1/token/introspect", {"token": kept.tokens.access_token})
        assert answer["active"] is True
        await core.auth.refresh()  # the pair held is live: no reuse
        assert core.auth.current_user == user


async def test_a_log_out_the_storage_cannot_forget_is_reported(service: Service) -> None:
    """A log-out whose clear fails ends the session here and raises SessionStorageError (a
    restart would restore the user); the LOGGED_OUT state carries it."""
    storage = FailingStorage()
    async with service.core(storage) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        storage.failing = True
        with pytest.raises(SessionStorageError):
            await core.auth.log_out()
        state = core.auth.state
        assert state.transition is Transition.LOGGED_OUT
        assert state.previous_user == user
        assert isinstance(state.error, SessionStorageError)
        assert "Read-only file system" in str(state.error)


@contextlib.asynccontextmanager
async def degraded_after_idling(
    service: Service, server_clock: Clock, path: Path
) -> AsyncIterator[tuple[MimiCore, MimiUser]]:
    """A user whose session idled out and whose log-in by id then lost its answer: a core
    (degraded, its keeper given up) that holds the id but no refresh token, and whose access
    token expired on its clock."""
    async with service.core(FileSessionStorage(path)) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    client_clock = ShiftedClock()
    server_clock.now += 601
    client_clock.shift = 601
    retry = RetryPolicy(initial_delay=0.05, max_delay=0.2, max_attempts=1)
    async with (
        LossyProxy(service.url, path="/v1/sessions/anonymous") as proxy,
        service.core(
            FileSessionStorage(path),
            backend=HttpBackend(proxy.url, timeout=2),
            clock=client_clock,
            retry=retry,
        ) as core,
    ):
        recorder = StateRecorder(core)
        async with asyncio.timeout(10):  # the keeper renews at once, and gives up after one try
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


async def test_renewed_tokens_the_storage_could_not_save_are_saved_at_close(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    """Renewals the storage failed to keep are saved again when the core closes, so the
    next start presents the live refresh token (not a spent one: reuse, which ends the
    session) and the user stays logged in."""
    storage = FailingStorage()
    backend = CountingBackend(HttpBackend(service.url))
    retry = RetryPolicy(initial_delay=0.05, max_delay=0.2, max_attempts=1)
    core = await service.core(storage, backend=backend, retry=retry)
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    storage.failing = True
    with pytest.raises(SessionStorageError):
        await core.auth.refresh()

    async def keeper_gave_up() -> bool:
        return "session.refresh_gave_up" in event_names(caplog)

    async with asyncio.timeout(10):  # it renews once more, unsaved too, and gives up
        await eventually(keeper_gave_up)
    assert backend.counts["refresh"] >= 2  # the stored pair's successor is spent as well
    storage.failing = False
    await core.close()
    kept = await storage.load()
    assert kept is not None
    assert kept.tokens == backend.sessions[-1].tokens
    async with service.core(storage) as again:
        await again.auth.refresh()
        assert again.auth.current_user == user
        assert again.auth.state.transition is Transition.RESTORED
