"""The identity service's requests/s beside a bare aiohttp JSON handler, on SQLite and PostgreSQL.

Each figure is measured in the same run as its baseline, interleaved (bare, then the call,
round after round), with the same load generator and connection count: a bounded Python load
generator on aiohttp (no wrk on these machines), in this process, while each server runs in a
process of its own (one worker, limits off, no sweeper). On a machine of two shared cores the
load generator takes one of them, so the ratios matter more than the absolute figures.

    .venv/bin/python benchmarks/server_scale.py [--quick] [--postgres URL]

Not measured here yet: latency against 10^3..10^7 users, several workers, disk growth under
sustained load, plots, and a profile of where the time goes (issue 12 asks for those).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import asyncpg

CLIENT = "bench-app"
SECRET = secrets.token_urlsafe(32)
BARE = """
from aiohttp import web
async def answer(request):
    await request.read()
    return web.json_response({"status": "ok"})
app = web.Application()
app.router.add_route("*", "/bare", answer)
web.run_app(app, host="127.0.0.1", port=int(__import__("sys").argv[1]), print=None,
            access_log=None)
"""


@contextlib.asynccontextmanager
async def process(*argv: str, url: str | None = None) -> AsyncIterator[str]:
    """Run a server process; its base URL (printed by serve, or given) once it answers."""
    child = await asyncio.create_subprocess_exec(
        *argv,
        env={**os.environ, "MIMI_CLIENT_SECRET": SECRET},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        if url is None:
            assert child.stdout is not None
            url = (await asyncio.wait_for(child.stdout.readline(), 60)).decode().split()[2]
        async with aiohttp.ClientSession() as http, asyncio.timeout(30):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(url + "/health") as response:
                        if response.status < 500:
                            break
                await asyncio.sleep(0.05)  # waiting for the port to answer, bounded
        yield url
    finally:
        child.terminate()
        await child.wait()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def load(
    url: str, method: str, body: Callable[[], Any] | None, seconds: float, connections: int
) -> tuple[float, float]:
    """(requests/s, p99 ms) of ``connections`` clients calling ``url`` for ``seconds``."""
    auth = aiohttp.encode_basic_auth(CLIENT, SECRET)
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers={"Authorization": auth}) as http:
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            while (started := time.perf_counter()) < deadline:
                kwargs = {"json": body()} if body is not None else {}
                async with http.request(method, url, **kwargs) as response:
                    await response.read()
                    assert response.status < 300, response.status
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(connections)))
        elapsed = time.perf_counter() - began
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000 if len(latencies) > 1 else 0.0
    return len(latencies) / elapsed, p99


async def anonymous_ids(url: str, count: int) -> list[str]:
    auth = aiohttp.encode_basic_auth(CLIENT, SECRET)
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as http:
        ids = []
        for _ in range(count):
            async with http.post(url + "/v1/anonymous-users", json={}) as response:
                ids.append((await response.json())["user"]["anonymous_id"])
        return ids


async def measure(database: str, bare: str, rounds: int, seconds: float, conns: int) -> list[str]:
    """Every row for one store, each call interleaved with the bare handler."""
    serve = [sys.executable, "-m", "mimi_reactive", "serve", "--port", "0", "--client-id", CLIENT]
    serve += ["--database", database, "--max-anonymous-sign-ups-per-hour", "0"]
    serve += ["--max-failed-log-ins-per-minute", "0", "--sweep-interval", "0"]
    rows = []
    async with process(*serve) as url:
        ids = await anonymous_ids(url, 200)
        cycle = iter(ids * 10**6)
        calls: list[tuple[str, str, str, Callable[[], Any] | None, float]] = [
            ("GET /health", "GET", "/health", None, 0.9),
            (
                "log-in by anonymous id",
                "POST",
                "/v1/sessions/anonymous",
                lambda: {"anonymous_id": next(cycle)},
                0.5,
            ),
            ("anonymous sign-up", "POST", "/v1/anonymous-users", dict, 0.5),
        ]
        for name, method, path, body, goal in calls:
            ours, theirs, p99s = [], [], []
            for _ in range(rounds):
                theirs.append((await load(bare, method, body, seconds, conns))[0])
                rate, p99 = await load(url + path, method, body, seconds, conns)
                ours.append(rate)
                p99s.append(p99)
            mine, base = statistics.median(ours), statistics.median(theirs)
            store = "PostgreSQL" if database.startswith("postgresql") else "SQLite"
            rows.append(
                f"{name + ' (' + store + ')':<42} {mine:>8.0f} {base:>8.0f} {mine / base:>6.2f}x"
                f" {goal:>5.2f}x {statistics.median(p99s):>8.1f}"
            )
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s per figure")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    rounds, seconds = (1, 2.0) if args.quick else (3, 5.0)
    schema = f"mimi_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.postgres)
    await admin.execute(f"CREATE SCHEMA {schema}")
    print(
        f"{'call (store), one worker':<42} {'req/s':>8} {'bare':>8} {'ratio':>7} {'goal':>6}"
        f" {'p99 ms':>8}"
    )
    try:
        port = free_port()
        bare_url = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory() as folder:
            async with process(sys.executable, "-c", BARE, str(port), url=bare_url):
                for database in (
                    os.path.join(folder, "bench.sqlite3"),
                    f"{args.postgres}?search_path={schema}",
                ):
                    rows = await measure(
                        database, bare_url + "/bare", rounds, seconds, args.connections
                    )
                    print("\n".join(rows), flush=True)
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
