"""AccessTokenVerifier takes its client list as a set of ids, never a string it would search,
and a closed verifier refuses to verify instead of opening a connection nobody closes."""

from __future__ import annotations

import aiohttp
import pytest

from mimi_reactive import CoreClosedError
from mimi_reactive.server import IdentityServer
from mimi_reactive.verify import AccessTokenVerifier, InvalidTokenError

from .conftest import CLIENT_ID
from .server_helpers import Caller


async def a_token(server: IdentityServer, client_secret: str) -> str:
    """A fresh access token the server issued to CLIENT_ID."""
    async with aiohttp.ClientSession() as http:
        created = await Caller(http, server.url, CLIENT_ID, client_secret).anonymous_user()
    return str(created["session"]["access_token"])


async def test_a_client_whose_id_is_part_of_a_listed_one_is_refused(
    server: IdentityServer, client_secret: str
) -> None:
    """A token of "test-app" fails a verifier for "test-app-admin" (a bare string of it is a
    TypeError, which a substring test would have let pass) and passes one listing it; the
    list given is copied, so changing it later changes nothing."""
    token = await a_token(server, client_secret)
    with pytest.raises(TypeError, match="clients"):
        AccessTokenVerifier(server.url, clients=CLIENT_ID + "-admin")  # a str is an Iterable
    listed = [CLIENT_ID + "-admin"]
    async with AccessTokenVerifier(server.url, clients=listed) as admin_only:
        listed.append(CLIENT_ID)
        with pytest.raises(InvalidTokenError) as raised:
            await admin_only.verify(token)
        assert raised.value.reason == "wrong_client"
    async with AccessTokenVerifier(server.url, clients=(CLIENT_ID, "other")) as ours:
        assert (await ours.verify(token)).client_id == CLIENT_ID


async def test_verify_after_close_raises_and_opens_no_connection(
    server: IdentityServer, client_secret: str
) -> None:
    """verify on a closed verifier raises CoreClosedError, whether it had fetched the keys
    or not, and leaves no HTTP session behind (aiohttp would warn of it unclosed)."""
    token = await a_token(server, client_secret)
    used = AccessTokenVerifier(server.url)
    await used.verify(token)
    never_used = AccessTokenVerifier(server.url)
    for verifier in (used, never_used):
        await verifier.close()
        with pytest.raises(CoreClosedError, match="AccessTokenVerifier is closed"):
            await verifier.verify(token)
        assert verifier._http is None  # nothing opened that close() would not close
        await verifier.close()  # idempotent
