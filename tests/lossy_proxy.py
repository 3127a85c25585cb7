"""A loopback HTTP proxy that loses answers: it forwards a request, lets the server act on
it, then drops the connection instead of passing the answer on."""

from __future__ import annotations

from types import TracebackType

import aiohttp
from aiohttp import web

_HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding"}


class LossyProxy:
    """Forwards everything to ``upstream``; loses the next ``lose`` answers on ``path``."""

    def __init__(self, upstream: str, *, path: str, lose: int = 1) -> None:
        self._upstream = upstream
        self._path = path
        self._lose = lose
        self.lost_statuses: list[int] = []
        """The status of each answer the server gave and the client never saw."""
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.url = ""

    async def __aenter__(self) -> LossyProxy:
        self._http = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
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
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._http.request(
            request.method,
            self._upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as answer:
            body = await answer.read()
            if request.path == self._path and self._lose > 0:
                # The server has acted and answered: the client never hears of it.
                self._lose -= 1
                self.lost_statuses.append(answer.status)
                assert request.transport is not None
                request.transport.abort()
                return web.Response(status=599)
            return web.Response(status=answer.status, body=body, content_type=answer.content_type)
