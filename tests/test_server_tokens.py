"""The reference server's token lifecycle: expiry, rotation, reuse detection, idle timeout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from mimi_reactive.server import IdentityServer, ServerSettings

from .conftest import CLIENT_ID
from .server_helpers import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def timed_server(
    client_secret: str, clock: Clock, database_url: str
) -> AsyncIterator[IdentityServer]:
    settings = ServerSettings(access_token_ttl=60, session_idle_timeout=600, clock=clock)
    async with IdentityServer(
        client_id=CLIENT_ID, client_secret=client_secret, settings=settings, database=database_url
    ) as running:
        yield running


@pytest.fixture
async def call(timed_server: IdentityServer, client_secret: str) -> AsyncIterator[Any]:
    auth = aiohttp.encode_basic_auth(CLIENT_ID, client_secret)
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as http:

        async def post(path: str, body: dict[str, Any]) -> tuple[int, Any]:
            async with http.post(timed_server.url + path, json=body) as response:
                return response.status, await response.json()

        yield post


async def new_session(call: Any) -> dict[str, Any]:
    status, created = await call("/v1/anonymous-users", {})
    assert status == 201
    return created["session"]  # type: ignore[no-any-return]


async def refresh(call: Any, refresh_token: str) -> tuple[int, Any]:
    return await call(  # type: ignore[no-any-return]
        "/v1/token", {"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


async def active(call: Any, access_token: str) -> bool:
    status, answer = await call("/v1/token/introspect", {"token": access_token})
    assert status == 200
    return answer["active"]  # type: ignore[no-any-return]


async def test_access_token_expires_after_its_ttl(call: Any, clock: Clock) -> None:
    """An access token is active for access_token_ttl seconds of server time."""
    session = await new_session(call)
    assert session["expires_in"] == 60
    clock.now += 59
    assert await active(call, session["access_token"])
    clock.now += 2
    assert not await active(call, session["access_token"])


async def test_refresh_rotates_both_tokens(call: Any, clock: Clock) -> None:
    """A refresh gives a new pair; the old access token stays active until it expires (a call
    in flight with it still passes), the new one beyond; a log-out ends both at once."""
    session = await new_session(call)
    clock.now += 48  # the core refreshes at 80% of the lifetime
    status, refreshed = await refresh(call, session["refresh_token"])
    assert status == 200
    new = refreshed["session"]
    assert new["refresh_token"] != session["refresh_token"]
    assert new["access_token"] != session["access_token"]
    assert await active(call, new["access_token"])
    assert await active(call, session["access_token"])
    clock.now += 12  # the old token's 60 s are over
    assert not await active(call, session["access_token"])
    assert await active(call, new["access_token"])
    _, again = await refresh(call, new["refresh_token"])
    await call("/v1/sessions/revoke", {"token": again["session"]["refresh_token"]})
    assert not await active(call, new["access_token"])
    assert not await active(call, again["session"]["access_token"])


async def test_reusing_a_refresh_token_revokes_the_family(call: Any, clock: Clock) -> None:
    """Presenting a spent refresh token after the reuse interval revokes the session: even
    the newest pair dies."""
    session = await new_session(call)
    _, first = await refresh(call, session["refresh_token"])
    newest = first["session"]
    clock.now += 10  # the default reuse interval, 10 s, is over
    status, error = await refresh(call, session["refresh_token"])  # the spent one, again
    assert (status, error["error"]["code"]) == (400, "invalid_grant")
    assert "already used" in error["error"]["message"]
    assert error["error"]["reason"] == "reused"
    assert not await active(call, newest["access_token"])
    status, error = await refresh(call, newest["refresh_token"])
    assert (status, error["error"]["code"]) == (400, "invalid_grant")
    assert error["error"]["reason"] == "reused"  # and so for every token of the session after


async def test_idle_session_cannot_be_refreshed(call: Any, clock: Clock) -> None:
    """A session unused for longer than the idle timeout is over, and says so with the reason
    idle each time it is presented (a client may log back in by id, unlike after a log-out)."""
    session = await new_session(call)
    clock.now += 601
    for _ in range(2):
        status, error = await refresh(call, session["refresh_token"])
        assert (status, error["error"]["code"]) == (400, "invalid_grant")
        assert "unused" in error["error"]["message"]
        assert error["error"]["reason"] == "idle"


async def test_use_keeps_a_session_alive(call: Any, clock: Clock) -> None:
    """Refreshing within the idle timeout keeps the session going past it."""
    session = await new_session(call)
    for _ in range(3):
        clock.now += 500
        status, answer = await refresh(call, session["refresh_token"])
        assert status == 200
        session = answer["session"]


async def test_logged_out_session_cannot_be_refreshed(call: Any) -> None:
    """Revoking by access token ends the refresh token too."""
    session = await new_session(call)
    await call("/v1/sessions/revoke", {"token": session["access_token"]})
    status, error = await refresh(call, session["refresh_token"])
    assert (status, error["error"]["code"], error["error"]["reason"]) == (
        400,
        "invalid_grant",
        "revoked",
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"grant_type": "password", "refresh_token": "x"}, "unsupported_grant_type"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "never-issued"}, "invalid_grant"),
    ],
)
async def test_bad_refresh_requests(call: Any, body: dict[str, Any], code: str) -> None:
    """Malformed or unknown refresh requests get a 400 with a stable code (an unknown token's
    reason: unknown)."""
    status, error = await call("/v1/token", body)
    assert (status, error["error"]["code"]) == (400, code)
    assert error["error"].get("reason") == ("unknown" if code == "invalid_grant" else None)


async def test_reuse_within_the_interval_gets_a_pair_of_the_same_session(
    call: Any, clock: Clock
) -> None:
    """A spent refresh token presented again within the interval (a retry after a lost
    answer) gets a new working pair of the same session, which replaces the lost one: the
    lost answer's refresh token, presented later, is reuse and revokes the session."""
    _, created = await call("/v1/anonymous-users", {})
    session = created["session"]
    _, lost = await refresh(call, session["refresh_token"])  # the answer the client never saw
    clock.now += 9.5
    status, retried = await refresh(call, session["refresh_token"])
    assert status == 200
    assert retried["user"]["id"] == created["user"]["id"]
    assert await active(call, retried["session"]["access_token"])
    status, newest = await refresh(call, retried["session"]["refresh_token"])
    assert status == 200
    status, error = await refresh(call, lost["session"]["refresh_token"])
    assert (status, error["error"]["code"]) == (400, "invalid_grant")
    assert "already used" in error["error"]["message"]
    assert not await active(call, newest["session"]["access_token"])


