"""Access tokens as signed JWTs (ES256, RFC 9068 shape), and the JWKS that verifies them.

The signing key is created at first start and kept in the database, so every worker signs
with the same key; each key has a ``kid``. Adding a key (``mimi-reactive rotate-signing-key``)
retires the one before it, which stays in the JWKS for one more access-token lifetime plus
``PUBLISH_MARGIN`` so tokens it signed keep verifying during a rotation; the first retention
sweep after that deletes it. Workers take up a key added to the database every
``key_reload_interval`` (60 s) and whenever they serve the JWKS, which they read from the
database itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from ..verify import InvalidTokenError, VerifiedToken, decoded, kid_of
from ._records import AccessClaims, IdentityDatabase, SigningKeyRecord
from ._settings import PUBLISH_MARGIN

__all__ = ["ALGORITHM", "PUBLISH_MARGIN", "AccessTokens", "new_signing_key", "unpublished_before"]

ALGORITHM = "ES256"


def unpublished_before(now: float, ttl: float) -> float:
    """Keys retired before this are no longer published, nor needed: every token they signed
    has expired. The JWKS leaves them out and the retention sweep deletes them."""
    return now - ttl - PUBLISH_MARGIN


def new_signing_key(now: float) -> SigningKeyRecord:
    """A fresh P-256 key with a random ``kid``."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return SigningKeyRecord(secrets.token_urlsafe(12), ALGORITHM, pem, now)


class AccessTokens:
    """Signs access tokens with the newest key; publishes every key still needed."""

    def __init__(self, keys: Sequence[SigningKeyRecord], *, ttl: float) -> None:
        if not keys:
            raise ValueError("at least one signing key is needed")
        self._keys = _signing_order(keys)
        # The key id and the private key together, replaced as one: tokens are also signed
        # on the SQLite store's thread, which must never pair one key's id with another key.
        self._signer = (self._keys[0].kid, _private_key(self._keys[0]))
        self._public = _public_keys(self._keys)
        self._ttl = ttl
        self.issuer = ""
        """The ``iss`` claim: the service's public URL (set once it listens)."""

    def __repr__(self) -> str:
        return f"AccessTokens(kid={self._signer[0]!r}, keys={len(self._keys)})"

    @classmethod
    async def load(cls, database: IdentityDatabase, *, ttl: float, now: float) -> AccessTokens:
        """The stored keys; a first key is created and stored if there is none."""
        return cls(await database.ensure_signing_key(new_signing_key(now)), ttl=ttl)

    async def reload(self, database: IdentityDatabase) -> str | None:
        """Take up the keys another worker (or an operator) stored; the ``kid`` of the key
        that signs from now on if it changed, else None."""
        keys = _signing_order(await database.signing_keys())
        if not keys or [key.kid for key in keys] == [key.kid for key in self._keys]:
            return None
        before = self._signer[0]
        self._keys = keys
        self._signer = (keys[0].kid, _private_key(keys[0]))
        self._public = _public_keys(keys)
        return keys[0].kid if keys[0].kid != before else None

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
        """The public keys a resource server needs: the signing one and recently retired ones."""
        published = []
        gone = unpublished_before(now, self._ttl)
        for key in self._keys:
            if key.retired_at is not None and key.retired_at < gone:
                continue
            published.append(_public_jwk(key))
        return {"keys": published}


def _public_jwk(key: SigningKeyRecord) -> dict[str, Any]:
    public = ECAlgorithm.to_jwk(_private_key(key).public_key(), as_dict=True)
    return {**public, "kid": key.kid, "alg": key.algorithm, "use": "sig"}


def _public_keys(keys: Sequence[SigningKeyRecord]) -> dict[str, jwt.PyJWK]:
    """The keys that check tokens, by ``kid``."""
    return {key.kid: jwt.PyJWK(_public_jwk(key)) for key in keys}


def _signing_order(keys: Sequence[SigningKeyRecord]) -> list[SigningKeyRecord]:
    """The key that signs first: the newest unretired one. By retirement, not by age alone, so a
    key added by a machine whose clock is behind still signs, and a retired one never does."""
    return sorted(keys, key=lambda key: (key.retired_at is None, key.created_at), reverse=True)


def _private_key(key: SigningKeyRecord) -> ec.EllipticCurvePrivateKey:
    private = serialization.load_pem_private_key(key.private_pem.encode(), password=None)
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise ValueError(f"signing key {key.kid!r} is not an elliptic-curve key")
    return private
