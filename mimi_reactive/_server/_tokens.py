"""Access tokens as signed JWTs (ES256, RFC 9068 shape), and the JWKS that verifies them.

The signing key is created at first start and kept in the database, so every worker signs
with the same key; each key has a ``kid``. Adding a key retires the one before it, which stays
in the JWKS for one more access-token lifetime so tokens it signed keep verifying during a
rotation. Workers take up a key added to the database within a minute, and serve the JWKS
from the database itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from ._records import AccessClaims, IdentityDatabase, SigningKeyRecord

__all__ = ["ALGORITHM", "AccessTokens", "new_signing_key"]

ALGORITHM = "ES256"
# A retired key stays published this much past the last token it can have signed.
_PUBLISH_MARGIN = 300.0


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
        self._keys = sorted(keys, key=lambda key: key.created_at, reverse=True)
        self._signing = self._keys[0]
        self._private = _private_key(self._signing)
        self._ttl = ttl
        self.issuer = ""
        """The ``iss`` claim: the service's public URL (set once it listens)."""

    def __repr__(self) -> str:
        return f"AccessTokens(kid={self._signing.kid!r}, keys={len(self._keys)})"

    @classmethod
    async def load(cls, database: IdentityDatabase, *, ttl: float, now: float) -> AccessTokens:
        """The stored keys; a first key is created and stored if there is none."""
        return cls(await database.ensure_signing_key(new_signing_key(now)), ttl=ttl)

    async def reload(self, database: IdentityDatabase) -> None:
        """Take up the keys another worker (or an operator) stored: the newest signs."""
        keys = sorted(await database.signing_keys(), key=lambda key: key.created_at, reverse=True)
        if keys and [key.kid for key in keys] != [key.kid for key in self._keys]:
            self._keys, self._signing = keys, keys[0]
            self._private = _private_key(self._signing)

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
        return jwt.encode(
            payload,
            self._private,
            algorithm=ALGORITHM,
            headers={"kid": self._signing.kid, "typ": "at+jwt"},
        )

    def jwks(self, now: float) -> dict[str, Any]:
        """The public keys a resource server needs: the signing one and recently retired ones."""
        published = []
        for key in self._keys:
            if key.retired_at is not None and now > key.retired_at + self._ttl + _PUBLISH_MARGIN:
                continue
            public = ECAlgorithm.to_jwk(_private_key(key).public_key(), as_dict=True)
            published.append({**public, "kid": key.kid, "alg": key.algorithm, "use": "sig"})
        return {"keys": published}


def _private_key(key: SigningKeyRecord) -> ec.EllipticCurvePrivateKey:
    private = serialization.load_pem_private_key(key.private_pem.encode(), password=None)
    if not isinstance(private, ec.EllipticCurvePrivateKey):
        raise ValueError(f"signing key {key.kid!r} is not an elliptic-curve key")
    return private
