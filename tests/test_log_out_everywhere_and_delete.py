"""Log out everywhere and account deletion, seen from a second core, over the real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from mimi_reactive import (
    AuthRoute,
    BackendCapabilities,
    BackendSession,
    InvalidCredentialsError,
    MemorySessionStorage,
    MimiConfiguration,
    MimiCore,
    RateLimitedError,
    Reason,
    RetryPolicy,
    Session,
    SessionEndedError,
    SessionRevokedError,
    Transition,
    TransportError,
    UnsupportedRouteError,
)
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer
from mimi_reactive.testing import Reply, ScriptedBackend, StateRecorder

from .conftest import ANONYMOUS_ONLY, CLIENT_ID, StartCore


@pytest.fixture
async def server(store_server: IdentityServer) -> IdentityServer:
    """The reference server, on SQLite and on PostgreSQL in turn."""
    return store_server


async def two_sessions_of_one_user(start_core: StartCore) -> tuple[MimiCore, MimiCore, str]:
    """One user logged in on two cores (two devices); returns them and the anonymous id."""
    first = await start_core()
    user = await first.auth.authenticate(AuthRoute.sign_up_anonymously())
    assert user.anonymous_id is not None
    second = await start_core()
    await second.auth.authenticate(AuthRoute.log_in_anonymously(user.anonymous_id))
    return first, second, user.anonymous_id


async def test_log_out_everywhere_ends_the_other_devices_session(start_core: StartCore) -> None:
    """After log_out(everywhere=True) here, the other core's next refresh expires its session."""
    first, second, _ = await two_sessions_of_one_user(start_core)
    await first.auth.log_out(everywhere=True)
    assert first.auth.state.transition is Transition.LOGGED_OUT
    assert first.auth.state.error is None
    with pytest.raises(SessionRevokedError):
        await second.auth.refresh()
    assert second.auth.state.transition is Transition.SESSION_EXPIRED


async def test_plain_log_out_leaves_the_other_devices_session(start_core: StartCore) -> None:
    """A plain log-out ends only this session: the other core still refreshes."""
    first, second, _ = await two_sessions_of_one_user(start_core)
    await first.auth.log_out()
    await second.auth.refresh()
    assert second.auth.current_user is not None


async def test_deleting_the_account_ends_it_everywhere(start_core: StartCore) -> None:
    """delete_account() publishes DELETED; the id no longer logs in; the other core expires."""
    first, second, anonymous_id = await two_sessions_of_one_user(start_core)
    user = first.auth.current_user
    recorder = StateRecorder(first)
    await first.auth.delete_account()
    assert recorder.transitions[-1] is Transition.DELETED
    assert first.auth.state.previous_user == user
    assert first.auth.current_user is None
    with pytest.raises(InvalidCredentialsError):
        await first.auth.authenticate(AuthRoute.log_in_anonymously(anonymous_id))
    with pytest.raises(SessionRevokedError):
        await second.auth.refresh()
    assert second.auth.state.transition is Transition.SESSION_EXPIRED


async def test_an_expired_access_token_is_refreshed_before_logging_out_everywhere(
    server: IdentityServer, client_secret: str
) -> None:
    """With the access token past its use (on the client's clock), the core refreshes first,
    so the call the service needs a live token for still ends every session."""
    now = [time.time()]
    async with MimiCore.start(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        backend=HttpBackend(server.url),
        configuration=ANONYMOUS_ONLY,
        clock=lambda: now[0],
    ) as first:
        user = await first.auth.authenticate(AuthRoute.sign_up_anonymously())
        async with MimiCore.start(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            backend=HttpBackend(server.url),
            configuration=ANONYMOUS_ONLY,
        ) as second:
            await second.auth.authenticate(AuthRoute.log_in_anonymously(user.anonymous_id))
            now[0] += 3600.0  # the first core now deems its access token expired
            await first.auth.log_out(everywhere=True)
            with pytest.raises(SessionRevokedError):
                await second.auth.refresh()


