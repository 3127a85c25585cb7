"""A loopback HTTP proxy in front of the Firebase Auth emulator that changes its JSON answers,
for answers the emulator never gives (a missing refresh token, another user's tokens, an
error code only production sends)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from .forwarding_proxy import ForwardingProxy

Rewrite = Callable[[str, int, dict[str, Any]], tuple[int, dict[str, Any]]]
"""Given a request's path and the emulator's status and JSON answer, the answer to give."""


def as_is(path: str, status: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The emulator's own answer."""
    return status, body


class RewritingProxy(ForwardingProxy):
    """Forwards everything to ``upstream``; each JSON answer goes through ``rewrite``. A
    request whose path ends with a key of ``refusing`` is not forwarded: it is answered with
    Firebase's error for that key's code."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.rewrite: Rewrite = as_is
        self.refusing: dict[str, str] = {}
        self.paths: list[str] = []
        """The path of every request forwarded, in order."""
        self.bodies: list[bytes] = []
        """The body of every request, in the order of ``paths``."""

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        self.paths.append(request.path)
        self.bodies.append(await request.read())  # read once: forwarding reads it again
        code = next((c for end, c in self.refusing.items() if request.path.endswith(end)), None)
        if code is not None:
            return web.json_response(firebase_error(code), status=400)
        return await super()._forward(request)

    async def _pass_on(
        self, request: web.Request, answer: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        body = await answer.json(content_type=None)
        status, rewritten = self.rewrite(request.path, answer.status, body)
        return web.Response(
            status=status, text=json.dumps(rewritten), content_type="application/json"
        )


def firebase_error(code: str) -> dict[str, Any]:
    """Firebase's error answer for ``code``, as production sends it."""
    return {"error": {"code": 400, "message": code, "errors": [{"message": code}]}}
