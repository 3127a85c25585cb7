"""The rate-limit storage is closed when the server stops: a server started and stopped again and
again leaves no Redis connection behind. Over the real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
import warnings

import aiohttp
import pytest
from limits.aio.storage import MemoryStorage

from mimi_reactive._server._limits import close_storage
from mimi_reactive.server import IdentityServer, ServerSettings

from .conftest import CLIENT_ID, REDIS
from .server_helpers import Caller

STARTS = 5


async def redis_command(*parts: str) -> bytes:
    """One command to the test Redis over a raw socket of its own; its bulk-string answer."""
    reader, writer = await asyncio.open_connection(*REDIS)
    try:
        request = f"*{len(parts)}\r\n" + "".join(f"${len(p.encode())}\r\n{p}\r\n" for p in parts)
        writer.write(request.encode())
        await writer.drain()
        header = await reader.readline()
        assert header.startswith(b"$"), header
        return (await reader.readexactly(int(header[1:]) + 2))[:-2]
    finally:
        writer.close()
        await writer.wait_closed()


async def connections_named(name: str) -> int:
    """How many clients Redis has connected under ``name`` (CLIENT LIST, as Redis sees it)."""
    listing = (await redis_command("CLIENT", "LIST")).decode()
    return sum(1 for line in listing.splitlines() if f" name={name} " in f" {line} ")


async def test_stopping_the_server_closes_its_redis_connections(
    redis_url: str, client_secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Started and stopped five times with Redis limits, the server holds a connection while it
    runs and none once stopped, and nothing warns of an unclosed socket or transport."""
    # Every connection the limiter opens names itself, so other users of this Redis (other
    # test runs) do not count: ours are exactly those with this name.
    name = f"mimi-test-{secrets.token_hex(6)}"
    settings = ServerSettings(rate_limit_storage=f"{redis_url}&client_name={name}")
    gc.collect()  # what earlier tests left for a finalizer warns now, not below
    caplog.set_level(logging.DEBUG, logger="asyncio")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert await connections_named(name) == 0
        for _ in range(STARTS):
            async with (
                IdentityServer(
                    client_id=CLIENT_ID, client_secret=client_secret, settings=settings
                ) as server,
                aiohttp.ClientSession() as http,
            ):
                await Caller(http, server.url, CLIENT_ID, client_secret).anonymous_user()
                assert await connections_named(name) >= 1  # the limiter counted in Redis
            # Redis, another process, notices a closed socket in its own time: poll, bounded.
            async with asyncio.timeout(10):
                while await connections_named(name) != 0:  # noqa: ASYNC110 (another process)
                    await asyncio.sleep(0.01)
        gc.collect()  # what only a finalizer would have closed warns now
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], caught
    assert not [r for r in caplog.records if "nclosed" in r.getMessage()]


async def test_closing_the_memory_storage_ends_its_expiry_task() -> None:
    """The memory storage's pending expiry task is cancelled and awaited by close_storage."""
    storage = MemoryStorage()
    await storage.incr("key", 60)
    timer = storage.timer
    assert timer is not None
    assert not timer.done()
    await close_storage(storage)
    assert timer.done()
    await close_storage(storage)  # again: nothing left to do