async def test_a_backend_that_cannot_log_out_everywhere_is_refused_before_any_call() -> None:
    """Without the capability, log_out(everywhere=True) raises and changes nothing."""
    backend = ScriptedBackend(capabilities=BackendCapabilities(revoke_everywhere=False))
    async with MimiCore.start(client_id="a", client_secret="s", backend=backend) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        calls = list(backend.calls)
        with pytest.raises(UnsupportedRouteError):
            await core.auth.log_out(everywhere=True)
        assert backend.calls == calls
        assert core.auth.current_user == user


# A command a backend may lack the capability for: how the app calls it, the capabilities
# without it, the reason it is refused with and the words its message names it by.
MISSING_CAPABILITIES = {
    "log out everywhere": (
        lambda core: core.auth.log_out(everywhere=True),
        BackendCapabilities(revoke_everywhere=False, delete=True),
        Reason.BACKEND_CANNOT_LOG_OUT_EVERYWHERE,
        "log_out(everywhere=True)",
    ),
    "delete an account": (
        lambda core: core.auth.delete_account(),
        BackendCapabilities(revoke_everywhere=True, delete=False),
        Reason.BACKEND_CANNOT_DELETE_ACCOUNTS,
        "delete_account()",
    ),
    "refresh": (
        lambda core: core.auth.refresh(),
        BackendCapabilities(refresh=False, revoke_everywhere=True, delete=True),
        Reason.BACKEND_CANNOT_REFRESH,
        "refresh()",
    ),
}


@pytest.mark.parametrize(
    ("call", "capabilities", "reason", "named"),
    MISSING_CAPABILITIES.values(),
    ids=MISSING_CAPABILITIES.keys(),
)
async def test_a_command_the_backend_cannot_do_is_refused_naming_the_command(
    call: Callable[[MimiCore], Awaitable[object]],
    capabilities: BackendCapabilities,
    reason: Reason,
    named: str,
) -> None:
    """Without the capability, the command raises UnsupportedRouteError whose reason and
    message name that command (it is no route), and the backend is not called."""
    backend = ScriptedBackend(capabilities=capabilities)
    async with MimiCore.start(client_id="a", client_secret="s", backend=backend) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        calls = list(backend.calls)
        with pytest.raises(UnsupportedRouteError) as refused:
            await call(core)
        assert refused.value.reason is reason
        assert named in str(refused.value)
        assert "route" not in str(refused.value)
        assert backend.calls == calls
        assert core.auth.current_user == user


async def test_offline_log_out_everywhere_ends_here_raises_and_is_retried() -> None:
    """Offline, the local session still ends, the caller hears why, and the call is retried
    in the background until the service takes it."""
    backend = ScriptedBackend()
    configuration = MimiConfiguration(retry=RetryPolicy(initial_delay=0.01, max_delay=0.02))
    async with MimiCore.start(
        client_id="a", client_secret="s", backend=backend, configuration=configuration
    ) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        backend.script(Reply.fail(TransportError("offline"), only_for=("revoke",)))
        with pytest.raises(TransportError):
            await core.auth.log_out(everywhere=True)
        assert core.auth.state.transition is Transition.LOGGED_OUT
        assert isinstance(core.auth.state.error, TransportError)
    # Closing waits for background revocations (up to its grace period): the retry landed.
    assert backend.calls.count("revoke") == 2


async def test_a_refused_background_revocation_is_not_retried() -> None:
    """A log-out whose revocation the service refuses (the session ended already) is not
    retried in the background: asking again would get the same answer."""
    backend = ScriptedBackend()
    configuration = MimiConfiguration(retry=RetryPolicy(initial_delay=0.01, max_delay=0.02))
    async with MimiCore.start(
        client_id="a", client_secret="s", backend=backend, configuration=configuration
    ) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        ended = SessionEndedError("invalid_grant", "the session was revoked")
        backend.script(Reply.fail(ended, only_for=("revoke",)))
        with pytest.raises(SessionEndedError):
            await core.auth.log_out(everywhere=True)
    # Closing waits for background revocations: there were none to wait for.
    assert backend.calls.count("revoke") == 1


