"""A loopback HTTP proxy that loses answers: it forwards a request, lets the server act on
it, then drops the connection instead of passing the answer on."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from .forwarding_proxy import ForwardingProxy


class LossyProxy(ForwardingProxy):
    """Forwards everything to ``upstream``; loses the next ``lose`` answers on ``path``."""

    def __init__(self, upstream: str, *, path: str, lose: int = 1) -> None:
        super().__init__(upstream)
        self._path = path
        self._lose = lose
        self.lost_statuses: list[int] = []
        """The status of each answer the server gave and the client never saw."""

    async def _pass_on(
        self, request: web.Request, answer: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        if request.path == self._path and self._lose > 0:
            # The server has acted and answered: the client never hears of it.
            await answer.read()
            self._lose -= 1
            self.lost_statuses.append(answer.status)
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=599)
        return await super()._pass_on(request, answer)
