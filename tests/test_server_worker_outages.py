"""`serve --workers 2` whose workers are killed while PostgreSQL or Redis is cut off (a
``TcpGate`` shut): the replacements boot, the master keeps running, the probes and the calls
answer as in any outage (200 for /health, 503 with Retry-After elsewhere, never 500), and
everything works once the store is back. Real `serve` processes, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator

import aiohttp
import pytest

from .conftest import REDIS
from .server_helpers import Caller, eventually
from .tcp_gate import TcpGate
from .test_server_readiness import NOT_READY, probe
from .test_server_workers import CLIENT, SECRET, WORKERS, children, serve

POSTGRES = ("127.0.0.1", 5432)
# Each store call's bound in the workers: short, so the 503s come quickly.
TIMEOUT = "2"


@pytest.fixture(params=["postgresql", "redis"])
async def cut_store(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, TcpGate]]:
    """Which store is cut (each in turn), and a gate in front of it."""
    gate = TcpGate(*(POSTGRES if request.param == "postgresql" else REDIS))
    await gate.start()
    yield request.param, gate
    await gate.close()


async def replaced(master: int, killed: set[int]) -> set[int]:
    """Wait until ``master`` has two workers again, none of them ``killed``; their ids."""

    async def two_new() -> bool:
        now = set(children(master))
        return len(now) == 2 and not now & killed

    await eventually(two_new)
    return set(children(master))


async def answered_503(caller: Caller) -> None:
    """An anonymous sign-up answers 503 temporarily_unavailable with Retry-After."""
    status, body, headers = await caller.post("/v1/anonymous-users")
    assert (status, body["error"]["code"], headers.get("Retry-After")) == (
        503,
        "temporarily_unavailable",
        "5",
    )


async def test_workers_killed_during_an_outage_are_replaced_and_serve_once_it_ends(
    cut_store: tuple[str, TcpGate], postgres_url: str, redis_url: str
) -> None:
    """With the database (or the rate-limit Redis) cut off, both workers killed (SIGKILL) are
    replaced: the master keeps running, /health answers 200, /ready and a sign-up 503 with
    Retry-After (not 500, and no worker failing to boot), an unknown path 404; once the store
    is back, /ready is 200 and sign-ups succeed, and SIGTERM stops the server with status 0."""
    which, gate = cut_store
    if which == "postgresql":
        postgres_url = postgres_url.replace("127.0.0.1:5432", gate.host)
    else:
        redis_url = redis_url.replace(f"{REDIS[0]}:{REDIS[1]}", gate.host)
    options = ("--database", postgres_url, "--rate-limit-storage", redis_url)
    async with (
        serve(*WORKERS, *options, "--storage-timeout", TIMEOUT, "--log-level", "info") as served,
        aiohttp.ClientSession() as http,
    ):
        caller = Caller(http, served.url, CLIENT, SECRET)
        master = served.process.pid
        async with asyncio.timeout(60):
            killed = await replaced(master, set())
            await caller.anonymous_user()
            gate.shut()
            for worker in killed:
                os.kill(worker, signal.SIGKILL)
            await replaced(master, killed)
            assert served.process.returncode is None
            assert await probe(served.url, "/health") == (200, {"status": "ok"}, None)
            for _ in range(4):  # whichever worker answers
                assert await probe(served.url) == NOT_READY
                await answered_503(caller)
                # A path no route has is refused as it is: no signing key needed, no 503.
                assert (await probe(served.url, "/v1/no-such-route"))[0] == 404
            gate.reopen()
            await eventually(lambda: _ready(served.url))
            for _ in range(4):
                await caller.anonymous_user()
    stderr = served.stderr.decode()
    assert "http.internal_error" not in stderr
    assert "failed to boot" not in stderr.lower()


async def _ready(url: str) -> bool:
    return (await probe(url))[0] == 200


async def test_the_master_says_where_it_listens_and_why_it_stops(
    postgres_url: str, redis_url: str
) -> None:
    """`serve --workers 2 --log-format json` writes one JSON object a line, and gunicorn's own
    lines whole: the address it listens at and that the master shuts down."""
    options = ("--database", postgres_url, "--rate-limit-storage", redis_url)
    json_logs = ("--log-format", "json", "--log-level", "info")
    async with serve(*WORKERS, *options, *json_logs) as served:
        await replaced(served.process.pid, set())
    events = [json.loads(line)["event"] for line in served.stderr.decode().splitlines()]
    assert f"Listening at: {served.url} ({served.process.pid})" in events
    assert "Shutting down: Master" in events
    assert not [event for event in events if "<redacted>" in event]
