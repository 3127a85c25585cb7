"""Renewing a session when its refresh is refused, on the scripted backend: logging the
anonymous user back in by id, and never taking in a non-anonymous user in anonymous-only mode."""

from __future__ import annotations

import asyncio
import time

import pytest

from mimi_reactive import (
    AuthRoute,
    MemorySessionStorage,
    MimiConfiguration,
    MimiCore,
    MimiUser,
    Session,
    SessionRevokedError,
    Transition,
    TransportError,
)
from mimi_reactive.testing import Reply, ScriptedBackend, StateRecorder

from .helpers import CountingBackend

ANONYMOUS_ONLY = MimiConfiguration(allow_anonymous_user_only=True)
EXPIRED = SessionRevokedError("invalid_grant", "the session expired after being unused")


async def promote_elsewhere(backend: ScriptedBackend, user: MimiUser) -> None:
    """Through a client that allows credentials: log ``user`` in by id, then promote it."""
    elsewhere = await backend.authenticate(AuthRoute.log_in_anonymously(user.anonymous_id), None)
    await backend.authenticate(
        AuthRoute.promote(email="someone@example.com", password="a long passphrase"),
        Session.issued(elsewhere, time.time()),
    )


async def test_a_log_in_by_id_that_fails_for_now_is_retried_without_the_refused_token() -> None:
    """Offline right after the refusal: DEGRADED, the refused refresh token is dropped (also
    from the storage), and the retry logs in by id at once; the same user RECOVERS."""
    backend = ScriptedBackend()
    storage = MemorySessionStorage()
    async with MimiCore.start(
        client_id="a", client_secret="s", backend=backend, storage=storage
    ) as core:
        recorder = StateRecorder(core)
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        backend.script(
            Reply.fail(EXPIRED, only_for=("refresh",)),
            Reply.fail(TransportError("offline"), only_for=("log_in_anonymously",)),
        )
        with pytest.raises(TransportError):
            await core.auth.refresh()
        assert core.auth.state.transition is Transition.DEGRADED
        stored = await storage.load()
        assert stored is not None
        assert stored.user == user
        assert stored.tokens.refresh_token is None
        calls = len(backend.calls)
        async with asyncio.timeout(10):  # the keeper retries a degraded session on its own
            recovered = await recorder.wait_for(Transition.RECOVERED)
        assert backend.calls[calls] == "log_in_anonymously"
        assert recovered.user == user
        assert Transition.SESSION_EXPIRED not in recorder.transitions


async def test_anonymous_only_never_takes_in_a_user_promoted_elsewhere() -> None:
    """Another client promoted the user: the anonymous-only core's next refresh ends the
    session here (SESSION_EXPIRED, not PROMOTED), revokes it and forgets it."""
    backend = ScriptedBackend()
    counting = CountingBackend(backend)
    storage = MemorySessionStorage()
    async with MimiCore.start(
        client_id="a",
        client_secret="s",
        backend=counting,
        storage=storage,
        configuration=ANONYMOUS_ONLY,
    ) as core:
        recorder = StateRecorder(core)
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        await promote_elsewhere(backend, user)
        with pytest.raises(SessionRevokedError) as ended:
            await core.auth.refresh()
        assert ended.value.code == "not_anonymous"
        state = core.auth.state
        assert state.transition is Transition.SESSION_EXPIRED
        assert state.user is None
        assert state.previous_user == user
        assert Transition.PROMOTED not in recorder.transitions
        assert all(seen.user is None or seen.user.is_anonymous for seen in recorder.states)
        assert await storage.load() is None
        async with asyncio.timeout(5):  # revoked at the service, in the background
            await counting.wait_for_calls("revoke")


async def test_without_anonymous_only_a_user_promoted_elsewhere_is_taken_in() -> None:
    """The same promotion, in the default configuration, reaches the core as PROMOTED."""
    backend = ScriptedBackend()
    async with MimiCore.start(client_id="a", client_secret="s", backend=backend) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        await promote_elsewhere(backend, user)
        await core.auth.refresh()
        assert core.auth.state.transition is Transition.PROMOTED
        promoted = core.auth.current_user
        assert promoted is not None
        assert promoted.id == user.id
        assert not promoted.is_anonymous


async def test_anonymous_only_never_deletes_a_user_promoted_elsewhere() -> None:
    """Another client promoted the user while the core's token still says anonymous: a
    deletion renews first, finds the credentials, and ends the session here (not_anonymous)
    instead of deleting what is now a real account, which still logs in."""
    backend = ScriptedBackend()
    counting = CountingBackend(backend)
    async with MimiCore.start(
        client_id="a", client_secret="s", backend=counting, configuration=ANONYMOUS_ONLY
    ) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        await promote_elsewhere(backend, user)
        with pytest.raises(SessionRevokedError) as ended:
            await core.auth.delete_account()
        assert ended.value.code == "not_anonymous"
        assert core.auth.state.transition is Transition.SESSION_EXPIRED
        assert "delete" not in backend.calls
        route = AuthRoute.log_in(email="someone@example.com", password="a long passphrase")
        assert (await backend.authenticate(route, None)).user.id == user.id
        async with asyncio.timeout(5):  # the renewed session is revoked in the background
            await counting.wait_for_calls("revoke")
