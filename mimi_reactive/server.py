"""The reference identity service: run it in-process or with ``mimi-reactive serve``.

```python
import asyncio
import secrets

from mimi_reactive import AuthRoute, MimiCore
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer


async def main() -> None:
    secret = secrets.token_urlsafe(32)
    # In memory, on a free port of 127.0.0.1: give database=, host= and port= to keep it.
    async with IdentityServer(client_id="app", client_secret=secret) as server:
        backend = HttpBackend(server.url)
        async with MimiCore.start(client_id="app", client_secret=secret, backend=backend) as core:
            user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
            assert user.is_anonymous


asyncio.run(main())
```

Several apps: ``IdentityServer(clients=[ClientConfig("app", secret, anonymous_only=True)])``.
"""

from . import _exports
from ._server._config import ClientConfig
from ._server._identity_server import IdentityServer, ServerStartError
from ._server._records import SweepCounts
from ._server._settings import RateLimit, ServerSettings

__all__ = [
    "ClientConfig",
    "IdentityServer",
    "RateLimit",
    "ServerSettings",
    "ServerStartError",
    "SweepCounts",
]

# Tracebacks and reprs name this public module, not the private ones each is defined in.
_exports.name_public_module(__name__, globals(), __all__)
