"""AccessTokenVerifier against a hostile or broken issuer: a JWKS that is not one, too long or
nested past the stack is jwks_unavailable (never a crash, so never a 500 from
``requires_user``) until a good fetch. The JWKS is served over loopback by a test server of
its own, with keys of the test's."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import attrs
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from mimi_reactive.backends._answers import LONGEST_ANSWER
from mimi_reactive.verify import (
    LONGEST_TOKEN,
    AccessTokenVerifier,
    InvalidTokenError,
    requires_user,
)

from .helpers import serving_app
from .server_helpers import Clock

INTERVAL = 30.0
KEY = ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: ec.EllipticCurvePrivateKey, kid: str = "k1") -> dict[str, Any]:
    """The public JWK of ``key``, as the identity server publishes it."""
    public = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**public, "kid": kid, "alg": "ES256", "use": "sig"}


def jwks(*keys: object) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


class Issuer:
    """Serves ``body`` as its JWKS and counts the requests for it; signs tokens naming its
    ``url`` as their issuer."""

    def __init__(self) -> None:
        self.body = jwks(public_jwk(KEY))
        self.requests = 0
        self.url = ""

    async def _jwks(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.Response(body=self.body, content_type="application/json")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self._jwks)
        return app

    def token(
        self,
        claims: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        key: ec.EllipticCurvePrivateKey = KEY,
    ) -> str:
        """An access token as the identity server signs it, with ``claims`` and ``headers``
        over its own."""
        now = int(time.time())
        payload = {
            "iss": self.url,
            "sub": "user-1",
            "iat": now,
            "exp": now + 600,
            "client_id": "app",
            "is_anonymous": True,
            **(claims or {}),
        }
        return jwt.encode(
            payload,
            key,
            algorithm="ES256",
            headers={"kid": "k1", "typ": "at+jwt", **(headers or {})},
        )


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    serving = Issuer()
    async with serving_app(serving.app()) as url:
        serving.url = url
        yield serving


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def verifier(issuer: Issuer, clock: Clock) -> AsyncIterator[AccessTokenVerifier]:
    async with AccessTokenVerifier(
        issuer.url, jwks_refetch_interval=INTERVAL, clock=clock
    ) as checking:
        yield checking


async def refusal(verifier: AccessTokenVerifier, token: str) -> str:
    """The reason ``verifier`` refuses ``token`` for (the test fails if it accepts it)."""
    with pytest.raises(InvalidTokenError) as raised:
        await verifier.verify(token)
    assert token not in str(raised.value)
    return raised.value.reason


NOT_A_JWKS = [
    pytest.param(b"<html>oops</html>", id="not JSON"),
    pytest.param(b"\xff\xfe", id="not UTF-8"),
    pytest.param(b"[]", id="a list"),
    pytest.param(b'"keys"', id="a string"),
    pytest.param(b"{}", id="no keys"),
    pytest.param(b'{"keys": null}', id="keys null"),
    pytest.param(b'{"keys": {"a": 1}}', id="keys an object"),
    pytest.param(b'{"keys": "abc"}', id="keys a string"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested past the stack"),
    pytest.param(b'{"keys": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", id="keys nested"),
    pytest.param(
        json.dumps({"keys": [public_jwk(KEY)], "pad": "a" * LONGEST_ANSWER}).encode(),
        id="good keys past the longest answer",
    ),
]


@pytest.mark.parametrize("body", NOT_A_JWKS)
async def test_a_body_that_is_no_jwks_is_unavailable_until_a_good_fetch(
    issuer: Issuer, verifier: AccessTokenVerifier, clock: Clock, body: bytes
) -> None:
    """A genuine token is jwks_unavailable, again on a retry inside the refetch interval
    (without a fetch); once the JWKS is good again, after the interval, it verifies."""
    issuer.body = body
    genuine = issuer.token()
    assert await refusal(verifier, genuine) == "jwks_unavailable"
    clock.now += INTERVAL - 1
    assert await refusal(verifier, genuine) == "jwks_unavailable"
    assert issuer.requests == 1
    issuer.body = jwks(public_jwk(KEY))
    clock.now += 1
    assert (await verifier.verify(genuine)).user_id == "user-1"
    assert issuer.requests == 2


@pytest.mark.parametrize("entry", ["abc", 1, None, [public_jwk(KEY)], True])
async def test_an_entry_that_is_no_key_is_skipped(
    issuer: Issuer, verifier: AccessTokenVerifier, entry: object
) -> None:
    """An entry of ``keys`` that is not an object is skipped: the good key beside it
    verifies."""
    issuer.body = jwks(entry, public_jwk(KEY))
    assert (await verifier.verify(issuer.token())).user_id == "user-1"


@attrs.frozen
class Answer:
    """What a route behind ``requires_user`` answered."""

    status: int
    challenge: str | None
    """Its ``WWW-Authenticate`` header."""
    body: Any


async def ask_guarded(issuer: Issuer, headers: dict[str, str]) -> Answer:
    """GET, with ``headers``, a route behind ``requires_user`` whose verifier trusts
    ``issuer``, served on loopback."""
    async with AccessTokenVerifier(issuer.url) as verifier:

        @requires_user(verifier)
        async def hello(request: web.Request) -> web.Response:
            return web.json_response({})

        app = web.Application()
        app.router.add_get("/hello", hello)
        async with (
            serving_app(app) as url,
            aiohttp.ClientSession() as http,
            http.get(url + "/hello", headers=headers) as response,
        ):
            return Answer(
                response.status, response.headers.get("WWW-Authenticate"), await response.json()
            )


async def test_requires_user_answers_401_when_the_jwks_is_no_jwks(issuer: Issuer) -> None:
    """Behind ``requires_user``, a JWKS nested past the stack makes a 401 jwks_unavailable,
    not a 500."""
    issuer.body = b"[" * 100_000 + b"]" * 100_000
    answer = await ask_guarded(issuer, {"Authorization": f"Bearer {issuer.token()}"})
    assert answer.status == 401
    assert answer.body["error"] == {"code": "invalid_token", "message": "jwks_unavailable"}


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer   ", "Basic YXBwOnNlY3JldA==", "bearer"],
    ids=["no-header", "empty", "bare-scheme", "blank-token", "basic", "lower-case-scheme"],
)
async def test_requires_user_challenges_a_request_without_a_token_with_no_error_code(
    issuer: Issuer, authorization: str | None
) -> None:
    """A request with no Bearer token gets 401 and a bare ``WWW-Authenticate: Bearer``: no
    error code, as RFC 6750 section 3.1 says for a request that lacks authentication; its
    body's code is missing_token."""
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = await ask_guarded(issuer, headers)
    assert answer.status == 401
    assert answer.challenge == "Bearer"
    assert answer.body["error"]["code"] == "missing_token"


