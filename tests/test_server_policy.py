"""Per-client policy: an anonymous-only client is refused credential routes by the server
itself, no client promotes its users, tokens are bound to their client, and guessable client
secrets never start."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mimi_reactive import (
    AuthRoute,
    ConfigurationError,
    MimiConfiguration,
    MimiCore,
    Reason,
    RouteRefusedError,
)
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import ClientConfig, IdentityServer

from .conftest import stores
from .server_helpers import Caller, execute

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
    """Sign-up, log-in and promotion are 403 route_not_allowed for an anonymous-only client,
    with the reason anonymous_only_client."""
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
        refused = (status, answer["error"]["code"], answer["error"]["reason"])
        assert refused == (403, "route_not_allowed", "anonymous_only_client"), path
    status, _ = await anon.log_in_anonymously(created["user"]["anonymous_id"])
    assert status == 200


async def promote(caller: Caller, access_token: str, email: str) -> tuple[int, Any]:
    """Promote the user of ``access_token`` with ``email``: the status and answer."""
    body = {"email": email, "password": "long enough", "access_token": access_token}
    status, answer, _ = await caller.post("/v1/users/promote", body)
    return status, answer


async def test_no_client_promotes_a_user_an_anonymous_only_client_made_or_logged_in(
    two_clients: IdentityServer, http: aiohttp.ClientSession
) -> None:
    """A user the anonymous-only client made, or logged in by id (even after another client's
    session of it began), is refused promotion by any client (403 route_not_allowed, reason
    anonymous_only_user) and stays anonymous there; a user it never had is promoted; a sign-up
    makes a new user."""
    anon = Caller(http, two_clients.url, "hearing-app", ANON_SECRET)
    full = Caller(http, two_clients.url, "web-app", FULL_SECRET)
    made_there = await anon.anonymous_user()
    logged_in_there = await full.anonymous_user()
    never_there = await full.anonymous_user()
    assert (await anon.log_in_anonymously(logged_in_there["user"]["anonymous_id"]))[0] == 200
    status, made_there_here = await full.log_in_anonymously(made_there["user"]["anonymous_id"])
    assert status == 200
    for number, session in enumerate([made_there_here["session"], logged_in_there["session"]]):
        status, answer = await promote(full, session["access_token"], f"p{number}@example.test")
        refused = (status, answer["error"]["code"], answer["error"]["reason"])
        assert refused == (403, "route_not_allowed", "anonymous_only_user")
    for user in (made_there["user"], logged_in_there["user"]):
        status, again = await anon.log_in_anonymously(user["anonymous_id"])
        assert (status, again["user"]["is_anonymous"]) == (200, True)
    status, promoted = await promote(full, never_there["session"]["access_token"], "n@example.test")
    assert (status, promoted["user"]["is_anonymous"]) == (200, False)
    status, signed_up, _ = await full.post("/v1/users", CREDENTIALS)
    assert status == 201
    assert signed_up["user"]["id"] not in (made_there["user"]["id"], logged_in_there["user"]["id"])


@stores("sqlite-file", "postgresql")
async def test_a_renewal_by_the_anonymous_only_client_marks_a_user_from_before_the_mark(
    two_clients: IdentityServer, http: aiohttp.ClientSession, database_url: str
) -> None:
    """A user of the anonymous-only client without the mark (stored before it existed) gets it
    at the client's next renewal: then no other client promotes it."""
    anon = Caller(http, two_clients.url, "hearing-app", ANON_SECRET)
    full = Caller(http, two_clients.url, "web-app", FULL_SECRET)
    created = await anon.anonymous_user()
    await execute(database_url, "UPDATE users SET anonymous_only = false")
    status, elsewhere = await full.log_in_anonymously(created["user"]["anonymous_id"])
    assert status == 200
    assert (await anon.refresh(created["session"]["refresh_token"]))[0] == 200
    status, answer = await promote(full, elsewhere["session"]["access_token"], "o@example.test")
    assert (status, answer["error"]["code"]) == (403, "route_not_allowed")


async def test_a_log_in_by_the_anonymous_only_client_during_a_promotion_never_loses(
    two_clients: IdentityServer, http: aiohttp.ClientSession
) -> None:
    """The anonymous-only client logs the user in by id while another client's promotion of
    it hashes the password: one of them wins, never both (the id works and the user is
    promoted)."""
    anon = Caller(http, two_clients.url, "hearing-app", ANON_SECRET)
    full = Caller(http, two_clients.url, "web-app", FULL_SECRET)
    created = await full.anonymous_user()
    (promoted, _), (logged_in, _) = await asyncio.gather(
        promote(full, created["session"]["access_token"], "race@example.test"),
        anon.log_in_anonymously(created["user"]["anonymous_id"]),
    )
    assert (promoted, logged_in == 200) in [(200, False), (403, True)], (promoted, logged_in)


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


