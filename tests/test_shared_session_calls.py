"""Two cores sharing one session file (as two processes do) while one runs a call that needs a
live access token (a log-out everywhere, a deletion, a promotion): no spent refresh token
presented, no log-in another core stored cleared or saved over."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mimi_reactive import (
    AccessTokenRefusedError,
    AuthRoute,
    FileSessionStorage,
    MimiUser,
    Session,
    SessionRevokedError,
    Transition,
)
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.testing import StateRecorder

from .conftest import Service
from .helpers import CountingBackend
from .test_shared_session_renewals import (
    WITHIN,
    HeldSave,
    LoadsCounted,
    LockAsked,
    MovableClock,
    fall_behind,
    until,
)

PASSWORD = "a long passphrase"
EMAIL_USERS = {"allow_anonymous_user_only": False}


class HeldCall(HttpBackend):
    """A backend whose deletion and promotion reach the service only once ``gate`` opens (a
    slow network), after any renewal they needed."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.reached = asyncio.Event()
        self.gate = asyncio.Event()

    async def delete(self, session: Session) -> None:
        await self._held()
        await super().delete(session)

    async def authenticate(self, route: AuthRoute, session: Session | None) -> Any:
        if session is not None:  # a promotion
            await self._held()
        return await super().authenticate(route, session)

    async def _held(self) -> None:
        self.reached.set()
        await self.gate.wait()


async def stored_user(path: Path) -> MimiUser | None:
    stored = await FileSessionStorage(path).load()
    return None if stored is None else stored.user


async def test_a_log_out_everywhere_from_a_core_that_fell_behind_revokes_the_newer_stored_pair(
    service: Service, tmp_path: Path
) -> None:
    """A core that missed the other's renewals (its loop blocked) logs out everywhere with
    tokens due: it renews the newer pair stored before it cleared the file, not its own spent
    one, so the service sees no reuse and the user's session on another device ends."""
    path = tmp_path / "session.json"
    async with service.core(FileSessionStorage(path, poll_interval=0.05), **EMAIL_USERS) as ahead:
        await ahead.auth.authenticate(AuthRoute.sign_up(email="e@example.com", password=PASSWORD))
        phone_storage = FileSessionStorage(tmp_path / "phone.json")
        async with service.core(phone_storage, **EMAIL_USERS) as phone:  # another device
            await phone.auth.authenticate(
                AuthRoute.log_in(email="e@example.com", password=PASSWORD)
            )
            clock = MovableClock()
            behind_storage = LoadsCounted(path, poll_interval=60)  # it never sees the renewals
            backend = CountingBackend(HttpBackend(service.url))
            async with service.core(
                behind_storage, backend=backend, clock=clock, **EMAIL_USERS
            ) as behind:
                await fall_behind(ahead, behind_storage, clock)
                await behind.auth.log_out(everywhere=True)  # raised after a reuse
                assert backend.counts["refresh"] == 1
                assert await stored_user(path) is None
            with pytest.raises(SessionRevokedError):  # the other device's session ended
                await phone.auth.refresh()


async def test_a_pair_renewed_for_a_call_is_stored_before_another_core_can_renew_the_spent_one(
    service: Service, tmp_path: Path
) -> None:
    """A deletion renews the session first, then waits on the network: the renewed pair is
    already stored, so the other core refreshing meanwhile takes it in (not due) instead of
    renewing the pair the deletion spent (reuse, then a log-in by id)."""
    path = tmp_path / "session.json"
    held = HeldCall(service.url)
    async with service.core(FileSessionStorage(path, poll_interval=0.05), backend=held) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        late = LoadsCounted(path, poll_interval=60)  # it does not see the renewal by itself
        backend = CountingBackend(HttpBackend(service.url))
        async with service.core(late, backend=backend) as other:
            async with asyncio.timeout(WITHIN):  # restored, then read once by its watch
                await until(lambda: late.loads >= 2)
            deleting = asyncio.create_task(core.auth.delete_account())
            async with asyncio.timeout(WITHIN):
                await held.reached.wait()
            await other.auth.refresh()
            assert backend.counts["refresh"] == 0
            assert backend.counts["authenticate"] == 0  # no log-in by id after a reuse
            stored = await FileSessionStorage(path).load()
            assert stored is not None
            assert await other.auth.access_token() == stored.tokens.access_token
            held.gate.set()
            await deleting
            assert core.auth.state.transition is Transition.DELETED