async def test_reuse_after_a_newer_token_was_spent_revokes(call: Any) -> None:
    """Within the interval too, a spent token whose successor was already used is a stolen
    copy, not a retry: the session is revoked."""
    session = await new_session(call)
    _, first = await refresh(call, session["refresh_token"])
    _, second = await refresh(call, first["session"]["refresh_token"])
    status, error = await refresh(call, session["refresh_token"])
    assert (status, error["error"]["code"]) == (400, "invalid_grant")
    assert not await active(call, second["session"]["access_token"])


async def test_reuse_interval_zero_revokes_at_once(
    client_secret: str, clock: Clock, database_url: str
) -> None:
    """With refresh_reuse_interval=0 any reuse revokes the session, as before."""
    settings = ServerSettings(refresh_reuse_interval=0, clock=clock)
    auth = aiohttp.encode_basic_auth(CLIENT_ID, client_secret)
    async with (
        IdentityServer(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            settings=settings,
            database=database_url,
        ) as s,
        aiohttp.ClientSession(headers={"Authorization": auth}) as http,
    ):
        async with http.post(s.url + "/v1/anonymous-users", json={}) as response:
            token = (await response.json())["session"]["refresh_token"]
        grant = {"grant_type": "refresh_token", "refresh_token": token}
        async with http.post(s.url + "/v1/token", json=grant) as response:
            assert response.status == 200
        async with http.post(s.url + "/v1/token", json=grant) as response:
            assert response.status == 400
            assert "already used" in (await response.json())["error"]["message"]