async def test_the_client_library_tells_a_user_kept_anonymous_from_an_anonymous_only_client(
    two_clients: IdentityServer, http: aiohttp.ClientSession
) -> None:
    """A normal client's promotion of a user the anonymous-only client logged in by id raises
    RouteRefusedError saying the service keeps that user anonymous, not that this client is
    anonymous-only (which it is not): the app may still sign up or promote other users."""
    async with MimiCore.start(
        client_id="web-app", client_secret=FULL_SECRET, backend=HttpBackend(two_clients.url)
    ) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        assert user.anonymous_id is not None
        anon = Caller(http, two_clients.url, "hearing-app", ANON_SECRET)
        assert (await anon.log_in_anonymously(user.anonymous_id))[0] == 200
        with pytest.raises(RouteRefusedError) as raised:
            await core.auth.authenticate(AuthRoute.promote(**CREDENTIALS))
        assert core.auth.current_user == user
    assert raised.value.reason is Reason.SERVICE_KEEPS_USER_ANONYMOUS
    assert "registers this client" not in str(raised.value)


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
def test_a_guessable_client_secret_is_refused_as_the_server_is_made(weak: str) -> None:
    """A secret under 128 bits of estimated entropy raises ConfigurationError from
    IdentityServer(...) itself, the app's mistake where it is made, with a message, not the
    secret."""
    with pytest.raises(ConfigurationError, match="too weak") as raised:
        IdentityServer(client_id="app", client_secret=weak)
    assert weak not in str(raised.value)


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"client_id": "a:b", "client_secret": FULL_SECRET}, "must not contain ':'"),
        ({"client_id": " ", "client_secret": FULL_SECRET}, "must not be empty"),
        ({}, "no client"),
        (
            {"clients": [ClientConfig("app", FULL_SECRET), ClientConfig("app", FULL_SECRET)]},
            "given twice",
        ),
        (
            {"client_id": "app", "client_secret": FULL_SECRET, "database": "mysql://u:p@h/db"},
            "unsupported database URL scheme 'mysql'",
        ),
        (
            {"client_id": "app", "client_secret": FULL_SECRET, "database": "postgresql:x"},
            "postgresql:// or postgres:// \\(with //\\)",
        ),
        (
            {"client_id": "app", "client_secret": FULL_SECRET, "database": "backup:1.db"},
            "unsupported database URL scheme 'backup'",
        ),
    ],
    ids=[
        "colon-in-id",
        "blank-id",
        "no-client",
        "id-twice",
        "mysql-url",
        "postgresql-no-slashes",
        "scheme-like-text",
    ],
)
def test_what_an_app_passes_wrongly_is_a_configuration_error_at_construction(
    arguments: dict[str, Any], problem: str
) -> None:
    """What IdentityServer can check without opening anything is refused by its constructor
    with ConfigurationError (as ServerSettings refuses a bad value), not at start as a
    ServerStartError."""
    with pytest.raises(ConfigurationError, match=problem):
        IdentityServer(**arguments)


@pytest.mark.parametrize(
    ("client_id", "secret", "problem"),
    [
        (" ", FULL_SECRET, "must not be empty"),
        ("app\n", FULL_SECRET, "whitespace around it"),
        ("a:b", FULL_SECRET, "must not contain ':'"),
        ("app", "hunter2!", "too weak"),
    ],
    ids=["blank-id", "id-with-newline", "id-with-colon", "weak-secret"],  # no secret in an id
)
def test_a_client_config_is_refused_with_the_public_configuration_error(
    client_id: str, secret: str, problem: str
) -> None:
    """ClientConfig raises ConfigurationError as it is made, which an app imports from
    mimi_reactive (and catches as a ValueError too), never showing the secret."""
    with pytest.raises(ConfigurationError, match=problem) as raised:
        ClientConfig(client_id, secret).check()
    assert isinstance(raised.value, ValueError)
    assert secret not in str(raised.value)


async def test_a_path_whose_name_looks_like_a_url_scheme_is_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pathlib.Path is a file by intent: Path("backup:1.db"), whose text starts like a URL's
    scheme, starts the server on a SQLite file of that name (the text "backup:1.db" is
    refused)."""
    monkeypatch.chdir(tmp_path)
    async with IdentityServer(
        client_id="app", client_secret=FULL_SECRET, database=Path("backup:1.db")
    ) as server:
        assert server.url
    assert (tmp_path / "backup:1.db").is_file()


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
