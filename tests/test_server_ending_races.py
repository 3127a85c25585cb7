"""Writes that race the end of what they stand on, on either store: a promotion whose session
ends while its password hashes writes nothing and answers 401 ``invalid_token``; a log-in with
credentials whose user is deleted while its password is checked answers as a wrong password.
The store checks the session or the user in the write's own transaction."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from mimi_reactive._server._context import STATE
from mimi_reactive._server._database import IdentityDatabase, SessionGoneError
from mimi_reactive._server._records import NewSession, UserRecord
from mimi_reactive._server._secrets import PasswordHasher, digest, new_secret
from mimi_reactive.server import IdentityServer, ServerSettings

from .conftest import CLIENT_ID
from .server_helpers import Caller, Clock

NOW = 1_000_000.0
EMAIL = "promoted@example.test"
PASSWORD = "a long passphrase"


async def anonymous_user(store: IdentityDatabase) -> tuple[UserRecord, NewSession]:
    """A new anonymous user and its first session."""
    session = NewSession(str(uuid.uuid4()), CLIENT_ID, digest(new_secret()), NOW)
    user = await store.create_user(
        user_id=str(uuid.uuid4()),
        anonymous_id_digest=digest(new_secret()),
        email=None,
        password_hash=None,
        session=session,
    )
    return user, session


async def promote(store: IdentityDatabase, user_id: str, session_id: str) -> UserRecord | None:
    return await store.promote(
        user_id, session_id=session_id, email=EMAIL, password_hash="argon2-hash"
    )


Ending = Callable[[IdentityDatabase, UserRecord, NewSession], Awaitable[object]]

# Each way the caller's session ends before the promotion's write.
ENDINGS: dict[str, Ending] = {
    "log_out": lambda db, user, session: db.revoke_session(session.id, NOW),
    "log_out_by_refresh_token": lambda db, user, session: db.revoke_session_by_refresh_token(
        session.refresh_digest, NOW, client_id=CLIENT_ID
    ),
    "log_out_everywhere": lambda db, user, session: db.revoke_user_sessions(user.id, NOW),
    "user_deleted": lambda db, user, session: db.delete_user(user.id),
}


@pytest.mark.parametrize("ending", ENDINGS.values(), ids=ENDINGS)
async def test_the_store_refuses_a_promotion_of_an_ended_session(
    store: IdentityDatabase, ending: Ending
) -> None:
    """promote raises SessionGoneError after the session ended; the user stays as it was."""
    user, session = await anonymous_user(store)
    await ending(store, user, session)
    before = await store.user_by_id(user.id)  # anonymous still, or gone with its sessions
    with pytest.raises(SessionGoneError):
        await promote(store, user.id, session.id)
    assert await store.user_by_id(user.id) == before
    assert await store.user_by_email(EMAIL) is None


async def test_the_store_refuses_a_session_of_another_user(store: IdentityDatabase) -> None:
    """A live session of someone else does not let a user be promoted."""
    user, _ = await anonymous_user(store)
    _, other = await anonymous_user(store)
    with pytest.raises(SessionGoneError):
        await promote(store, user.id, other.id)
    assert await store.user_by_email(EMAIL) is None


async def test_the_store_promotes_through_a_live_session(store: IdentityDatabase) -> None:
    """With the session live the user is promoted; with the email taken, EmailTakenError."""
    user, session = await anonymous_user(store)
    assert await promote(store, user.id, session.id) == UserRecord(
        user.id, False, EMAIL, "argon2-hash"
    )
    assert (await store.user_by_email(EMAIL)) == await store.user_by_id(user.id)


class GatedHasher(PasswordHasher):
    """A password hasher that waits, once it is asked to hash or check, until the test lets
    it go on: the promotion or log-in is held between its look-up and its write."""

    def __init__(self) -> None:
        super().__init__()
        self.hashing = asyncio.Event()
        self.go_on = asyncio.Event()

    async def hash(self, password: str) -> str:
        self.hashing.set()
        await self.go_on.wait()
        return await super().hash(password)

    async def verify(self, stored_hash: str, password: str) -> bool:
        self.hashing.set()
        await self.go_on.wait()
        return await super().verify(stored_hash, password)


@pytest.fixture
async def caller(store_server: IdentityServer, client_secret: str) -> AsyncIterator[Caller]:
    async with aiohttp.ClientSession() as http:
        yield Caller(http, store_server.url, CLIENT_ID, client_secret)


def gate(server: IdentityServer) -> GatedHasher:
    """Hold the server's next password hashes until ``go_on`` is set (same event loop)."""
    service = server._service
    assert service is not None
    gated = GatedHasher()
    service.app[STATE].passwords = gated
    return gated


