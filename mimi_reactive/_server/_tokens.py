"""Access tokens as signed JWTs (ES256, RFC 9068 shape), and the JWKS that verifies them.

The signing key is created at first start and kept in the database, so every worker signs
with the same key; each key has a ``kid``. Adding a key (``mimi-reactive rotate-signing-key``)
publishes it at once but has it sign only ``PUBLISH_LEAD`` later (its ``created_at``), so
verifiers have the key before its first token; the key before it signs until then and is
retired from then (its ``retired_at``), and stays in the JWKS for one more access-token
lifetime plus ``PUBLISH_MARGIN`` so tokens it signed keep verifying; the first retention sweep
after that deletes it. Workers read the keys every ``key_reload_interval`` (60 s), and when
a request needs the newest (the JWKS, a token naming a key not loaded here) at most once per
``KEY_READ_THROTTLE``; they choose the key that signs by their own clock at each read.

Every worker publishes a key before any signs with it, for every resource server: a key is
in each worker's JWKS at most ``KEY_READ_THROTTLE`` after it is stored, and a JWKS may be
cached ``JWKS_MAX_AGE``, so one that lacks the key is refetched by
``KEY_READ_THROTTLE + JWKS_MAX_AGE`` after the rotation; the key signs ``PUBLISH_LEAD``
after it, which is not less (``tests/test_server_jwks.py`` checks it on a real server). Even
a resource server that caches the JWKS for its ``max-age`` and never refetches on an unknown
``kid`` has the key before its first token. What is left of the lead is room for clocks.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from .._access_token import InvalidTokenError, VerifiedToken, decoded, kid_of
from ._database import IdentityDatabase
from ._records import AccessClaims, SigningKeyRecord
from ._settings import PUBLISH_LEAD, PUBLISH_MARGIN

__all__ = [
    "ALGORITHM",
    "JWKS_MAX_AGE",
    "KEY_READ_THROTTLE",
    "PUBLISH_LEAD",
    "PUBLISH_MARGIN",
    "AccessTokens",
    "new_signing_key",
    "unpublished_before",
]

ALGORITHM = "ES256"

KEY_READ_THROTTLE = 5.0
"""Seconds between two reads of the keys a request causes (a JWKS request, a token naming a
key not loaded here): anyone may send those, so they cannot make every request read the
database; a new key is stored ``PUBLISH_LEAD`` before it signs, so it is loaded in time."""

JWKS_MAX_AGE = 30
"""Seconds the JWKS may be cached (its ``Cache-Control: max-age``): with ``KEY_READ_THROTTLE``
at most ``PUBLISH_LEAD`` (see the module's docstring), and as long as the verifier's own
``jwks_refetch_interval``."""


def unpublished_before(now: float, ttl: float) -> float:
    """Keys retired before this are no longer published, nor needed: every token they signed
    has expired. The JWKS leaves them out and the retention sweep deletes them."""
    return now - ttl - PUBLISH_MARGIN


def new_signing_key(signs_from: float) -> SigningKeyRecord:
    """A fresh P-256 key with a random ``kid`` that signs from ``signs_from`` on."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return SigningKeyRecord(secrets.token_urlsafe(12), ALGORITHM, pem, signs_from)


class AccessTokens:
    """Signs access tokens with the key whose turn it is; publishes every key still needed."""

    def __init__(
        self, keys: Sequence[SigningKeyRecord], *, ttl: float, clock: Callable[[], float]
    ) -> None:
        """Sign and verify with ``keys``; with none, nothing is loaded until ``ensure_loaded``
        (a worker that starts while the database is out)."""
        self._clock = clock
        now = clock()
        self._keys: list[SigningKeyRecord] = []
        self._seen: dict[str, float] = {}
        """When this process first read each key (its clock's time)."""
        # The key id and the private key together, replaced as one: a token is never signed
        # with one key and labelled with another's id, whatever the handlers interleave.
        self._signer: tuple[str, ec.EllipticCurvePrivateKey] | None = None
        self._jwks: dict[str, dict[str, Any]] = {}
        self._public: dict[str, jwt.PyJWK] = {}
        self._loading: asyncio.Future[None] | None = None
        self._ttl = ttl
        self.issuer = ""
        """The ``iss`` claim: the service's public URL (set once it listens)."""
        self.reloaded_at = now
        """When the keys were last read from the database (the clock's time)."""
        if keys:
            self._take(keys, now)

    def __repr__(self) -> str:
        kid = None if self._signer is None else self._signer[0]
        return f"AccessTokens(kid={kid!r}, keys={len(self._keys)})"

    @property
    def loaded(self) -> bool:
        """Whether keys are loaded (a key signs)."""
        return self._signer is not None

    @classmethod
    async def load(
        cls, database: IdentityDatabase, *, ttl: float, clock: Callable[[], float]
    ) -> AccessTokens:
        """The stored keys; a first key, which signs at once, is stored if there is none."""
        tokens = cls((), ttl=ttl, clock=clock)
        await tokens.ensure_loaded(database)
        return tokens

    async def ensure_loaded(self, database: IdentityDatabase) -> None:
        """Read the stored keys (storing a first one, which signs at once, if there is none)
        unless some are loaded: what a worker started while the database was out does at the
        first request that needs them. A failure is the database's, raised as it is."""
        if self._signer is not None:
            return
        # Requests arriving together share one read, each bounded by the storage timeout
        # rather than queued behind the others' (and one that goes away cancels none).
        if self._loading is None or self._loading.done():
            self._loading = asyncio.ensure_future(self._load(database))
            self._loading.add_done_callback(_retrieved)
        await asyncio.shield(self._loading)

    async def _load(self, database: IdentityDatabase) -> None:
        keys = await database.ensure_signing_key(new_signing_key(self._clock()))
        self.reloaded_at = self._clock()
        self._take(keys, self.reloaded_at)

    async def reload(self, database: IdentityDatabase) -> str | None:
        """Take up the keys another worker (or an operator) stored and choose again, by this
        process's clock, the key that signs; its ``kid`` if that changed, else None."""
        now = self.reloaded_at = self._clock()
        keys = await database.signing_keys()
        return self._take(keys, now) if keys else None

    def _take(self, keys: Sequence[SigningKeyRecord], now: float) -> str | None:
        """Hold ``keys`` and choose, by ``now``, the key that signs; its ``kid`` if that
        changed, else None."""
        self._seen = {key.kid: self._seen.get(key.kid, now) for key in keys}
        if [key.kid for key in keys] != [key.kid for key in self._keys]:
            self._jwks, self._public = _public_keys(keys)
        self._keys = list(keys)
        signer = _signing_key(self._keys, self._seen, now)
        if self._signer is not None and signer.kid == self._signer[0]:
            return None
        self._signer = (signer.kid, _private_key(signer))
        return signer.kid

    async def reload_throttled(self, database: IdentityDatabase) -> str | None:
        """``reload``, unless the keys were read less than ``KEY_READ_THROTTLE`` ago (then
        None): what a request that anyone may send does."""
        if self._clock() - self.reloaded_at < KEY_READ_THROTTLE:
            return None
        return await self.reload(database)

    def issue(self, claims: AccessClaims, now: float) -> str:
        """A signed access token for ``claims``, valid ``ttl`` seconds from ``now``."""
        payload = {
            "iss": self.issuer,
            "sub": claims.user_id,
            "client_id": claims.client_id,
            "is_anonymous": claims.is_anonymous,
            "sid": claims.session_id,
            "iat": int(now),
            "exp": int(now + self._ttl),
            "jti": secrets.token_urlsafe(16),
        }
        if self._signer is None:  # the edge loads the keys before any handler runs
            raise RuntimeError("no signing key is loaded")
        kid, private = self._signer
        return jwt.encode(
            payload, private, algorithm=ALGORITHM, headers={"kid": kid, "typ": "at+jwt"}
        )

    def verify(self, token: str, now: float) -> VerifiedToken:
        """The claims of ``token`` if one of these keys signed it and it is unexpired at
        ``now``, as ``AccessTokenVerifier`` checks it; ``InvalidTokenError`` otherwise
        (``unknown_key`` for a key not loaded here: ``reload`` may know it)."""
        key = self._public.get(kid_of(token))
        if key is None:
            raise InvalidTokenError("unknown_key", "no key of the issuer has this kid")
        return decoded(token, key, issuer=self.issuer, leeway=0.0, now=now)

    def jwks(self, now: float) -> dict[str, Any]:
        """The public keys a resource server needs: the one that signs, any that will (a key
        rotated in signs only ``PUBLISH_LEAD`` after it is published) and recently retired ones.
        Each key's JWK was built when it was read: no private key is parsed here."""
        gone = unpublished_before(now, self._ttl)
        return {
            "keys": [
                self._jwks[key.kid]
                for key in self._keys
                if key.retired_at is None or key.retired_at >= gone
            ]
        }


def _retrieved(loading: asyncio.Future[None]) -> None:
    """Mark a shared read's failure as seen: every request that awaited it got it (or went
    away), so asyncio need not log it as never retrieved."""
    if not loading.cancelled():
        loading.exception()


def _public_jwk(key: SigningKeyRecord) -> dict[str, Any]:
    public = ECAlgorithm.to_jwk(_private_key(key).public_key(), as_dict=True)
    return {**public, "kid": key.kid, "alg": key.algorithm, "use": "sig"}


def _public_keys(
    keys: Sequence[SigningKeyRecord],
) -> tuple[dict[str, dict[str, Any]], dict[str, jwt.PyJWK]]:
    """Each key's public JWK (what the JWKS publishes) and the key that checks tokens, by
    ``kid``: built once per set of keys read, as parsing a private key costs."""
    jwks = {key.kid: _public_jwk(key) for key in keys}
    return jwks, {kid: jwt.PyJWK(jwk) for kid, jwk in jwks.items()}


def _signing_key(
    keys: Sequence[SigningKeyRecord], seen: dict[str, float], now: float
) -> SigningKeyRecord:
    """The key that signs at ``now``: the newest one whose signing has begun (at its
    ``created_at``) and which is not retired yet. A key this process has read for
    ``PUBLISH_LEAD`` has begun too, so a key added by a machine whose clock is ahead signs all
    the same; a key added by one whose clock is behind has begun already. If no key may sign
    (all retired by hand), the unretired one, else the newest."""

    def rank(key: SigningKeyRecord) -> tuple[bool, bool, float]:
        begun = key.created_at <= now or seen[key.kid] + PUBLISH_LEAD <= now
        retired = key.retired_at is not None and key.retired_at <= now
        return (begun and not retired, key.retired_at is None, key.created_at)

    return max(keys, key=rank)


def _private_key(key: SigningKeyRecord) -> ec.EllipticCurvePrivateKey:
    private = serialization.load_pem_private_key(key.private_pem.encode(), password=None)
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise ValueError(f"signing key {key.kid!r} is not an elliptic-curve key")
    return private
