"""Sessions kept through failures underneath, over the reference server: the server down (a
DEGRADED session that RECOVERS, an offline log-out revoked later) and a storage that cannot
save or forget (reported, never only logged, and saved again once it can)."""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from mimi_reactive import (
    AuthRoute,
    FileSessionStorage,
    RetryPolicy,
    Session,
    SessionStorageError,
    Transition,
    TransportError,
)
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.testing import FailingStorage, StateRecorder

from .conftest import Service
from .helpers import CountingBackend, event_names
from .server_helpers import eventually


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


@pytest.mark.parametrize("set_back", [0.0, 24 * 3600.0], ids=["steady", "clock set back a day"])
async def test_after_giving_up_the_keeper_tries_on_and_recovers_with_no_call(
    short_lived: Service, caplog: pytest.LogCaptureFixture, set_back: float
) -> None:
    """A run of attempts that gives up during an outage is followed by one attempt every
    max_delay, so the session RECOVERS once the server is back, with no call from the app,
    even when the wall clock was set back meanwhile (the pause is told on a monotonic one)."""
    caplog.set_level(logging.WARNING, logger="mimi_reactive")
    backend = CountingBackend(HttpBackend(short_lived.url, timeout=2))
    retry = RetryPolicy(initial_delay=0.05, max_delay=0.2, max_attempts=2)
    shift = [0.0]

    def clock() -> float:
        return time.time() + shift[0]

    class SetBackOnGivingUp(logging.Handler):
        """Sets the wall clock back (an NTP step, the user fixing the date) in the pause
        after the keeper gave up: on the loop's next turn, once it planned its next try."""

        def emit(self, record: logging.LogRecord) -> None:
            if getattr(record, "event", record.getMessage()) == "session.refresh_gave_up":
                asyncio.get_running_loop().call_soon(shift.__setitem__, 0, -set_back)

    handler = SetBackOnGivingUp()
    logging.getLogger("mimi_reactive").addHandler(handler)
    try:
        await after_giving_up_recover_with_no_call(short_lived, caplog, backend, retry, clock)
    finally:
        logging.getLogger("mimi_reactive").removeHandler(handler)


async def after_giving_up_recover_with_no_call(
    short_lived: Service,
    caplog: pytest.LogCaptureFixture,
    backend: CountingBackend,
    retry: RetryPolicy,
    clock: Callable[[], float],
) -> None:
    async with short_lived.core(backend=backend, retry=retry, clock=clock) as core:
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

    async with asyncio.timeout(10):  # it saves again, unsaved too, and gives up
        await eventually(keeper_gave_up)
    # Tokens not due are saved again, not renewed: a renewal would spend one more refresh
    # token the storage could not keep either.
    assert backend.counts["refresh"] == 1
    storage.failing = False
    await core.close()
    kept = await storage.load()
    assert kept is not None
    assert kept.tokens == backend.sessions[-1].tokens
    async with service.core(storage) as again:
        await again.auth.refresh()
        assert again.auth.current_user == user
        assert again.auth.state.transition is Transition.RESTORED


class FullDisk(FileSessionStorage):
    """A session file whose saves fail (``ENOSPC``) while ``full``; its loads are counted."""

    full = False
    loads = 0

    async def save(self, session: Session) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        await super().save(session)

    async def load(self) -> Session | None:
        stored = await super().load()
        self.loads += 1
        return stored


async def test_a_sign_up_the_shared_file_could_not_keep_is_not_undone_by_its_watch(
    service: Service, tmp_path: Path
) -> None:
    """A sign-up whose save failed keeps its new user when the watch then reads the file,
    which still holds the log-out stored before (not another process's log-out, which would
    lose the only copy of the anonymous id): degraded, then kept once the disk has room."""
    path = tmp_path / "session.json"
    await FileSessionStorage(path).clear()  # a log-out stored by an earlier run
    storage = FullDisk(path, poll_interval=0.05)
    async with service.core(storage) as core:
        recorder = StateRecorder(core)
        storage.full = True
        with pytest.raises(SessionStorageError):
            await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        user = core.auth.current_user
        assert user is not None
        loads = storage.loads
        path.write_bytes(path.read_bytes())  # rewritten as it was: the watch reads it
        async with asyncio.timeout(10):
            await eventually(_more_loads_than(storage, loads))
            # A command queued behind what the watch asked for (satisfied: changes nothing).
            await core.auth.run(AuthRoute.sign_up_anonymously())
        assert core.auth.current_user == user
        assert Transition.LOGGED_OUT not in recorder.transitions
        storage.full = False
        async with asyncio.timeout(10):
            await recorder.wait_for(Transition.RECOVERED)
        kept = await FileSessionStorage(path).load()
        assert kept is not None
        assert kept.user == user


def _more_loads_than(storage: FullDisk, loads: int) -> Callable[[], Awaitable[bool]]:
    async def read() -> bool:
        return storage.loads > loads

    return read
