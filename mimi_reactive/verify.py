"""Check the identity service's access tokens in your own API, without calling the service.

```python
import asyncio

from mimi_reactive.verify import AccessTokenVerifier, InvalidTokenError, VerifiedToken


async def user_of(token: str) -> str | None:  # the user a bearer token names, if it verifies
    async with AccessTokenVerifier(url) as verifier:  # url: the identity service's
        try:
            claims: VerifiedToken = await verifier.verify(token)
        except InvalidTokenError as error:
            print("refused:", error.reason)  # never the token itself
            return None
        return claims.user_id


assert asyncio.run(user_of("not-a-token")) is None
```

(A real API keeps one verifier for its life: it caches the keys.)

Access tokens are ES256 JWTs. The verifier fetches the service's keys from
``/.well-known/jwks.json``, caches them, fetches them again when a token names a key it does
not know (a rotation), at most once per ``jwks_refetch_interval``, and checks the signature,
algorithm, type (``at+jwt``, RFC 9068), issuer, expiry, ``iat`` and ``nbf`` (with a small
leeway). While the JWKS cannot be fetched or read (a body that is no JWKS, or over 1 MiB),
the keys it has stay in use for up to ``jwks_max_stale``; a key in it that cannot be used is
skipped alone. A token stays valid until it expires, unless its session ends (log-out,
revocation, deletion): introspection (``POST /v1/token/introspect``) sees that at once, this
verifier only at the token's expiry.
"""

from . import _exports
from ._access_token import LONGEST_TOKEN, InvalidTokenError, VerifiedToken
from ._verifier import VERIFIED_TOKEN, AccessTokenVerifier, requires_user, verified_token

__all__ = [
    "LONGEST_TOKEN",
    "VERIFIED_TOKEN",
    "AccessTokenVerifier",
    "InvalidTokenError",
    "VerifiedToken",
    "requires_user",
    "verified_token",
]

# Tracebacks and reprs name this public module, not the private ones each is defined in.
_exports.name_public_module(__name__, globals(), __all__)
