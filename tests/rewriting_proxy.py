"""A loopback HTTP proxy in front of the Firebase Auth emulator that changes its JSON answers,
for answers the emulator never gives (a missing refresh token, another user's tokens, an
error code only production sends)."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

_HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding"}

Rewrite = Callable[[str, int, dict[str, Any]], tuple[int, dict[str, Any]]]
"""Given a request's path and the emulator's status and JSON answer, the answer to give."""


def as_is(path: str, status: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The emulator's own answer."""
    return status, body


class RewritingProxy:
    """Forwards everything to ``upstream``; each JSON answer goes through ``rewrite``. A
    request whose path ends with a key of ``refusing`` is not forwarded: it is answered with
    Firebase's error for that key's code."""

    def __init__(self, upstream: str) -> None:
        self._upstream = upstream
        self.rewrite: Rewrite = as_is
        self.refusing: dict[str, str] = {}
        self.paths: list[str] = []
        """The path of every request forwarded, in order."""
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.host = ""

    async def __aenter__(self) -> RewritingProxy:
        self._http = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.host = f"{host}:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None
        self.paths.append(request.path)
        code = next((c for end, c in self.refusing.items() if request.path.endswith(end)), None)
        if code is not None:
            return web.json_response(firebase_error(code), status=400)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._http.request(
            request.method,
            self._upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as answer:
            body = await answer.json(content_type=None)
            status, rewritten = self.rewrite(request.path, answer.status, body)
            return web.Response(
                status=status, text=json.dumps(rewritten), content_type="application/json"
            )


def firebase_error(code: str) -> dict[str, Any]:
    """Firebase's error answer for ``code``, as production sends it."""
    return {"error": {"code": 400, "message": code, "errors": [{"message": code}]}}
