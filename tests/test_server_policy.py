"""Per-client policy: an anonymous-only client is refused credential routes by the server
itself, tokens are bound to their client, and guessable client secrets never start."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import aiohttp
import pytest

from mimi_reactive import AuthRoute, MimiConfiguration, MimiCore, Reason, RouteRefusedError
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import ClientConfig, IdentityServer, ServerStartError

from .server_helpers import Caller

ANON_SECRET = secrets.token_urlsafe(32)
FULL_SECRET = secrets.token_urlsafe(32)
CREDENTIALS = {"email": "ann@example.test", "password": "long enough"}


@pytest.fixture
async def two_clients(database_url: str) -> AsyncIterator[IdentityServer]:
    clients = [
        ClientConfig("hearing-app", ANON_SECRET, anonymous_only=True),
        ClientConfig("web-app", FULL_SECRET),
    ]
    async with IdentityServer(clients=clients, database=database_url) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_anonymous_only_client_is_refused_credential_routes(
    two_clients: IdentityServer, http: aiohttp.ClientSession
) -> None:
    """Sign-up, log-in and promotion are 403 route_not_allowed for an anonymous-only client."""
    anon = Caller(http, two_clients.url, "hearing-app", ANON_SECRET)
    full = Caller(http, two_clients.url, "web-app", FULL_SECRET)
    assert (await full.post("/v1/users", CREDENTIALS))[0] == 201
    created = await anon.anonymous_user()
    promotion = {**CREDENTIALS, "access_token": created["session"]["access_token"]}
    for path, body in [
        ("/v1/users", {**CREDENTIALS, "email": "bob@example.test"}),
        ("/v1/sessions", CREDENTIALS),
        ("/v1/users/promote", promotion),
    ]:
        status, answer, _ = await anon.post(path, body)
        assert (status, answer["error"]["code"]) == (403, "route_not_allowed"), path
    status, _ = await anon.log_in_anonymously(created["user"]["anonymous_id"])
    assert status == 200


async def test_the_client_library_maps_the_refusal_to_route_refused(
    two_clients: IdentityServer,
) -> None:
    """A modified client that skips its own guard still gets RouteRefusedError from the server,
    with a reason of its own: the app did not set allow_anonymous_user_only, the service did."""
    async with MimiCore.start(
        client_id="hearing-app",
        client_secret=ANON_SECRET,
        configuration=MimiConfiguration(allow_anonymous_user_only=False),  # the guard is off
        backend=HttpBackend(two_clients.url),
    ) as core:
        with pytest.raises(RouteRefusedError) as raised:
            await core.auth.authenticate(
                AuthRoute.sign_up(email="eve@example.test", password="long enough")
            )
        assert core.auth.current_user is None
    assert raised.value.reason is Reason.SERVICE_ALLOWS_ONLY_ANONYMOUS
    assert "registers this client as anonymous-only" in str(raised.value)
    assert "allow_anonymous_user_only" not in str(raised.value)


async def test_a_refresh_token_only_works_for_its_own_client(
    two_clients: IdentityServer, http: aiohttp.ClientSession
) -> None:
    """Another client presenting a client's refresh token gets invalid_grant."""
    anon = Caller(http, two_clients.url, "hearing-app", ANON_SECRET)
    full = Caller(http, two_clients.url, "web-app", FULL_SECRET)
    created = await anon.anonymous_user()
    status, answer = await full.refresh(created["session"]["refresh_token"])
    assert (status, answer["error"]["code"]) == (400, "invalid_grant")
    assert (await anon.refresh(created["session"]["refresh_token"]))[0] == 200


@pytest.mark.parametrize(
    "weak", ["hunter2!", "s" * 64, "correct-horse-battery", "0123456789abcdef", "Aa1!" * 6]
)
async def test_a_guessable_client_secret_is_refused_at_start(weak: str) -> None:
    """A secret under 128 bits of estimated entropy stops the start with a message, not the
    secret."""
    with pytest.raises(ServerStartError, match="too weak") as raised:
        async with IdentityServer(client_id="app", client_secret=weak):
            pass
    assert weak not in str(raised.value)


