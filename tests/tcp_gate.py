"""A loopback TCP relay in front of a real service that can be shut, to cut the network."""

from __future__ import annotations

import asyncio
import contextlib


class TcpGate:
    """Relays bytes between clients and ``upstream_host:upstream_port``.

    ``shut()`` drops every open connection and every new one at once (the client sees the
    connection closed: network trouble); ``reopen()`` lets traffic through again.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._relays: set[asyncio.Task[None]] = set()
        self.is_open = True
        self.port = 0

    @property
    def host(self) -> str:
        """``host:port`` of the gate."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def shut(self) -> None:
        """Drop open connections and refuse new ones."""
        self.is_open = False
        for writer in list(self._writers):
            writer.transport.abort()

    def reopen(self) -> None:
        """Let connections through again."""
        self.is_open = True

    async def close(self) -> None:
        self.shut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for relay in list(self._relays):
            relay.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.is_open:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer, upstream_writer}
        self._writers |= pair
        relay = asyncio.current_task()
        assert relay is not None
        self._relays.add(relay)
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            self._writers -= pair
            self._relays.discard(relay)
            for each in pair:
                each.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
