"""Two cores sharing one session file (as two processes do) renew it without undoing each
other: no spent refresh token presented, no log-out or sign-in saved over."""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mimi_reactive import (
    AuthRoute,
    FileSessionStorage,
    MimiCore,
    Session,
    SessionLockTimeoutError,
    SessionStorageError,
    Transition,
)
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer
from mimi_reactive.testing import StateRecorder

from .conftest import CLIENT_ID, Service
from .helpers import CountingBackend
from .server_helpers import eventually

# A bound on waiting for a change to reach the other core (it is watched every 0.05 s), not
# a timing claim: it only turns a change that never arrives into a failure.
WITHIN = 15.0
PASSWORD = "a long passphrase"


class MovableClock:
    """The wall clock, plus ``ahead`` seconds: a process whose loop was blocked wakes late."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


async def until(holds: Callable[[], bool]) -> None:
    """Wait until ``holds()`` (bound it with ``asyncio.timeout``)."""

    async def check() -> bool:
        return holds()

    await eventually(check)


class LoadsCounted(FileSessionStorage):
    """A session file whose loads are counted, to wait until a core has read it."""

    loads = 0

    async def load(self) -> Session | None:
        stored = await super().load()
        self.loads += 1
        return stored


async def fall_behind(ahead: MimiCore, behind: LoadsCounted, clock: MovableClock) -> Session:
    """Once the core on ``behind`` has read the file, renews twice through ``ahead`` (the core
    behind never sees it) and moves ``clock`` on until the pair stored is due as well."""
    async with asyncio.timeout(WITHIN):  # restored, then read once by its watch
        await until(lambda: behind.loads >= 2)
    for _ in range(2):
        await ahead.auth.refresh()
    stored = await FileSessionStorage(behind.path).load()
    assert stored is not None
    assert stored.tokens.expires_in is not None
    clock.ahead = stored.tokens.expires_in
    return stored


async def test_a_core_that_fell_behind_renews_the_newer_stored_pair_not_its_spent_one(
    service: Service, tmp_path: Path
) -> None:
    """A core that missed the other's renewals (its loop blocked) wakes with tokens due and
    finds the other's newer pair stored, due as well: it renews that pair, not its own spent
    one, so the service sees no reuse and a user with credentials stays logged in."""
    path = tmp_path / "session.json"
    email = {"allow_anonymous_user_only": False}
    async with service.core(FileSessionStorage(path, poll_interval=0.05), **email) as ahead:
        user = await ahead.auth.authenticate(
            AuthRoute.sign_up(email="a@example.com", password=PASSWORD)
        )
        clock = MovableClock()
        behind_storage = LoadsCounted(path, poll_interval=60)  # it never sees the renewals
        async with service.core(behind_storage, clock=clock, **email) as behind:
            recorder = StateRecorder(behind)
            held = await behind.auth.access_token()
            stored = await fall_behind(ahead, behind_storage, clock)
            token = await behind.auth.access_token()  # renewed: it raised after a reuse
            assert token not in (held, stored.tokens.access_token)
            assert Transition.SESSION_EXPIRED not in recorder.transitions
            assert behind.auth.current_user == user
        await ahead.auth.refresh()  # the session lives on at the service
        assert ahead.auth.current_user == user


async def test_a_call_from_a_core_that_fell_behind_renews_the_newer_stored_pair(
    service: Service, tmp_path: Path
) -> None:
    """A deletion from a core that missed the other's renewals renews the newer pair stored,
    due as well, not its own spent one: no reuse, so no log-in by id is needed to delete."""
    path = tmp_path / "session.json"
    async with service.core(FileSessionStorage(path, poll_interval=0.05)) as ahead:
        await ahead.auth.authenticate(AuthRoute.sign_up_anonymously())
        clock = MovableClock()
        behind_storage = LoadsCounted(path, poll_interval=60)  # it never sees the renewals
        backend = CountingBackend(HttpBackend(service.url))
        async with service.core(behind_storage, backend=backend, clock=clock) as behind:
            await fall_behind(ahead, behind_storage, clock)
            await behind.auth.delete_account()
            assert behind.auth.state.transition is Transition.DELETED
            assert backend.counts["refresh"] == 1
            assert backend.counts["authenticate"] == 0  # no log-in by id after a reuse


class HeldRefresh(HttpBackend):
    """A backend whose refresh answers only once ``gate`` opens (a slow network)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.reached = asyncio.Event()
        self.gate = asyncio.Event()

    async def refresh(self, session: Any) -> Any:
        answer = await super().refresh(session)
        self.reached.set()
        await self.gate.wait()
        return answer


