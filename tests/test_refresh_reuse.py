"""A lost refresh answer never ends the session: the retry with the rotated token gets a
working pair of the same session, over the real server and a proxy that drops the answer."""

from __future__ import annotations

import aiohttp
import pytest

from mimi_reactive import AuthRoute, MimiCore, SessionState, Transition, TransportError
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer

from .conftest import ANONYMOUS_ONLY, CLIENT_ID
from .lossy_proxy import LossyProxy


@pytest.fixture
async def server(store_server: IdentityServer) -> IdentityServer:
    """The reference server, on SQLite and on PostgreSQL in turn."""
    return store_server


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