async def test_requires_user_names_the_reason_a_token_is_refused(issuer: Issuer) -> None:
    """A token that does not verify gets 401 with ``error="invalid_token"`` and its reason
    as the error description (RFC 6750), never the token."""
    answer = await ask_guarded(issuer, {"Authorization": "Bearer not.a.token"})
    assert answer.status == 401
    assert answer.challenge == 'Bearer error="invalid_token", error_description="malformed"'


def without(entry: dict[str, Any], name: str) -> dict[str, Any]:
    return {field: value for field, value in entry.items() if field != name}


OTHER = ec.generate_private_key(ec.SECP256R1())
P384 = ec.generate_private_key(ec.SECP384R1())
BAD_KEYS = [
    pytest.param({**public_jwk(OTHER, "k0"), "x": "AAAA"}, id="coordinates too short"),
    pytest.param({**public_jwk(OTHER, "k0"), "x": 12}, id="coordinate a number"),
    pytest.param({**public_jwk(OTHER, "k0"), "y": public_jwk(OTHER)["x"]}, id="off the curve"),
    pytest.param({**public_jwk(P384, "k0"), "alg": "ES256"}, id="P-384 said ES256"),
    pytest.param({**public_jwk(OTHER, "k0"), "crv": "P-384"}, id="P-256 said P-384"),
    pytest.param({"kid": "k0", "alg": "ES256", "kty": "RSA", "n": "x", "e": "AQAB"}, id="RSA"),
    pytest.param({"kid": "k0", "alg": "ES256", "kty": "oct", "k": "eHh4eA"}, id="oct"),
    pytest.param(without(public_jwk(OTHER, "k0"), "kty"), id="no kty"),
    pytest.param({**public_jwk(OTHER), "kid": 7}, id="kid a number"),
    pytest.param(without(public_jwk(OTHER), "kid"), id="no kid"),
    pytest.param({"kid": "k0", "alg": "HS256", "kty": "oct", "k": "eHh4eA"}, id="HS256"),
    pytest.param({**public_jwk(OTHER, "k0"), "use": "enc"}, id="for encryption"),
    pytest.param({**public_jwk(OTHER, "k0"), "alg": ["ES256"]}, id="alg a list"),
    pytest.param("abc", id="a string"),
    pytest.param(None, id="null"),
    pytest.param([public_jwk(OTHER, "k0")], id="a list"),
]


