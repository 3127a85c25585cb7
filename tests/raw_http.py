"""Raw HTTP/1.1 over a loopback socket, for requests no well-behaved client would send."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import attrs


@attrs.frozen
class RawAnswer:
    """A parsed HTTP answer: status, lower-cased headers, body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def send_raw(url: str, request: bytes) -> RawAnswer | None:
    """Send ``request`` as is and read the answer to EOF; None if the server just closed."""
    async with _sent(url, request) as reader:
        raw = await reader.read()
    if not raw:
        return None
    head, _, body = raw.partition(b"\r\n\r\n")
    return _parsed(head, body)


async def first_answer(url: str, request: bytes, *, interim: bool = False) -> RawAnswer | None:
    """Send ``request`` as is (whole or a part) and read one answer, by its Content-Length,
    within 10 s: the first final one, or the first of any kind (a 100 Continue) if
    ``interim``; None if the server closed first. For an answer given before the body it was
    told of arrived, after which aiohttp keeps the connection a while to read that body."""
    async with _sent(url, request) as reader:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as error:
                if error.partial:
                    raise
                return None
            answer = _parsed(head.removesuffix(b"\r\n\r\n"), b"")
            length = int(answer.headers.get("content-length", "0"))
            answer = attrs.evolve(answer, body=await reader.readexactly(length))
            if interim or answer.status >= 200:
                return answer


@contextlib.asynccontextmanager
async def _sent(url: str, request: bytes) -> AsyncIterator[asyncio.StreamReader]:
    """A connection to ``url``'s server that sent ``request``: its reader, to be read within
    10 s; closed at the end."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            yield reader
    finally:
        writer.close()
        await writer.wait_closed()


def _parsed(head: bytes, body: bytes) -> RawAnswer:
    """The answer whose status line and headers are ``head`` (without its blank line)."""
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawAnswer(int(status_line.split()[1]), headers, body)


def build_request(
    method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> bytes:
    """An HTTP/1.1 request with ``Connection: close`` and a Content-Length for ``body``."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: localhost", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if body or method == "POST":
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