async def test_real_secrets_start() -> None:
    """Secrets made by secrets.token_urlsafe(32) or token_hex(32) start the server."""
    for secret in (secrets.token_urlsafe(32), secrets.token_hex(32)):
        async with IdentityServer(client_id="app", client_secret=secret) as server:
            assert server.url


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/users/delete", {}),
        ("/v1/sessions/revoke-all", {}),
        ("/v1/users/promote", {**CREDENTIALS, "email": "carl@example.test"}),
    ],
)
async def test_an_access_token_only_works_for_its_own_client(
    two_clients: IdentityServer, http: aiohttp.ClientSession, path: str, body: dict[str, str]
) -> None:
    """Another client presenting a client's valid access token gets 401 invalid_token."""
    anon = Caller(http, two_clients.url, "hearing-app", ANON_SECRET)
    full = Caller(http, two_clients.url, "web-app", FULL_SECRET)
    created = await anon.anonymous_user()
    token = created["session"]["access_token"]
    status, answer, _ = await full.post(path, {**body, "access_token": token})
    assert (status, answer["error"]["code"]) == (401, "invalid_token")
    assert (await anon.refresh(created["session"]["refresh_token"]))[0] == 200


@pytest.mark.parametrize("which", ["access_token", "refresh_token", "spent_refresh_token"])
async def test_a_token_of_another_client_revokes_nothing(
    two_clients: IdentityServer, http: aiohttp.ClientSession, which: str
) -> None:
    """Revoking another client's access or refresh token (spent or not) is 400
    unauthorized_client and its session lives on (RFC 7009 section 2.1)."""
    anon = Caller(http, two_clients.url, "hearing-app", ANON_SECRET)
    full = Caller(http, two_clients.url, "web-app", FULL_SECRET)
    created = await anon.anonymous_user()
    status, refreshed = await anon.refresh(created["session"]["refresh_token"])
    assert status == 200
    token = {
        "access_token": refreshed["session"]["access_token"],
        "refresh_token": refreshed["session"]["refresh_token"],
        "spent_refresh_token": created["session"]["refresh_token"],
    }[which]
    status, answer, _ = await full.post("/v1/sessions/revoke", {"token": token})
    assert (status, answer["error"]["code"]) == (400, "unauthorized_client")
    status, answer, _ = await anon.post(
        "/v1/token/introspect", {"token": refreshed["session"]["access_token"]}
    )
    assert (status, answer["active"]) == (200, True)
    assert (await anon.post("/v1/sessions/revoke", {"token": token}))[:2] == (200, {})
    assert (await anon.refresh(refreshed["session"]["refresh_token"]))[0] == 400


async def test_revoking_an_unknown_token_answers_200(
    two_clients: IdentityServer, http: aiohttp.ClientSession
) -> None:
    """A token never issued is no other client's: 200 {} as RFC 7009 asks."""
    full = Caller(http, two_clients.url, "web-app", FULL_SECRET)
    status, answer, _ = await full.post("/v1/sessions/revoke", {"token": secrets.token_urlsafe(32)})
    assert (status, answer) == (200, {})


async def test_introspection_shows_a_token_only_to_its_own_client(
    two_clients: IdentityServer, http: aiohttp.ClientSession
) -> None:
    """Another client introspecting a valid access token sees active: false (RFC 7662 section
    2.2); its own client sees it active."""
    anon = Caller(http, two_clients.url, "hearing-app", ANON_SECRET)
    full = Caller(http, two_clients.url, "web-app", FULL_SECRET)
    created = await anon.anonymous_user()
    query = {"token": created["session"]["access_token"]}
    assert (await full.post("/v1/token/introspect", query))[:2] == (200, {"active": False})
    status, answer, _ = await anon.post("/v1/token/introspect", query)
    assert (status, answer["active"], answer["user_id"]) == (200, True, created["user"]["id"])