@pytest.mark.parametrize("entry", BAD_KEYS)
async def test_a_key_that_cannot_be_used_is_skipped_alone(
    issuer: Issuer,
    verifier: AccessTokenVerifier,
    clock: Clock,
    entry: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A key the verifier cannot use, before a good one, is skipped: the good key's token
    verifies, and one naming the bad key (forged with a key of the attacker's) is
    unknown_key. A JWKS of the bad key alone is jwks_unavailable. No key material is logged."""
    caplog.set_level(logging.DEBUG, logger="mimi_reactive.verify")
    issuer.body = jwks(entry, public_jwk(KEY))
    assert (await verifier.verify(issuer.token())).user_id == "user-1"
    assert await refusal(verifier, issuer.token(headers={"kid": "k0"}, key=OTHER)) == (
        "unknown_key"
    )
    issuer.body = jwks(entry)
    clock.now += INTERVAL
    assert await refusal(verifier, issuer.token(headers={"kid": "k2"})) == "jwks_unavailable"
    assert public_jwk(OTHER)["x"] not in caplog.text
    assert public_jwk(KEY)["x"] not in caplog.text


async def test_a_skipped_key_is_logged_at_debug_by_its_kid(
    issuer: Issuer, verifier: AccessTokenVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    """A key skipped is logged at debug with its kid and why, never its coordinates."""
    caplog.set_level(logging.DEBUG, logger="mimi_reactive.verify")
    issuer.body = jwks({**public_jwk(OTHER, "bad-kid"), "x": "AAAA"}, public_jwk(KEY))
    await verifier.verify(issuer.token())
    [skipped] = [r for r in caplog.records if "verify.jwks_key_skipped" in r.getMessage()]
    assert skipped.levelno == logging.DEBUG
    assert "kid=bad-kid" in skipped.getMessage()
    assert public_jwk(OTHER)["y"] not in caplog.text


async def test_an_ec_p256_key_without_alg_is_an_es256_key(
    issuer: Issuer, verifier: AccessTokenVerifier
) -> None:
    """``alg`` is optional in a JWK (RFC 7517): an EC P-256 key without it verifies ES256."""
    issuer.body = jwks(without(public_jwk(KEY), "alg"))
    assert (await verifier.verify(issuer.token())).user_id == "user-1"


@pytest.mark.parametrize(
    ("typ", "reason"),
    [
        (None, "wrong_type"),
        ("JWT", "wrong_type"),
        ("jwt", "wrong_type"),
        ("id_token+jwt", "wrong_type"),
        ("at+jwt ", "wrong_type"),
        ("application/jwt", "wrong_type"),
        (1, "wrong_type"),
        (["at+jwt"], "wrong_type"),
        ("at+jwt", None),
        ("AT+JWT", None),
        ("application/at+jwt", None),
    ],
)
async def test_only_a_token_typed_at_jwt_passes(
    issuer: Issuer, verifier: AccessTokenVerifier, typ: object, reason: str | None
) -> None:
    """RFC 9068: a token whose ``typ`` is not ``at+jwt`` (or ``application/at+jwt``, in any
    case) is wrong_type, however well signed, and is refused before any fetch of the JWKS."""
    token = issuer.token(headers={"typ": typ})
    if reason is None:
        assert (await verifier.verify(token)).user_id == "user-1"
    else:
        assert await refusal(verifier, token) == reason
        assert issuer.requests == 0


LEEWAY = 30
CLAIMS = [
    pytest.param(lambda now: {"iat": True}, "invalid", id="iat true"),
    pytest.param(lambda now: {"iat": False}, "invalid", id="iat false"),
    pytest.param(lambda now: {"exp": True}, "invalid", id="exp true"),
    pytest.param(lambda now: {"nbf": True}, "invalid", id="nbf true"),
    pytest.param(lambda now: {"exp": str(now + 600)}, "invalid", id="exp a string"),
    pytest.param(lambda now: {"iat": [now]}, "invalid", id="iat a list"),
    pytest.param(lambda now: {"nbf": None}, "invalid", id="nbf null"),
    pytest.param(lambda now: {"nbf": str(now)}, "invalid", id="nbf a string"),
    pytest.param(lambda now: {"exp": float("nan")}, "invalid", id="exp NaN"),
    pytest.param(lambda now: {"exp": float("inf")}, "invalid", id="exp Infinity"),
    pytest.param(lambda now: {"iat": float("-inf")}, "invalid", id="iat -Infinity"),
    pytest.param(lambda now: {"exp": 10**400}, "invalid", id="exp past any float"),
    pytest.param(lambda now: {"nbf": now + 3600}, "invalid", id="nbf in an hour"),
    pytest.param(lambda now: {"nbf": now + 2 * LEEWAY}, "invalid", id="nbf past the leeway"),
    pytest.param(lambda now: {"nbf": now + LEEWAY // 2}, None, id="nbf within the leeway"),
    pytest.param(lambda now: {"nbf": now - 60}, None, id="nbf past"),
    pytest.param(lambda now: {"iat": now + LEEWAY // 2}, None, id="iat within the leeway"),
    pytest.param(lambda now: {"iat": now + 2 * LEEWAY}, "invalid", id="iat past the leeway"),
    pytest.param(lambda now: {"exp": now - LEEWAY // 2}, None, id="exp within the leeway"),
    pytest.param(lambda now: {"exp": now - 2 * LEEWAY}, "expired", id="exp past the leeway"),
    pytest.param(lambda now: {"exp": now + 600.5, "iat": now - 0.5}, None, id="fractional seconds"),
]


@pytest.mark.parametrize(("claims_at", "reason"), CLAIMS)
async def test_time_claims_are_numbers_checked_with_the_same_leeway(
    issuer: Issuer, clock: Clock, claims_at: Callable[[int], dict[str, Any]], reason: str | None
) -> None:
    """exp, iat and nbf must be finite numbers of seconds (not a bool, which Python would read
    as 0 or 1); each is checked against the same leeway (here 30 s)."""
    async with AccessTokenVerifier(issuer.url, leeway=LEEWAY, clock=clock) as verifier:
        claims = claims_at(int(time.time()))
        token = issuer.token(claims)
        if reason is None:
            verified = await verifier.verify(token)
            assert verified.expires_at == float(claims.get("exp", verified.expires_at))
            assert verified.issued_at == float(claims.get("iat", verified.issued_at))
        else:
            assert await refusal(verifier, token) == reason


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        pytest.param({"sub": ""}, "missing_claim", id="sub empty"),
        pytest.param({"sub": 7}, "invalid", id="sub a number"),
        pytest.param({"sub": None}, "invalid", id="sub null"),
        pytest.param({"sub": ["user-1"]}, "invalid", id="sub a list"),
        pytest.param({"pad": "a" * LONGEST_TOKEN}, "malformed", id="past the longest token"),
        pytest.param({"pad": "a" * (LONGEST_TOKEN // 2)}, None, id="long, within the bound"),
    ],
)
async def test_a_token_names_its_user_and_is_of_bounded_length(
    issuer: Issuer, verifier: AccessTokenVerifier, claims: dict[str, Any], reason: str | None
) -> None:
    """A token's sub must be a non-empty string (never coerced), and a token longer than
    LONGEST_TOKEN is malformed before any fetch of the JWKS, however well signed."""
    token = issuer.token(claims)
    if reason is None:
        assert (await verifier.verify(token)).user_id == "user-1"
        return
    assert await refusal(verifier, token) == reason
    if reason == "malformed":
        assert issuer.requests == 0