@pytest.mark.parametrize("call", ["delete", "promote"])
async def test_a_call_the_service_ends_does_not_clear_a_log_in_another_core_stored_since(
    service: Service, tmp_path: Path, call: str
) -> None:
    """A core that has not yet seen the other core's log-out everywhere and sign-up deletes
    (or promotes) its user: the service says the session is over, and the core ends it here
    without clearing the new user the other core stored, who stays logged in there."""
    path = tmp_path / "session.json"
    late = LoadsCounted(path, poll_interval=60)  # it does not see the change by itself
    async with service.core(late, **EMAIL_USERS) as core:
        old = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        async with service.core(FileSessionStorage(path, poll_interval=0.05)) as other:
            assert other.auth.current_user == old
            await other.auth.log_out(everywhere=True)
            new = await other.auth.authenticate(AuthRoute.sign_up_anonymously())
            recorder = StateRecorder(other)
            promote = AuthRoute.promote(email="p@example.com", password=PASSWORD)
            calling = (
                core.auth.delete_account() if call == "delete" else core.auth.authenticate(promote)
            )
            with pytest.raises(SessionRevokedError):
                await calling
            assert core.auth.state.transition is Transition.SESSION_EXPIRED
            assert await stored_user(path) == new
            await other.auth.refresh()  # still logged in, with a live session
            assert other.auth.current_user == new
            assert recorder.transitions == [Transition.ANONYMOUS_CREATED]  # nothing since


async def test_a_failed_call_does_not_save_its_renewed_pair_over_a_log_in_stored_since(
    service: Service, tmp_path: Path
) -> None:
    """A deletion renews the session first, then waits on the network while the other core
    logs out everywhere and signs a new user up: the service refuses the fresh token, the
    deletion fails, and the renewed pair it holds is not saved over the new user."""
    path = tmp_path / "session.json"
    held = HeldCall(service.url)
    late = LoadsCounted(path, poll_interval=60)  # it does not see the change by itself
    async with service.core(late, backend=held) as core:
        old = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        async with service.core(FileSessionStorage(path, poll_interval=0.05)) as other:
            assert other.auth.current_user == old
            deleting = asyncio.create_task(core.auth.delete_account())
            async with asyncio.timeout(WITHIN):
                await held.reached.wait()
            await other.auth.log_out(everywhere=True)
            new = await other.auth.authenticate(AuthRoute.sign_up_anonymously())
            recorder = StateRecorder(other)
            held.gate.set()
            with pytest.raises(AccessTokenRefusedError):
                await deleting
            assert core.auth.current_user == old
            assert await stored_user(path) == new
            await other.auth.refresh()
            assert other.auth.current_user == new
            assert recorder.transitions == [Transition.ANONYMOUS_CREATED]  # nothing since


async def test_a_deletion_is_never_undone_by_another_cores_refresh(
    service: Service, tmp_path: Path
) -> None:
    """A core deletes its user while the other core's refresh is about to save its renewed
    pair: the deletion's clear waits for the lock the refresh holds, so it lands after that
    save, and both cores end up with nobody logged in, not the deleted user."""
    path = tmp_path / "session.json"
    storage = LockAsked(path, poll_interval=0.05)
    other_storage = HeldSave(path)
    async with service.core(storage, **EMAIL_USERS) as core:  # the token is used as it is
        old = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        async with service.core(other_storage) as other:
            assert other.auth.current_user == old
            other_storage.holding = True
            refreshing = asyncio.create_task(other.auth.refresh())
            async with asyncio.timeout(WITHIN):
                await other_storage.reached.wait()
            storage.asked = asyncio.Event()
            deleting = asyncio.create_task(core.auth.delete_account())
            asked = asyncio.create_task(storage.asked.wait())
            await asyncio.wait({deleting, asked}, return_when=asyncio.FIRST_COMPLETED)
            asked.cancel()
            other_storage.gate.set()
            await deleting
            await refreshing
            assert core.auth.state.transition is Transition.DELETED
            assert await FileSessionStorage(path).load() is None
            async with asyncio.timeout(WITHIN):
                await until(lambda: other.auth.current_user is None)
