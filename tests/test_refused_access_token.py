"""A call the service refuses for its access token (one the core still deems valid: a clock
that was wrong, a key the service dropped) renews the session and calls once more, over the
real server; only a refusal after the renewal ends the session."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

import pytest

from mimi_reactive import (
    AccessTokenRefusedError,
    AuthRoute,
    InvalidCredentialsError,
    MimiConfiguration,
    MimiCore,
    SessionEndedError,
    SessionRevokedError,
    Transition,
)
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer, ServerSettings
from mimi_reactive.testing import Reply, ScriptedBackend

from .conftest import ANONYMOUS_ONLY, CLIENT_ID
from .server_helpers import Clock

ACCESS_TOKEN_TTL = 60.0


@pytest.fixture
def server_clock() -> Clock:
    """The server's clock; the cores keep the real one."""
    return Clock(time.time())


@pytest.fixture
async def server(
    client_secret: str, tmp_path_factory: pytest.TempPathFactory, server_clock: Clock
) -> AsyncIterator[IdentityServer]:
    settings = ServerSettings(clock=server_clock, access_token_ttl=ACCESS_TOKEN_TTL)
    database = tmp_path_factory.mktemp("refused") / "identity.db"
    async with IdentityServer(
        client_id=CLIENT_ID, client_secret=client_secret, database=database, settings=settings
    ) as running:
        yield running


def start(
    server: IdentityServer, client_secret: str, configuration: MimiConfiguration = ANONYMOUS_ONLY
) -> AbstractAsyncContextManager[MimiCore]:
    return MimiCore.start(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        backend=HttpBackend(server.url),
        configuration=configuration,
    )


async def test_a_deletion_refused_for_its_token_renews_and_deletes(
    server: IdentityServer, client_secret: str, server_clock: Clock
) -> None:
    """The service's clock has run past the access token the core deems fresh: the account
    is deleted all the same, and its id no longer logs in."""
    async with start(server, client_secret) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        assert user.anonymous_id is not None
        server_clock.now += 2 * ACCESS_TOKEN_TTL
        await core.auth.delete_account()
        assert core.auth.state.transition is Transition.DELETED
        outcome = await core.auth.run(AuthRoute.log_in_anonymously(user.anonymous_id))
        assert isinstance(outcome.error, InvalidCredentialsError)


async def test_a_log_out_everywhere_refused_for_its_token_renews_and_ends_every_session(
    server: IdentityServer, client_secret: str, server_clock: Clock
) -> None:
    """With the service's clock past the access token, log_out(everywhere=True) still ends
    the other device's session."""
    async with start(server, client_secret) as first, start(server, client_secret) as second:
        user = await first.auth.authenticate(AuthRoute.sign_up_anonymously())
        assert user.anonymous_id is not None
        await second.auth.authenticate(AuthRoute.log_in_anonymously(user.anonymous_id))
        server_clock.now += 2 * ACCESS_TOKEN_TTL
        await first.auth.log_out(everywhere=True)
        assert first.auth.state.transition is Transition.LOGGED_OUT
        assert first.auth.state.error is None
        with pytest.raises(SessionRevokedError):
            await second.auth.refresh()


async def test_a_promotion_refused_for_its_token_renews_and_promotes(
    server: IdentityServer, client_secret: str, server_clock: Clock
) -> None:
    """With the service's clock past the access token, the anonymous user is promoted,
    not logged out."""
    async with start(server, client_secret, MimiConfiguration()) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        server_clock.now += 2 * ACCESS_TOKEN_TTL
        promoted = await core.auth.authenticate(
            AuthRoute.promote(email="ada@example.com", password="correct horse battery")
        )
        assert promoted.id == user.id
        assert not promoted.is_anonymous
        assert core.auth.state.transition is Transition.PROMOTED


async def test_a_token_refused_after_the_renewal_fails_the_call_and_keeps_the_session() -> None:
    """The service renews the session and then refuses the renewed token too: after exactly
    one renewal and one second call the command fails (AccessTokenRefusedError), and the
    user, whose session the renewal showed alive, stays logged in with the renewed tokens."""
    backend = ScriptedBackend()
    async with MimiCore.start(client_id="a", client_secret="s", backend=backend) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        first_token = await core.auth.access_token()
        refused = AccessTokenRefusedError("invalid_token", "the access token is not valid")
        backend.script(
            Reply.fail(refused, only_for=["delete"]), Reply.fail(refused, only_for=["delete"])
        )
        calls = len(backend.calls)
        with pytest.raises(AccessTokenRefusedError):
            await core.auth.delete_account()
        assert backend.calls[calls:] == ["delete", "refresh", "delete"]
        assert core.auth.current_user == user
        assert await core.auth.access_token() != first_token  # the renewed pair is kept
        await core.auth.refresh()  # and its refresh token is the live one


async def test_a_refused_token_whose_renewal_is_refused_ends_the_session() -> None:
    """The service refuses the token and then the renewal (the session was ended on
    purpose): the session ends (SESSION_EXPIRED) and the caller hears why."""
    backend = ScriptedBackend()
    async with MimiCore.start(client_id="a", client_secret="s", backend=backend) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        refused = AccessTokenRefusedError("invalid_token", "the access token is not valid")
        backend.script(
            Reply.fail(refused, only_for=["delete"]),
            Reply.fail(SessionEndedError("invalid_grant", "revoked"), only_for=["refresh"]),
        )
        with pytest.raises(SessionEndedError):
            await core.auth.delete_account()
        assert core.auth.state.transition is Transition.SESSION_EXPIRED
        assert core.auth.current_user is None


async def test_a_promotion_with_a_token_past_its_use_renews_first() -> None:
    """On the core's clock the access token is past its use: the session is renewed before
    the promotion, which acts on the renewed one."""
    now = [1_000_000.0]
    backend = ScriptedBackend(token_ttl=60.0)
    async with MimiCore.start(
        client_id="a", client_secret="s", backend=backend, clock=lambda: now[0]
    ) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        calls = len(backend.calls)
        now[0] += 3600.0
        await core.auth.authenticate(
            AuthRoute.promote(email="ada@example.com", password="correct horse battery")
        )
        assert backend.calls[calls:] == ["refresh", "promote"]
        assert core.auth.state.transition is Transition.PROMOTED