class HeldSave(FileSessionStorage):
    """A session file whose saves, once ``holding``, wait until ``gate`` opens (a slow disk)."""

    holding = False

    def __init__(self, path: Path) -> None:
        super().__init__(path, poll_interval=0.05)
        self.reached = asyncio.Event()
        self.gate = asyncio.Event()

    async def save(self, session: Session) -> None:
        if self.holding:
            self.reached.set()
            await self.gate.wait()
        await super().save(session)


class LockAsked(FileSessionStorage):
    """A session file that says when its lock is asked for."""

    asked: asyncio.Event | None = None

    def lock(self) -> Any:
        if self.asked is not None:
            self.asked.set()
        return super().lock()


def shared_core(url: str, client_secret: str, storage: FileSessionStorage, backend: Any) -> Any:
    return MimiCore.start(
        client_id=CLIENT_ID, client_secret=client_secret, backend=backend, storage=storage
    )


@pytest.mark.parametrize("switch", [False, True], ids=["log_out", "switch"])
@pytest.mark.parametrize("lock_timeout", [30.0, 0.0], ids=["waits_for_lock", "lock_timed_out"])
async def test_a_log_out_or_sign_in_is_never_undone_by_another_cores_refresh(
    server: IdentityServer, client_secret: str, tmp_path: Path, lock_timeout: float, switch: bool
) -> None:
    """A core logs out (and signs another user up) while the other core's refresh is in
    flight: the refresh is not saved over it, the other core follows it, and the first never
    gets its old user back. The log-out waits for the lock the refresh holds (so it comes
    after the refresh's save); when the lock cannot be taken it still ends the session here,
    ``log_out()`` says so, and the refresh, finding it stored, takes it in instead of saving."""
    path = tmp_path / "session.json"
    storage = LockAsked(path, poll_interval=0.05, lock_timeout=lock_timeout)
    refreshing = HeldRefresh(server.url)
    other_storage = HeldSave(path)
    async with (
        shared_core(server.url, client_secret, storage, HttpBackend(server.url)) as core,
        shared_core(server.url, client_secret, other_storage, refreshing) as other,
    ):
        recorder = StateRecorder(core)
        old = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        async with asyncio.timeout(WITHIN):
            await until(lambda: other.auth.current_user == old)
        other_recorder = StateRecorder(other)
        if lock_timeout:  # held about to save: a write without the lock would land first
            refreshing.gate.set()
            other_storage.holding = True
            held = other_storage.reached
        else:  # held while the service renews: the write comes before its last look
            held = refreshing.reached
        in_flight = asyncio.create_task(other.auth.refresh())
        async with asyncio.timeout(WITHIN):
            await held.wait()

        async def end() -> Any:
            if lock_timeout:
                await core.auth.log_out()
            else:
                with pytest.raises(SessionLockTimeoutError):
                    await core.auth.log_out()
            assert core.auth.current_user is None
            return await core.auth.authenticate(AuthRoute.sign_up_anonymously()) if switch else None

        storage.asked = asyncio.Event()
        ending = asyncio.create_task(end())
        if lock_timeout:  # it waits for the lock the refresh holds: let the refresh end
            asked = asyncio.create_task(storage.asked.wait())
            await asyncio.wait({ending, asked}, return_when=asyncio.FIRST_COMPLETED)
            asked.cancel()
        else:  # written without the lock while the refresh is in flight
            await asyncio.shield(ending)
        refreshing.gate.set()
        other_storage.gate.set()
        new = await ending
        await in_flight
        async with asyncio.timeout(WITHIN):
            await until(lambda: other.auth.current_user == new)
        assert core.auth.current_user == new
        stored = await FileSessionStorage(path).load()
        assert (stored and stored.user) == new
        after_log_out = recorder.users[recorder.transitions.index(Transition.LOGGED_OUT) :]
        assert old not in after_log_out
        assert Transition.LOGGED_OUT in other_recorder.transitions or switch


