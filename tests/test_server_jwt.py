"""Access tokens are ES256 JWTs that a resource server verifies offline with the JWKS, with
the signing keys kept in either store."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from mimi_reactive._server._stores import open_database
from mimi_reactive._server._tokens import new_signing_key
from mimi_reactive.server import IdentityServer, ServerSettings
from mimi_reactive.verify import AccessTokenVerifier, InvalidTokenError, VerifiedToken

from .conftest import CLIENT_ID, stores
from .helpers import serving_app
from .server_helpers import Caller, Clock

sys_path_examples = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
async def server(store_server: IdentityServer) -> IdentityServer:
    """The reference server, on SQLite and on PostgreSQL in turn."""
    return store_server


@pytest.fixture
async def caller(server: IdentityServer, client_secret: str) -> AsyncIterator[Caller]:
    async with aiohttp.ClientSession() as http:
        yield Caller(http, server.url, CLIENT_ID, client_secret)


@pytest.fixture
async def verifier(server: IdentityServer) -> AsyncIterator[AccessTokenVerifier]:
    async with AccessTokenVerifier(server.url) as checking:
        yield checking


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_a_real_token_verifies_with_its_claims(
    caller: Caller, verifier: AccessTokenVerifier
) -> None:
    """The verifier returns the user id, anonymity, client and expiry of a fresh token."""
    created = await caller.anonymous_user()
    claims = await verifier.verify(created["session"]["access_token"])
    assert isinstance(claims, VerifiedToken)
    assert claims.user_id == created["user"]["id"]
    assert claims.is_anonymous is True
    assert claims.client_id == CLIENT_ID
    assert time.time() < claims.expires_at <= time.time() + 3601
    header = jwt.get_unverified_header(created["session"]["access_token"])
    assert header["alg"] == "ES256"
    assert header["typ"] == "at+jwt"


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return ".".join([header, b64({**claims, "sub": "someone-else"}), signature])


def unsigned(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    return ".".join([b64({"alg": "none", "typ": "JWT"}), b64(claims), ""])


def foreign_key(token: str) -> str:
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    other = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims, other, algorithm="ES256", headers=header)


def hs256_with_public_key(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    header = jwt.get_unverified_header(token)
    return jwt.encode(claims, "x" * 32, algorithm="HS256", headers={"kid": header["kid"]})


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (tampered, "bad_signature"),
        (unsigned, "algorithm_not_allowed"),
        (foreign_key, "bad_signature"),
        (hs256_with_public_key, "algorithm_not_allowed"),
        (lambda token: "not.a.jwt", "malformed"),
        (lambda token: token[: len(token) // 2], "malformed"),
    ],
)
async def test_forged_tokens_are_refused_without_echoing_them(
    caller: Caller, verifier: AccessTokenVerifier, forge: Any, reason: str
) -> None:
    """Tampered, alg:none, foreign-key, HS256 and malformed tokens raise InvalidTokenError."""
    created = await caller.anonymous_user()
    forged = forge(created["session"]["access_token"])
    with pytest.raises(InvalidTokenError) as raised:
        await verifier.verify(forged)
    assert raised.value.reason == reason
    assert forged not in str(raised.value)
    assert created["session"]["access_token"] not in str(raised.value)


async def introspected(caller: Caller, token: str) -> dict[str, Any]:
    status, answer, _ = await caller.post("/v1/token/introspect", {"token": token})
    assert status == 200
    return answer  # type: ignore[no-any-return]


async def test_after_a_refresh_both_paths_accept_the_old_token_until_the_session_ends(
    caller: Caller, verifier: AccessTokenVerifier
) -> None:
    """After a refresh the old access token is active to introspection and verifies offline;
    after a log-out introspection says inactive at once, the offline verifier until expiry."""
    created = await caller.anonymous_user()
    old = created["session"]["access_token"]
    status, refreshed = await caller.refresh(created["session"]["refresh_token"])
    assert status == 200
    answer = await introspected(caller, old)
    assert answer["active"] is True
    assert answer["user_id"] == created["user"]["id"]
    assert (await verifier.verify(old)).expires_at - time.time() == pytest.approx(
        answer["expires_in"], abs=2
    )
    await caller.post("/v1/sessions/revoke", {"token": refreshed["session"]["refresh_token"]})
    assert await introspected(caller, old) == {"active": False}
    assert await introspected(caller, refreshed["session"]["access_token"]) == {"active": False}
    assert (await verifier.verify(old)).user_id == created["user"]["id"]


def unknown_kid(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    other = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(
        claims, other, algorithm="ES256", headers={"kid": "never-published", "typ": "at+jwt"}
    )


def other_session(token: str) -> str:
    """The token's signature over claims naming a session that does not exist."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return ".".join([header, b64({**claims, "sid": "no-such-session"}), signature])


