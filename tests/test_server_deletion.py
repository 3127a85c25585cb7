"""Deleting the logged-in user and logging out everywhere, over HTTP and seen from a core
logged in as the same user elsewhere."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from mimi_reactive import AuthRoute, SessionRevokedError, Transition
from mimi_reactive.server import IdentityServer
from mimi_reactive.testing import StateRecorder

from .conftest import CLIENT_ID, StartCore
from .server_helpers import Caller


@pytest.fixture
async def server(store_server: IdentityServer) -> IdentityServer:
    """The reference server, on SQLite and on PostgreSQL in turn."""
    return store_server


@pytest.fixture
async def caller(server: IdentityServer, client_secret: str) -> AsyncIterator[Caller]:
    async with aiohttp.ClientSession() as http:
        yield Caller(http, server.url, CLIENT_ID, client_secret)


async def test_deleting_a_user_ends_its_id_and_every_session(caller: Caller) -> None:
    """After POST /v1/users/delete the anonymous id, every refresh token and access token fail."""
    created = await caller.anonymous_user()
    anonymous_id = created["user"]["anonymous_id"]
    status, other = await caller.log_in_anonymously(anonymous_id)
    assert status == 200
    bystander = await caller.anonymous_user()
    status, answer, _ = await caller.post(
        "/v1/users/delete", {"access_token": created["session"]["access_token"]}
    )
    assert (status, answer) == (200, {})
    status, answer = await caller.log_in_anonymously(anonymous_id)
    assert (status, answer["error"]["code"]) == (400, "invalid_grant")
    for session in (created["session"], other["session"]):
        status, answer = await caller.refresh(session["refresh_token"])
        assert (status, answer["error"]["code"]) == (400, "invalid_grant")
        _, introspected, _ = await caller.post(
            "/v1/token/introspect", {"token": session["access_token"]}
        )
        assert introspected == {"active": False}
    status, answer, _ = await caller.post(
        "/v1/users/delete", {"access_token": created["session"]["access_token"]}
    )
    assert (status, answer["error"]["code"]) == (401, "invalid_token")
    assert (await caller.refresh(bystander["session"]["refresh_token"]))[0] == 200


async def test_revoking_every_session_leaves_the_user(caller: Caller) -> None:
    """POST /v1/sessions/revoke-all ends all sessions of the user; the id still logs in."""
    created = await caller.anonymous_user()
    anonymous_id = created["user"]["anonymous_id"]
    _, second = await caller.log_in_anonymously(anonymous_id)
    bystander = await caller.anonymous_user()
    status, answer, _ = await caller.post(
        "/v1/sessions/revoke-all", {"access_token": second["session"]["access_token"]}
    )
    assert (status, answer) == (200, {"revoked_sessions": 2})
    for session in (created["session"], second["session"]):
        assert (await caller.refresh(session["refresh_token"]))[0] == 400
    assert (await caller.refresh(bystander["session"]["refresh_token"]))[0] == 200
    assert (await caller.log_in_anonymously(anonymous_id))[0] == 200


@pytest.mark.parametrize("path", ["/v1/users/delete", "/v1/sessions/revoke-all"])
async def test_an_expired_or_unknown_access_token_is_refused(caller: Caller, path: str) -> None:
    """Both calls need a live access token: a refresh token or an unknown one is 401."""
    created = await caller.anonymous_user()
    for token in (created["session"]["refresh_token"], "A" * 43):
        status, answer, _ = await caller.post(path, {"access_token": token})
        assert (status, answer["error"]["code"]) == (401, "invalid_token")


@pytest.mark.parametrize("path", ["/v1/users/delete", "/v1/sessions/revoke-all"])
async def test_a_second_core_sees_session_expired(
    start_core: StartCore, caller: Caller, path: str
) -> None:
    """A core logged in as the user elsewhere gets SESSION_EXPIRED at its next refresh()."""
    created = await caller.anonymous_user()
    core = await start_core()
    recorder = StateRecorder(core)
    user = await core.auth.authenticate(
        AuthRoute.log_in_anonymously(anonymous_id=created["user"]["anonymous_id"])
    )
    status, _, _ = await caller.post(path, {"access_token": created["session"]["access_token"]})
    assert status == 200
    with pytest.raises(SessionRevokedError):
        await core.auth.refresh()
    expired = recorder.states[-1]
    assert expired.transition is Transition.SESSION_EXPIRED
    assert expired.previous_user == user