class Disk:
    """A disk shared by two session files on it, full while ``full`` is true."""

    def __init__(self) -> None:
        self.full = False
        self.refused = 0  # saves refused while full


class OnDisk(FileSessionStorage):
    """A session file on ``disk``: its saves fail (``ENOSPC``) while the disk is full."""

    def __init__(self, path: Path, disk: Disk) -> None:
        super().__init__(path, poll_interval=0.05)
        self.disk = disk

    async def save(self, session: Session) -> None:
        if self.disk.full:
            self.disk.refused += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        await super().save(session)


async def test_renewed_tokens_a_full_disk_did_not_keep_are_saved_again_not_renewed(
    service: Service, tmp_path: Path
) -> None:
    """While the shared disk is full, the core whose renewed pair was not kept saves it
    again and again without renewing (each renewal would spend a token the file cannot
    pass on); once the disk has room it is kept, the other core takes it in, and both go on
    renewing with no reuse: a user with credentials stays logged in in both."""
    path = tmp_path / "session.json"
    disk = Disk()
    email = {"allow_anonymous_user_only": False}
    backend = CountingBackend(HttpBackend(service.url))
    async with service.core(OnDisk(path, disk), backend=backend, **email) as core:
        recorder = StateRecorder(core)
        user = await core.auth.authenticate(
            AuthRoute.sign_up(email="d@example.com", password=PASSWORD)
        )
        async with service.core(OnDisk(path, disk), **email) as other:
            other_recorder = StateRecorder(other)
            disk.full = True
            with pytest.raises(SessionStorageError):
                await core.auth.refresh()
            async with asyncio.timeout(WITHIN):  # the keeper tries again, and again
                await until(lambda: disk.refused >= 4)
            assert backend.counts["refresh"] == 1
            disk.full = False
            async with asyncio.timeout(WITHIN):
                await recorder.wait_for(Transition.RECOVERED)
                kept: str = await core.auth.access_token()

                async def taken_in() -> bool:
                    token: str = await other.auth.access_token()
                    return token == kept

                await eventually(taken_in)
            assert backend.counts["refresh"] == 1
            await other.auth.refresh()
            await core.auth.refresh()
            for seen in (recorder, other_recorder):
                assert Transition.SESSION_EXPIRED not in seen.transitions
            assert core.auth.current_user == user
            assert other.auth.current_user == user


@pytest.mark.parametrize("switch", [False, True], ids=["log_out", "switch"])
async def test_a_refresh_takes_in_a_log_out_or_another_user_stored_instead_of_renewing(
    server: IdentityServer, client_secret: str, tmp_path: Path, switch: bool
) -> None:
    """A core refreshes before its watch has read the other core's log-out (or its switch to
    another user): it takes that in (``LOGGED_OUT``, ``SWITCHED_USER``) instead of renewing
    and saving its old user over it, and the other core stays as it is."""
    path = tmp_path / "session.json"
    late = LoadsCounted(path, poll_interval=60)  # it does not see the change by itself
    backend = HttpBackend(server.url)
    async with shared_core(server.url, client_secret, FileSessionStorage(path), backend) as core:
        recorder = StateRecorder(core)
        old = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        async with shared_core(server.url, client_secret, late, HttpBackend(server.url)) as other:
            async with asyncio.timeout(WITHIN):
                await until(lambda: late.loads >= 2)  # restored, then read once by its watch
            assert other.auth.current_user == old
            await core.auth.log_out()
            new = await core.auth.authenticate(AuthRoute.sign_up_anonymously()) if switch else None
            other_recorder = StateRecorder(other)
            await other.auth.refresh()
            expected = Transition.SWITCHED_USER if switch else Transition.LOGGED_OUT
            assert other_recorder.transitions[-1] is expected
            assert other.auth.current_user == new
            stored = await FileSessionStorage(path).load()
            assert (stored and stored.user) == new
            assert core.auth.current_user == new
            assert old not in recorder.users[recorder.transitions.index(Transition.LOGGED_OUT) :]