class TimedBackend(ScriptedBackend):
    """Records when each refresh reaches it (on the loop's clock)."""

    refreshed_at: list[float]

    async def refresh(self, session: Session) -> BackendSession:
        self.refreshed_at.append(asyncio.get_running_loop().time())
        return await super().refresh(session)


async def test_background_refresh_waits_as_long_as_the_service_asked() -> None:
    """After a 429 with Retry-After, the keeper's next refresh comes no sooner than asked,
    however short its own backoff."""
    backend = TimedBackend(token_ttl=1.2)
    backend.refreshed_at = []
    backend.script(
        Reply.fail(
            RateLimitedError("rate_limited", "slow down", status=429, retry_after=0.6),
            only_for=("refresh",),
        )
    )
    configuration = MimiConfiguration(retry=RetryPolicy(initial_delay=0.001, max_delay=0.001))
    async with MimiCore.start(
        client_id="a", client_secret="s", backend=backend, configuration=configuration
    ) as core:
        recorder = StateRecorder(core)
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        async with asyncio.timeout(20):
            await recorder.wait_for(Transition.RECOVERED)
    first, second = backend.refreshed_at[:2]
    assert second - first >= 0.6


async def test_a_deletion_that_fails_after_renewing_keeps_the_renewed_pair() -> None:
    """delete_account() renews an access token past its use first; when the deletion then
    fails for now, the core keeps (and stores) the renewed pair, so its next refresh presents
    the live refresh token, not the one the renewal spent (reuse, which ends the session)."""
    backend = ScriptedBackend()
    storage = MemorySessionStorage()
    now = [time.time()]
    async with MimiCore.start(
        client_id="a",
        client_secret="s",
        backend=backend,
        storage=storage,
        clock=lambda: now[0],
    ) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        now[0] += 3600.0  # the access token is past its use on the core's clock
        backend.script(Reply.fail(TransportError("offline"), only_for=("delete",)))
        with pytest.raises(TransportError):
            await core.auth.delete_account()
        assert backend.calls[-2:] == ["refresh", "delete"]
        held = core.auth.state
        assert held.user == user
        stored = await storage.load()
        assert stored is not None
        assert stored.tokens.access_token == await core.auth.access_token()
        await core.auth.refresh()
        assert core.auth.current_user == user
        assert Transition.SESSION_EXPIRED not in [held.transition, core.auth.state.transition]


async def test_a_log_out_everywhere_retried_after_renewing_uses_the_renewed_pair() -> None:
    """log_out(everywhere=True) renews an access token past its use, then the call fails for
    now: the background retry acts with the renewed pair (not by renewing the spent one
    again, which is reuse), so the other device's session ends all the same."""
    backend = ScriptedBackend()
    now = [time.time()]
    configuration = MimiConfiguration(retry=RetryPolicy(initial_delay=0.01, max_delay=0.02))
    async with MimiCore.start(
        client_id="a",
        client_secret="s",
        backend=backend,
        configuration=configuration,
        clock=lambda: now[0],
    ) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        other = Session.issued(
            await backend.authenticate(AuthRoute.log_in_anonymously(user.anonymous_id), None),
            time.time(),
        )
        now[0] += 3600.0  # the access token is past its use on the core's clock
        backend.script(Reply.fail(TransportError("offline"), only_for=("revoke",)))
        with pytest.raises(TransportError):
            await core.auth.log_out(everywhere=True)
    # Closing waited for the background retry.
    assert backend.calls.count("refresh") == 1
    with pytest.raises(SessionRevokedError):
        await backend.refresh(other)
