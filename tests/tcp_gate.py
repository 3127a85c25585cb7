"""A loopback TCP relay in front of a real service that can be shut, to cut the network, or
paused, to make it stop answering (a partition: packets dropped, nothing closed)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct


class TcpGate:
    """Relays bytes between clients and ``upstream_host:upstream_port``.

    ``shut()`` drops every open connection and every new one at once (the client sees the
    connection closed: network trouble); ``reopen()`` lets traffic through again.
    ``reset()`` drops them with a TCP reset instead (a peer that crashed, a firewall).
    ``pause()`` holds every byte in both directions, new connections' included, with nothing
    closed (a peer that stops answering); ``resume()`` passes them on.
    ``connected`` is set once a client has connected (paused or not).
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._relays: set[asyncio.Task[None]] = set()
        self.is_open = True
        self.port = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.connected = asyncio.Event()

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

    def reset(self) -> None:
        """Drop open connections with a TCP reset (RST, not FIN), and refuse new ones."""
        for writer in self._writers:
            sock = writer.get_extra_info("socket")
            # A zero linger time makes closing send RST.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.shut()

    def reopen(self) -> None:
        """Let connections through again."""
        self.is_open = True

    def pause(self) -> None:
        """Hold every byte from now on, in both directions, closing nothing."""
        self._flowing.clear()

    def resume(self) -> None:
        """Pass held and new bytes on again."""
        self._flowing.set()

    async def close(self) -> None:
        self.resume()  # a relay held by a pause ends too
        self.shut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        # Every relay ends of itself once its connections are dropped; cancelling one instead
        # makes asyncio's stream callback log the cancellation as an error.
        if self._relays:
            await asyncio.wait(set(self._relays), timeout=5)
        for relay in list(self._relays):
            relay.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        relay = asyncio.current_task()
        assert relay is not None
        self._relays.add(relay)
        self.connected.set()
        pair = {writer}
        try:
            await self._flowing.wait()  # paused: the client's connect is answered, no more
            if not self.is_open:
                return
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
            except OSError:
                return
            pair.add(upstream_writer)
            self._writers |= pair
            await asyncio.gather(
                _pipe(reader, upstream_writer, self._flowing),
                _pipe(upstream_reader, writer, self._flowing),
            )
        finally:
            self._writers -= pair
            self._relays.discard(relay)
            for each in pair:
                each.transport.abort()


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event
) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            await flowing.wait()
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
