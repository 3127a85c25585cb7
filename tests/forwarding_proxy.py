"""A loopback HTTP proxy that forwards every request to an upstream server and passes its
answer on: the base of the test proxies that change what the client sees."""

from __future__ import annotations

from typing import Self

import aiohttp
from aiohttp import web

_HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding"}


class ForwardingProxy:
    """Forwards everything to ``upstream`` from ``host`` (``url``); a subclass overrides
    ``_forward`` to act before forwarding, ``_pass_on`` to change the answer."""

    def __init__(self, upstream: str) -> None:
        self._upstream = upstream
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.host = ""

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    async def __aenter__(self) -> Self:
        self._http = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.host = f"{host}:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._http.request(
            request.method,
            self._upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as answer:
            return await self._pass_on(request, answer)

    async def _pass_on(
        self, request: web.Request, answer: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        """The answer the client gets to ``request``: the upstream's own."""
        body = await answer.read()
        return web.Response(status=answer.status, body=body, content_type=answer.content_type)