@pytest.mark.parametrize(
    ("forge", "status"),
    [
        (tampered, 200),
        (unsigned, 200),
        (foreign_key, 200),
        (hs256_with_public_key, 200),
        (unknown_kid, 200),
        (other_session, 200),
        (lambda token: "not.a.jwt", 200),
        (lambda token: token[: len(token) // 2], 200),
        (lambda token: token + "A", 200),
        (lambda token: "", 400),
        (lambda token: "\x00" * 4096, 400),
    ],
)
async def test_introspection_calls_forged_tokens_inactive(
    caller: Caller, forge: Any, status: int
) -> None:
    """Tampered, unsigned, foreign-key, HS256, unknown-kid, cut or junk tokens are inactive;
    an empty or oversized token is refused at the edge (400), never a 5xx."""
    created = await caller.anonymous_user()
    forged = forge(created["session"]["access_token"])
    answered, answer, _ = await caller.post("/v1/token/introspect", {"token": forged})
    assert answered == status
    assert answer == {"active": False} if status == 200 else answer["error"]["code"]


async def test_an_expired_token_and_a_wrong_issuer_are_refused(
    client_secret: str, database_url: str
) -> None:
    """A token past exp (beyond the leeway) is 'expired'; another issuer's is 'wrong_issuer'."""
    clock = Clock(time.time() - 7200)
    settings = ServerSettings(clock=clock, access_token_ttl=60)
    async with (
        IdentityServer(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            settings=settings,
            database=database_url,
        ) as s,
        aiohttp.ClientSession() as http,
    ):
        created = await Caller(http, s.url, CLIENT_ID, client_secret).anonymous_user()
        async with AccessTokenVerifier(s.url) as verifier:
            with pytest.raises(InvalidTokenError) as raised:
                await verifier.verify(created["session"]["access_token"])
        assert raised.value.reason == "expired"
        clock.now = time.time()
        fresh = await Caller(http, s.url, CLIENT_ID, client_secret).anonymous_user()
        async with AccessTokenVerifier(s.url.replace("127.0.0.1", "localhost")) as elsewhere:
            with pytest.raises(InvalidTokenError) as raised:
                await elsewhere.verify(fresh["session"]["access_token"])
        assert raised.value.reason == "wrong_issuer"


@stores("sqlite-file", "postgresql")
async def test_a_rotated_key_is_fetched_once_and_the_old_one_still_verifies(
    database_url: str, client_secret: str
) -> None:
    """After a key rotation the JWKS holds both keys; a cached verifier refetches on the new
    kid and still accepts tokens of the old key."""
    settings = ServerSettings(issuer="http://identity.test")
    async with aiohttp.ClientSession() as http:
        async with IdentityServer(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            database=database_url,
            settings=settings,
        ) as server:
            old = await Caller(http, server.url, CLIENT_ID, client_secret).anonymous_user()
        database = await open_database(database_url)
        await database.add_signing_key(new_signing_key(time.time()))
        await database.close()
        async with IdentityServer(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            database=database_url,
            settings=settings,
        ) as server:
            async with http.get(server.url + "/.well-known/jwks.json") as response:
                assert len((await response.json())["keys"]) == 2
            new = await Caller(http, server.url, CLIENT_ID, client_secret).anonymous_user()
            verifier = AccessTokenVerifier("http://identity.test")
            verifier._jwks_url = server.url + "/.well-known/jwks.json"  # the issuer is a name
            async with verifier:
                await verifier.verify(old["session"]["access_token"])
                await verifier.verify(new["session"]["access_token"])
    assert (
        jwt.get_unverified_header(old["session"]["access_token"])["kid"]
        != (jwt.get_unverified_header(new["session"]["access_token"])["kid"])
    )


async def test_the_example_api_answers_only_logged_in_users(
    server: IdentityServer, caller: Caller
) -> None:
    """examples/resource_api.py answers /me with the caller's id, and 401 without a token."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "resource_api", sys_path_examples / "resource_api.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    async with serving_app(module.make_app(server.url)) as api:
        created = await caller.anonymous_user()
        bearer = {"Authorization": "Bearer " + created["session"]["access_token"]}
        async with caller.http.get(api + "/me", headers=bearer) as response:
            assert response.status == 200
            assert await response.json() == {
                "user_id": created["user"]["id"],
                "is_anonymous": True,
            }
        refused: tuple[tuple[dict[str, str], str], ...] = (
            ({}, "missing_token"),
            ({"Authorization": "Bearer " + tampered(bearer["Authorization"][7:])}, "invalid_token"),
        )
        for headers, code in refused:
            async with caller.http.get(api + "/me", headers=headers) as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
                assert (await response.json())["error"]["code"] == code


async def test_promotion_answers_an_access_token_that_says_so(
    caller: Caller, verifier: AccessTokenVerifier
) -> None:
    """Promotion answers a new access token of the same session whose is_anonymous is false,
    so resource servers see the credentials at once; the session's refresh token goes on."""
    created = await caller.anonymous_user()
    before = await verifier.verify(created["session"]["access_token"])
    promotion = {
        "access_token": created["session"]["access_token"],
        "email": "promoted@example.test",
        "password": "long enough",
    }
    status, promoted, _ = await caller.post("/v1/users/promote", promotion)
    assert status == 200
    assert set(promoted["session"]) == {"access_token", "token_type", "expires_in"}
    after = await verifier.verify(promoted["session"]["access_token"])
    assert (after.user_id, after.session_id, after.is_anonymous) == (
        before.user_id,
        before.session_id,
        False,
    )
    status, renewed = await caller.refresh(created["session"]["refresh_token"])
    assert status == 200
    assert (await verifier.verify(renewed["session"]["access_token"])).is_anonymous is False
