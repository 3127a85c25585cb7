"""A lost refresh answer never ends the session: the retry with the rotated token gets a
working pair of the same session, over the real server and a proxy that drops the answer. The
retry's pair replaces the lost one, so a session never forks into two lines of tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from mimi_reactive import AuthRoute, MimiCore, SessionState, Transition, TransportError
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer

from .conftest import ANONYMOUS_ONLY, CLIENT_ID
from .lossy_proxy import LossyProxy
from .server_helpers import Caller


@pytest.fixture
async def server(store_server: IdentityServer) -> IdentityServer:
    """The reference server, on SQLite and on PostgreSQL in turn."""
    return store_server


@pytest.fixture
async def caller(server: IdentityServer, client_secret: str) -> AsyncIterator[Caller]:
    async with aiohttp.ClientSession() as http:
        yield Caller(http, server.url, CLIENT_ID, client_secret)


async def refreshed(caller: Caller, refresh_token: str) -> dict[str, str]:
    """The new pair a refresh with ``refresh_token`` answers (which must be 200)."""
    status, answer = await caller.refresh(refresh_token)
    assert status == 200, answer
    return answer["session"]  # type: ignore[no-any-return]


async def assert_revoked(caller: Caller, session: dict[str, str]) -> None:
    """The session of this pair has ended: its access token is inactive and its refresh token
    refused."""
    _, introspected, _ = await caller.post(
        "/v1/token/introspect", {"token": session["access_token"]}
    )
    assert introspected["active"] is False
    status, answer = await caller.refresh(session["refresh_token"])
    assert (status, answer["error"]["code"]) == (400, "invalid_grant")


async def test_retry_after_a_lost_refresh_answer_keeps_the_session(
    server: IdentityServer, client_secret: str
) -> None:
    """The server rotated the token but the answer was lost; the retry with the old token
    gets 200 and a pair that works, and the session is not revoked."""
    auth = aiohttp.encode_basic_auth(CLIENT_ID, client_secret)
    async with (
        LossyProxy(server.url, path="/v1/token") as proxy,
        aiohttp.ClientSession(headers={"Authorization": auth}) as http,
    ):
        async with http.post(proxy.url + "/v1/anonymous-users", json={}) as response:
            created = await response.json()
        grant = {
            "grant_type": "refresh_token",
            "refresh_token": created["session"]["refresh_token"],
        }
        with pytest.raises(aiohttp.ClientError):
            async with http.post(proxy.url + "/v1/token", json=grant) as response:
                await response.read()
        assert proxy.lost_statuses == [200]  # the server did rotate the token
        async with http.post(proxy.url + "/v1/token", json=grant) as response:
            assert response.status == 200
            retried = await response.json()
        assert retried["user"]["id"] == created["user"]["id"]
        token = {"token": retried["session"]["access_token"]}
        async with http.post(server.url + "/v1/token/introspect", json=token) as response:
            assert (await response.json())["active"] is True


async def test_client_retry_after_a_lost_refresh_answer_never_ends_the_session(
    server: IdentityServer, client_secret: str
) -> None:
    """HttpBackend times out on the lost answer (a TransportError, DEGRADED), and its retry
    recovers the same user: no SESSION_EXPIRED, and the new access token is valid."""
    async with LossyProxy(server.url, path="/v1/token") as proxy:
        states: list[SessionState] = []
        async with MimiCore.start(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            configuration=ANONYMOUS_ONLY,
            backend=HttpBackend(proxy.url),
        ) as core:
            core.auth.states.subscribe(states.append)
            user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
            with pytest.raises(TransportError):
                await core.auth.refresh()
            assert proxy.lost_statuses == [200]
            await core.auth.refresh()  # the retry presents the token the server rotated
            assert core.auth.current_user == user
            access_token = await core.auth.access_token()
        transitions = [state.transition for state in states]
        assert Transition.SESSION_EXPIRED not in transitions
        assert Transition.DEGRADED in transitions
        auth = aiohttp.encode_basic_auth(CLIENT_ID, client_secret)
        async with (
            aiohttp.ClientSession(headers={"Authorization": auth}) as http,
            http.post(server.url + "/v1/token/introspect", json={"token": access_token}) as r,
        ):
            assert (await r.json())["active"] is True


async def test_the_pair_a_retry_replaced_is_reuse_so_the_session_never_forks(
    caller: Caller,
) -> None:
    """rt gives rt1 (its answer lost) and, retried, rt2: rt2's line goes on, and rt1 presented
    afterwards is reuse that revokes the session, rt2's newest pair included."""
    first = (await caller.anonymous_user())["session"]
    lost = await refreshed(caller, first["refresh_token"])
    retried = await refreshed(caller, first["refresh_token"])
    newest = await refreshed(caller, retried["refresh_token"])
    status, answer = await caller.refresh(lost["refresh_token"])
    assert (status, answer["error"]["code"]) == (400, "invalid_grant")
    assert "already used" in answer["error"]["message"]
    await assert_revoked(caller, newest)


async def test_a_delayed_copy_of_a_refresh_does_not_end_the_pair_the_client_holds(
    caller: Caller,
) -> None:
    """rt gives rt1 to the client's retry; the first request, delayed in the network, arrives
    within the reuse interval and gets rt2, which nobody receives. The client's rt1 goes on
    (the first token presented after a reissue is the one kept) and rt2 is then reuse."""
    first = (await caller.anonymous_user())["session"]
    held = await refreshed(caller, first["refresh_token"])
    unreceived = await refreshed(caller, first["refresh_token"])  # the delayed copy
    newest = await refreshed(caller, held["refresh_token"])
    status, answer = await caller.refresh(unreceived["refresh_token"])
    assert (status, answer["error"]["code"], answer["error"]["reason"]) == (
        400,
        "invalid_grant",
        "reused",
    )
    await assert_revoked(caller, newest)


async def test_a_replay_after_the_first_pair_was_used_is_reuse(caller: Caller) -> None:
    """rt gives rt1, which is used; rt presented again within the reuse interval is no lost
    answer's retry (its answer arrived): reuse, and the session is revoked."""
    first = (await caller.anonymous_user())["session"]
    used = await refreshed(caller, first["refresh_token"])
    newest = await refreshed(caller, used["refresh_token"])
    status, answer = await caller.refresh(first["refresh_token"])
    assert (status, answer["error"]["code"]) == (400, "invalid_grant")
    await assert_revoked(caller, newest)


@pytest.mark.parametrize("presented", [0, 1])
async def test_a_retry_of_a_retry_gets_the_one_working_pair(caller: Caller, presented: int) -> None:
    """Two answers lost in a row: the third try of rt gets the pair that works and goes on;
    either lost pair, presented afterwards, is reuse that revokes the session."""
    first = (await caller.anonymous_user())["session"]
    lost = [await refreshed(caller, first["refresh_token"]) for _ in range(2)]
    working = await refreshed(caller, first["refresh_token"])
    newest = await refreshed(caller, working["refresh_token"])
    status, answer = await caller.refresh(lost[presented]["refresh_token"])
    assert (status, answer["error"]["code"]) == (400, "invalid_grant")
    assert "already used" in answer["error"]["message"]
    await assert_revoked(caller, newest)