# Each way a client ends the session over HTTP: the path and the body, from the sign-up.
HTTP_ENDINGS: dict[str, tuple[str, Callable[[dict[str, str]], dict[str, str]]]] = {
    "revoke_access_token": ("/v1/sessions/revoke", lambda s: {"token": s["access_token"]}),
    "revoke_refresh_token": ("/v1/sessions/revoke", lambda s: {"token": s["refresh_token"]}),
    "revoke_all": ("/v1/sessions/revoke-all", lambda s: {"access_token": s["access_token"]}),
}


@pytest.mark.parametrize("ending", HTTP_ENDINGS.values(), ids=HTTP_ENDINGS)
async def test_a_log_out_while_the_password_hashes_wins_over_the_promotion(
    store_server: IdentityServer,
    caller: Caller,
    ending: tuple[str, Callable[[dict[str, str]], dict[str, str]]],
) -> None:
    """Log-out answered 200 during promotion's hash: promotion is 401 invalid_token, nothing
    is written, no token is issued, and the anonymous id still logs in an anonymous user."""
    created = await caller.anonymous_user()
    session = created["session"]
    gated = gate(store_server)
    body = {"access_token": session["access_token"], "email": EMAIL, "password": PASSWORD}
    promotion = asyncio.create_task(caller.post("/v1/users/promote", body))
    async with asyncio.timeout(30):
        await gated.hashing.wait()  # past the handler's own session check
        path, revocation = ending
        status, _, _ = await caller.post(path, revocation(session))
        assert status == 200
        gated.go_on.set()
        status, answer, _ = await promotion
    assert (status, answer["error"]["code"]) == (401, "invalid_token")
    assert "session" not in answer
    status, _, _ = await caller.post("/v1/sessions", {"email": EMAIL, "password": PASSWORD})
    assert status == 400
    status, again = await caller.log_in_anonymously(created["user"]["anonymous_id"])
    assert status == 200
    assert again["user"]["is_anonymous"] is True


async def test_the_store_starts_no_session_for_a_deleted_user(store: IdentityDatabase) -> None:
    """create_session answers None for a user deleted before it, and stores nothing."""
    user, _ = await anonymous_user(store)
    await store.delete_user(user.id)
    session = NewSession(str(uuid.uuid4()), CLIENT_ID, digest(new_secret()), NOW)
    assert await store.create_session(user.id, session) is None
    assert await store.session_by_id(session.id) is None


@pytest.fixture
async def strict_server(client_secret: str, database_url: str) -> AsyncIterator[IdentityServer]:
    """A server where the first failed log-in of a minute is the last one let through."""
    settings = ServerSettings(clock=Clock(), max_failed_log_ins_per_minute=1)
    async with IdentityServer(
        client_id=CLIENT_ID, client_secret=client_secret, settings=settings, database=database_url
    ) as running:
        yield running


async def test_a_log_in_whose_user_is_deleted_meanwhile_is_a_failed_log_in(
    strict_server: IdentityServer, client_secret: str
) -> None:
    """User deleted while its log-in checks the password: 400 invalid_grant, counted as a
    failed log-in (the next one is 429), and no session is issued."""
    credentials = {"email": EMAIL, "password": PASSWORD}
    async with aiohttp.ClientSession() as http:
        caller = Caller(http, strict_server.url, CLIENT_ID, client_secret)
        status, created, _ = await caller.post("/v1/users", credentials)
        assert status == 201
        gated = gate(strict_server)
        log_in = asyncio.create_task(caller.post("/v1/sessions", credentials))
        async with asyncio.timeout(30):
            await gated.hashing.wait()  # past the handler's look-up of the user
            access_token = created["session"]["access_token"]
            status, _, _ = await caller.post("/v1/users/delete", {"access_token": access_token})
            assert status == 200
            gated.go_on.set()
            status, answer, _ = await log_in
        assert (status, answer["error"]["code"]) == (400, "invalid_grant")
        assert "session" not in answer
        status, answer, _ = await caller.post("/v1/sessions", credentials)
        assert (status, answer["error"]["code"]) == (429, "rate_limited")
