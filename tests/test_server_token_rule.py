"""Every route that takes an access token follows introspection's one rule: a token is valid
until it expires unless its session ended, and a refresh does not end the token it replaced."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from mimi_reactive._server._postgres import PostgresIdentityDatabase
from mimi_reactive._server._sqlite import SqliteIdentityDatabase
from mimi_reactive.server import ServerSettings

from .conftest import CLIENT_ID
from .server_helpers import Caller, Clock, calling
from .test_server_jwt import foreign_key, other_session, tampered, unknown_kid, unsigned

TTL = 60
PROMOTION = {"email": "old@token.test", "password": "long enough password"}
# Each route: its path, the body field the access token goes in, and the rest of the body.
ROUTES: dict[str, tuple[str, str, dict[str, str]]] = {
    "delete": ("/v1/users/delete", "access_token", {}),
    "revoke-all": ("/v1/sessions/revoke-all", "access_token", {}),
    "promote": ("/v1/users/promote", "access_token", PROMOTION),
    "revoke": ("/v1/sessions/revoke", "token", {}),
}
REFUSED = {"error": {"code": "invalid_token", "message": "the access token is not valid"}}
# What each route answers a token that is not valid: revoke as RFC 7009, the others 401.
NOT_VALID = {route: (401, REFUSED) for route in ROUTES} | {"revoke": (200, {})}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def caller(client_secret: str, clock: Clock, database_url: str) -> AsyncIterator[Caller]:
    """A caller of the reference server on each store in turn, its clock moved by hand."""
    settings = ServerSettings(access_token_ttl=TTL, clock=clock)
    async with calling(CLIENT_ID, client_secret, settings=settings, database=database_url) as (
        _,
        caller,
    ):
        yield caller


async def use(caller: Caller, route: str, access_token: str) -> tuple[int, Any]:
    """Call ``route`` with ``access_token``: its status and answer."""
    path, field, rest = ROUTES[route]
    status, answer, _ = await caller.post(path, {field: access_token, **rest})
    return status, answer


async def refreshed(caller: Caller) -> tuple[str, dict[str, Any]]:
    """A new anonymous user's first access token, and the pair a refresh replaced it with."""
    created = await caller.anonymous_user()
    status, answer = await caller.refresh(created["session"]["refresh_token"])
    assert status == 200, answer
    return created["session"]["access_token"], answer["session"]


async def active(caller: Caller, access_token: str) -> bool:
    _, answer, _ = await caller.post("/v1/token/introspect", {"token": access_token})
    return answer["active"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("route", "answer", "ends"),
    [
        ("delete", {}, True),
        ("revoke-all", {"revoked_sessions": 1}, True),
        ("revoke", {}, True),
        ("promote", {"user": {"email": PROMOTION["email"], "is_anonymous": False}}, False),
    ],
)
async def test_an_access_token_a_refresh_replaced_works_for_every_route(
    caller: Caller, route: str, answer: dict[str, Any], ends: bool
) -> None:
    """The access token a refresh replaced does what the new one would: delete, log out
    everywhere, log out (its session ends, not a silent 200) and promote."""
    old, new = await refreshed(caller)
    status, answered = await use(caller, route, old)
    if "user" in answered:
        del answered["user"]["id"]
        # a promotion answers a new access token too
        assert set(answered.pop("session")) == {"access_token", "token_type", "expires_in"}
    assert (status, answered) == (200, answer)
    assert await active(caller, new["access_token"]) is not ends
    assert (await caller.refresh(new["refresh_token"]))[0] == (400 if ends else 200)


@pytest.mark.parametrize("ending", ["delete", "revoke-all", "revoke"])
@pytest.mark.parametrize("route", list(ROUTES))
async def test_once_the_session_ended_its_old_and_new_access_tokens_are_not_valid(
    caller: Caller, ending: str, route: str
) -> None:
    """After deletion, log-out everywhere or log-out (with the replaced token), both the
    replaced and the current access token get today's refusal on every route; the session
    stays ended."""
    old, new = await refreshed(caller)
    assert (await use(caller, ending, old))[0] == 200
    for token in (old, new["access_token"]):
        assert await use(caller, route, token) == NOT_VALID[route]
    assert (await caller.refresh(new["refresh_token"]))[0] == 400


def expired(token: str) -> str:
    """The token itself: the test moves the server's clock past its expiry."""
    return token


@pytest.mark.parametrize(
    "forge", [tampered, unsigned, foreign_key, unknown_kid, other_session, expired]
)
async def test_a_forged_or_expired_access_token_gets_todays_answer_and_ends_nothing(
    caller: Caller, clock: Clock, forge: Callable[[str], str]
) -> None:
    """A forged or expired access token is 401 invalid_token (revoke: 200, as RFC 7009) and
    acts on nothing: the session still refreshes."""
    created = await caller.anonymous_user()
    token = forge(created["session"]["access_token"])
    clock.now += TTL if forge is expired else 0
    for route in ROUTES:
        assert await use(caller, route, token) == NOT_VALID[route], route
    assert (await caller.refresh(created["session"]["refresh_token"]))[0] == 200


async def test_tokens_naming_unknown_keys_read_the_keys_at_most_once_per_interval(
    caller: Caller, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tokens naming keys nobody published make the server read its keys from the database
    at most once per interval, however many arrive, and then once more after it."""
    reads = 0

    def counting(read_keys: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
        async def counted(self: Any) -> Any:
            nonlocal reads
            reads += 1
            return await read_keys(self)

        return counted

    for store in (SqliteIdentityDatabase, PostgresIdentityDatabase):
        monkeypatch.setattr(store, "signing_keys", counting(store.signing_keys))
    token = (await caller.anonymous_user())["session"]["access_token"]
    clock.now += 10  # past the interval since the server read its keys at start
    for _ in range(20):
        assert not await active(caller, unknown_kid(token))
    assert reads == 1
    clock.now += 10
    assert not await active(caller, unknown_kid(token))
    assert reads == 2
