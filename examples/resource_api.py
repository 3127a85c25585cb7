"""An app's own API that answers only logged-in users, checking tokens offline.

Run the identity service (``mimi-reactive serve ...``), then::

    python examples/resource_api.py http://127.0.0.1:8080

and call ``GET http://127.0.0.1:8081/me`` with ``Authorization: Bearer <access token>``.
"""

from __future__ import annotations

import sys

from aiohttp import web

from mimi_reactive.verify import AccessTokenVerifier, requires_user, verified_token


def make_app(identity_service_url: str) -> web.Application:
    """The API: ``GET /me`` for logged-in users, ``GET /health`` for anyone."""
    verifier = AccessTokenVerifier(identity_service_url)

    @requires_user(verifier)
    async def me(request: web.Request) -> web.Response:
        caller = verified_token(request)
        return web.json_response({"user_id": caller.user_id, "is_anonymous": caller.is_anonymous})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def close_verifier(app: web.Application) -> None:
        await verifier.close()

    app = web.Application()
    app.router.add_get("/me", me)
    app.router.add_get("/health", health)
    app.on_cleanup.append(close_verifier)
    return app


if __name__ == "__main__":
    # Loopback, as the docstring says: an example is not a public service.
    service = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
    web.run_app(make_app(service), host="127.0.0.1", port=8081)
