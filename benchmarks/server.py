"""The identity service's speed, scale and disk under load, each figure beside its baseline.

Its goals (each table's goal column, met or not), in four parts (``--parts``, all by
default), one table each:

speed    Log-in by anonymous id, anonymous sign-up and ``GET /health``: requests/s of
         ``mimi-reactive serve`` (one worker, limits off, no sweeper) beside a bare aiohttp JSON
         handler (one process, same request, same body), on SQLite and on PostgreSQL. Each
         figure is measured in the same run as its baseline, interleaved round after round
         (bare first on even rounds, ours first on odd ones); a figure is the median of the
         rounds. Goals: 0.5x for log-in and sign-up, 0.9x for ``GET /health``.
users    Log-in by anonymous id: requests/s, p50 and p99 against the number of users, 10^3 to
         10^6 on SQLite and 10^3 to 10^7 on PostgreSQL, each beside the 10^3 figure. Users are
         written straight into the database, in the server's own schema (migrated first by
         ``IdentityServer.migrate_database``, as ``mimi-reactive migrate``) with the server's
         own digest of their anonymous ids, so they can log in: SQLite with one transaction of
         ``executemany`` into the file before the server starts (it restarts at each size),
         PostgreSQL with ``COPY`` (asyncpg ``copy_records_to_table``) beside one running
         server, then ``ANALYZE``. Each log-in picks a user at random among all of them. The
         bare handler is measured beside each size too, to divide out the machine's drift.
workers  Requests/s against ``serve --workers N`` (gunicorn) on PostgreSQL with the rate-limit
         counters in Redis (limits on: every log-in reads the failure counter, every sign-up
         counts one), beside a bare aiohttp handler run by gunicorn with as many workers, and
         beside the one-worker figure.
disk     SQLite under sustained log-ins, the sweeper on: the WAL's size sampled every 0.1 s
         while the load runs, beside SQLite's auto-checkpoint size (1000 pages); and the
         database's live bytes per user after N, 2N and 4N log-ins, beside the figure after N.
         Time is compressed: sessions idle-expire after 10 s (``--session-idle-timeout``) and
         the sweeper runs every 2 s, so abandoned sessions are swept while the load runs, as
         they would be after 30 days with hourly sweeps.

Load generator: ``wrk`` (``-t1 -c64``; ``apt-get install wrk``, 4.1.0 from Debian for the
figures in docs/scaling.md) when it is on PATH, stopped with SIGINT at the end of each window
(wrk reports what it measured, as on Ctrl-C), so a window can be shorter than wrk's whole
seconds. Without wrk the script falls back to a bounded Python load generator on aiohttp in
this process (a fixed number of connections for a fixed time; ``--load python`` forces it),
which saturates its core near the bare handler's speed: its bare figures are lower bounds, so
its ratios are upper bounds. The report's first line says which ran. On a machine of two
shared cores the load generator takes one of them and the server the other: the ratios matter
more than absolute figures.

Run (the full run should take about 30 minutes on two shared cores: a medium run, 2 rounds of
3 s a figure and users up to 10^6, took 7; 10^6 users took 18 s to COPY into PostgreSQL):

    nice -n 10 .venv/bin/python benchmarks/server.py
    .venv/bin/python benchmarks/server.py --quick      # tiny sizes, seconds: the smoke test
    .venv/bin/python benchmarks/server.py --parts users,disk --users-up-to 100000 \\
        --postgres postgresql://postgres@127.0.0.1:5432/test --redis redis://127.0.0.1:6379/0

Plots (``--plots DIR``; docs/ by default, none with ``--quick``): server-users.png
(requests/s and p99 against users, log x axis) and server-workers.png (requests/s against
workers). Each part makes its own PostgreSQL schema (``mimi_bench_<part>_<random>``) and
drops it, keeps its SQLite files in a temporary directory, and keeps its Redis counters under
a key prefix of its own, reset at the end; so runs never see each other's data. Without a
reachable PostgreSQL or Redis, the rows that need it are skipped with the reason.

Where the time goes (py-spy and cProfile of ``serve`` under wrk -t1 -c64, log-in by anonymous
id on SQLite, quiet machine, 2026-11-25). Before the work on its speed a log-in crossed to
aiosqlite's thread once per statement (about nine crossings), an asyncio.Lock made every
operation wait for the one before, and every commit paid its own fsync (3.5 ms on these
disks): the server sat idle half the time, at 307 log-ins/s (Python load generator, loaded
machine; 1,500 in that setup after the first change). Now the SQLite store runs each
operation whole on its thread and operations that arrive together share one transaction and
one commit (group commit), a log-in is one store operation, and last_seen_at is written at
most once an hour: 3,300-4,200 log-ins/s, 205 us of CPU each against the bare handler's 36.
Of those 205 us, measured piece by piece: the ES256 access token 38 us (PyJWT; the signature
alone 22), the store operation about 70 (a select, two inserts into tables of four and three
indexes, and a share of the commit's WAL write), aiohttp's own request and response about 36
(as the bare handler), secrets, uuid and SHA-256 digests 9 (three getrandom calls), the JSON
answer 7, client authentication, body validation and the limiter 4, and the rest the
crossing to the store's thread and back.

Since (2026-12-07): sessions no longer keep their access token's digest and expiry, which
nothing read (SQLite schema 3, PostgreSQL 2), so a log-in inserts a session row into three
indexes, not four, and no digest of the token is taken; the access token is signed in the
handler after the store operation, no longer on the SQLite writer's thread inside the batch;
and a PostgreSQL log-in by anonymous id is one statement (one round trip), not two. py-spy
(``--threads --nonblocking -r 500``, 10 s under wrk -t1 -c64, one anonymous user logging in
again and again) on a machine loaded by other work (load average 6-8 on 2 cores), of all
samples: the event loop's thread about two thirds, the writer's one third. The writer's
thread is mostly the COMMIT (23-26%: the WAL's fsync, with the GIL released, which group
commit shares among the batch); the log-in's own statements (the select and the two inserts)
are 3-5%, down from 9% (the insert of the session, 7.6% before, 1.5-3.6% now). On the event
loop: signing the ES256 token 12% (the signature 8.5%), the socket writes of the answers
11-18%, and aiohttp's parsing, routing and JSON the rest. CPU per log-in (the server's
utime+stime over a 10 s window, divided by the log-ins): 324-362 us before, 326-351 us after,
four windows interleaved: the difference is below what that machine could show. The bound
is unchanged: the signature and aiohttp's own request and response cost several bare
requests, so 0.5x of a bare handler is out of reach for a call that signs a token and durably
stores a session, in CPython on one core; about 0.15-0.19x is where SQLite stands, 0.10-0.12x
PostgreSQL (its commit's fsync and asyncpg's encoding, the server sharing two cores with
PostgreSQL and the load generator). ``GET /health`` (no store, no token) runs at 0.9-1.1x:
one middleware, whose debug line is built only when written, and an answer encoded once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import platform
import random
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import _serving
import aiohttp
import asyncpg

from mimi_reactive._server._secrets import digest
from mimi_reactive.server import IdentityServer

SUMMARY = "The identity service's speed, scale and disk under load, each beside its baseline."
DOCS = Path(__file__).resolve().parent.parent / "docs"
CLIENT = "bench-app"
SECRET = secrets.token_urlsafe(32)
AUTH = aiohttp.encode_basic_auth(CLIENT, SECRET)
PARTS = ("speed", "users", "workers", "disk")
LIMITS_OFF = (
    *("--max-anonymous-sign-ups-per-hour", "0"),
    *("--max-credential-sign-ups-per-hour", "0"),
    *("--max-failed-log-ins-per-minute", "0"),
)
SWEEPER_OFF = ("--sweep-interval", "0")

# A bare aiohttp JSON handler: as a script (one process) and as a module for gunicorn.
BARE_APP = """
from aiohttp import web

async def answer(request):
    await request.read()
    return web.json_response({"status": "ok"})

app = web.Application()
app.router.add_route("*", "/bare", answer)
"""
BARE_SCRIPT = (
    BARE_APP
    + """
import asyncio

async def main():
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()  # a port the OS picks, never taken
    host, port = runner.addresses[0][:2]
    print(f"serving on http://{host}:{port}", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""
)
BARE_GUNICORN_CONFIG = """
def when_ready(arbiter):
    host, port = arbiter.LISTENERS[0].sock.getsockname()[:2]
    print(f"serving on http://{host}:{port}", flush=True)
"""
"""gunicorn's bare pool says where it listens as ``serve`` does, once bound to port 0."""


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much each part does: a full run, or ``--quick``."""

    rounds: int
    seconds: float
    warm_up: float
    sqlite_users: tuple[int, ...]
    postgres_users: tuple[int, ...]
    speed_users: int
    workers: tuple[int, ...]
    workers_users: int
    disk_users: int
    disk_phase: float
    """Seconds of the first disk phase (N log-ins); the second is as long, the third twice."""
    idle_timeout: float
    sweep_interval: float


FULL = Sizes(
    rounds=3,
    seconds=5.0,
    warm_up=1.0,
    sqlite_users=(10**3, 10**4, 10**5, 10**6),
    postgres_users=(10**3, 10**4, 10**5, 10**6, 10**7),
    speed_users=10**3,
    workers=(1, 2, 4),
    workers_users=10**4,
    disk_users=10**4,
    disk_phase=20.0,
    idle_timeout=10.0,
    sweep_interval=2.0,
)
QUICK = Sizes(
    rounds=1,
    seconds=0.2,
    warm_up=0.0,
    sqlite_users=(10**2, 10**3),
    postgres_users=(10**2, 10**3),
    speed_users=10**2,
    workers=(1, 2),
    workers_users=10**2,
    disk_users=10**2,
    disk_phase=0.3,
    idle_timeout=0.5,
    sweep_interval=0.25,
)


@dataclasses.dataclass
class Users:
    """Users written straight into a database: user i (1..count) has anonymous id prefix + i."""

    prefix: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(6))
    count: int = 0

    def anonymous_id(self, index: int) -> str:
        return f"{self.prefix}{index}"

    def rows(self, stop: int, now: float) -> Iterator[tuple[str, str, bool, float, float]]:
        """(id, anonymous_id_digest, is_anonymous, created_at, last_seen_at) up to ``stop``."""
        for index in range(self.count + 1, stop + 1):
            yield str(uuid.uuid4()), digest(self.anonymous_id(index)), True, now, now


@dataclasses.dataclass(frozen=True)
class Call:
    """The request every connection of the load generator sends, again and again."""

    name: str
    method: str
    path: str
    body: str | None = None
    users: Users | None = None
    """For a log-in: each request names a random one of these users (all of them, so far)."""

    def at(self, path: str) -> Call:
        return dataclasses.replace(self, path=path)

    def python_body(self) -> bytes | None:
        if self.users is not None:
            chosen = self.users.anonymous_id(random.randint(1, self.users.count))
            return json.dumps({"anonymous_id": chosen}).encode()
        return None if self.body is None else self.body.encode()


def health() -> Call:
    return Call("GET /health", "GET", "/health")


def log_in(users: Users) -> Call:
    return Call("log-in by anonymous id", "POST", "/v1/sessions/anonymous", users=users)


def sign_up() -> Call:
    return Call("anonymous sign-up", "POST", "/v1/anonymous-users", body="{}")


@dataclasses.dataclass(frozen=True)
class Load:
    """What one load-generator window measured; latencies in milliseconds."""

    requests: int
    seconds: float
    errors: int
    p50: float
    p99: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def median(loads: Sequence[Load]) -> Load:
    """Rounds of one figure: the median rate (as requests over 1 s), p50 and p99; errors add."""
    return Load(
        requests=round(statistics.median(each.rate for each in loads)),
        seconds=1.0,
        errors=sum(each.errors for each in loads),
        p50=statistics.median(each.p50 for each in loads),
        p99=statistics.median(each.p99 for each in loads),
    )


class LoadGenerator(Protocol):
    name: str

    async def run(self, url: str, call: Call, seconds: float, connections: int) -> Load: ...


class Wrk:
    """wrk with one thread, a Lua script per call, stopped by SIGINT when the window ends."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary, self.folder = binary, folder
        self.name = "wrk"

    async def describe(self) -> None:
        child = await asyncio.create_subprocess_exec(
            self.binary, "-v", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await child.communicate()
        words = out.decode(errors="replace").split()
        self.name = " ".join(words[:2]) if words else "wrk"

    def script(self, call: Call) -> Path:
        lines = [
            f"wrk.method = {json.dumps(call.method)}",
            f'wrk.headers["Authorization"] = {json.dumps(AUTH)}',
        ]
        if call.body is not None:
            lines += [
                'wrk.headers["Content-Type"] = "application/json"',
                f"wrk.body = {json.dumps(call.body)}",
            ]
        if call.users is not None:
            lines += [
                'wrk.headers["Content-Type"] = "application/json"',
                f"local prefix, count = {json.dumps(call.users.prefix)}, {call.users.count}",
                "math.randomseed(os.time())",
                "request = function()",
                "  local chosen = prefix .. string.format('%d', math.random(count))",
                "  return wrk.format(nil, nil, nil, '{\"anonymous_id\":\"' .. chosen .. '\"}')",
                "end",
            ]
        lines += [
            "done = function(summary, latency, requests)",
            "  local e = summary.errors",
            "  io.write(string.format('mimi-bench %d %d %d %d %.0f %.0f\\n',",
            "    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout,",
            "    e.status, latency:percentile(50), latency:percentile(99)))",
            "end",
        ]
        path = self.folder / f"wrk-{secrets.token_hex(4)}.lua"
        path.write_text("\n".join(lines) + "\n")
        return path

    async def run(self, url: str, call: Call, seconds: float, connections: int) -> Load:
        script = self.script(call)
        child = await asyncio.create_subprocess_exec(
            self.binary,
            "-t1",
            f"-c{connections}",
            f"-d{math.ceil(seconds) + 2}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            url + call.path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await asyncio.sleep(seconds)
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGINT)  # wrk stops and reports, as on Ctrl-C
            out, err = await asyncio.wait_for(child.communicate(), 30)
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
            script.unlink()
        for line in out.decode(errors="replace").splitlines():
            if line.startswith("mimi-bench "):
                requests, micros, failed, status, p50, p99 = (int(w) for w in line.split()[1:])
                # summary.requests counts every answer, non-2xx included (summary.errors.status)
                return Load(requests - status, micros / 1e6, failed + status, p50 / 1e3, p99 / 1e3)
        raise RuntimeError(f"wrk reported nothing: {err.decode(errors='replace').strip()}")


class PythonLoad:
    """The fallback: ``connections`` aiohttp clients in this process, each sending one request
    after another until the window ends (bounded: no more in flight than connections)."""

    name = "Python load generator (aiohttp)"

    async def run(self, url: str, call: Call, seconds: float, connections: int) -> Load:
        latencies: list[float] = []
        errors = 0
        headers = {"Authorization": AUTH, "Content-Type": "application/json"}
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
            deadline = time.perf_counter() + seconds

            async def client() -> None:
                nonlocal errors
                while (started := time.perf_counter()) < deadline:
                    try:
                        body = call.python_body()
                        async with http.request(call.method, url + call.path, data=body) as answer:
                            await answer.read()
                            ok = answer.status < 300
                    except aiohttp.ClientError:
                        ok = False
                    if ok:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors += 1

            began = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(connections)))
            elapsed = time.perf_counter() - began
        cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
        return Load(len(latencies), elapsed, errors, cuts[49] * 1e3, cuts[98] * 1e3)


@dataclasses.dataclass
class Bench:
    """One run's settings, resources and figures (kept for the plots)."""

    sizes: Sizes
    load: LoadGenerator
    connections: int
    folder: Path
    postgres: str | None
    postgres_missing: str
    redis: str | None
    redis_missing: str
    run: str = ""
    """The run, for the plots' titles: cores, rounds and seconds a figure, load average."""
    users_plot: dict[str, list[tuple[int, Load]]] = dataclasses.field(default_factory=dict)
    workers_plot: dict[str, list[tuple[int, float]]] = dataclasses.field(default_factory=dict)

    async def window(self, url: str, call: Call, seconds: float | None = None) -> Load:
        return await self.load.run(url, call, seconds or self.sizes.seconds, self.connections)

    async def warm_up(self, url: str, call: Call) -> None:
        if self.sizes.warm_up > 0:
            await self.window(url, call, self.sizes.warm_up)

    async def beside_bare(self, url: str, call: Call, bare_url: str) -> tuple[Load, Load]:
        """(ours, bare): ``call`` and the same request to the bare handler, interleaved round
        after round (bare first on even rounds, ours first on odd ones), each the median."""
        ours: list[Load] = []
        theirs: list[Load] = []
        for round_ in range(self.sizes.rounds):
            pair = [(bare_url, call.at(""), theirs), (url, call, ours)]
            for target, sent, into in pair[:: -1 if round_ % 2 else 1]:
                into.append(await self.window(target, sent))
        return median(ours), median(theirs)


# Servers -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Server:
    """A server process to run: its command and where its stderr goes. Its first line on
    stdout says where it listens (``serving on URL``)."""

    argv: Sequence[str]
    log: Path
    suffix: str = ""
    """Added to the URL handed out (the bare handler's path)."""


@contextlib.asynccontextmanager
async def running(*servers: Server) -> AsyncIterator[list[str]]:
    """Start the servers together; their base URLs once each answers; stop them together.

    Each is stopped with SIGINT (gunicorn's quick shutdown; the others stop as on SIGTERM),
    then SIGKILL after 30 s.
    """
    children: list[subprocess.Popen[str]] = []
    try:
        async with asyncio.TaskGroup() as group:
            starting = [group.create_task(start(server, children)) for server in servers]
        yield [task.result() for task in starting]
    finally:
        await asyncio.gather(
            *(
                asyncio.to_thread(_serving.stop, child, how=signal.SIGINT, timeout=30)
                for child in children
            )
        )


async def start(server: Server, children: list[subprocess.Popen[str]]) -> str:
    """Start one server (added to ``children`` at once, to be stopped); its URL once it answers."""
    with server.log.open("ab") as errors:
        child = _serving.spawn(server.argv, secret=SECRET, stderr=errors)
    children.append(child)
    name = " ".join(server.argv[3:6])
    url = await asyncio.to_thread(_serving.read_url, child, timeout=60, name=name, log=server.log)
    async with aiohttp.ClientSession() as http, asyncio.timeout(60):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url + "/health") as response:
                    if response.status < 500:
                        return url + server.suffix
            if child.poll() is not None:
                raise RuntimeError(f"{server.argv[:3]} exited {child.returncode}: {server.log}")
            await asyncio.sleep(0.05)  # waiting for the port to answer, bounded above


def serve(
    bench: Bench, database: str, *options: str, workers: int = 1, log_level: str = "warning"
) -> Server:
    """``mimi-reactive serve`` on a free port, for the benchmark's client."""
    argv = _serving.serve_command(
        CLIENT, database, "--workers", str(workers), *options, log_level=log_level
    )
    return Server(argv, bench.folder / f"serve-{secrets.token_hex(4)}.log")


def bare(bench: Bench, workers: int = 0) -> Server:
    """The bare handler: one plain process (``workers=0``), or gunicorn with ``workers``; on
    a port the OS picks, printed on its first line like ``serve``'s."""
    if workers == 0:
        argv = [sys.executable, "-c", BARE_SCRIPT]
    else:
        (bench.folder / "bare_app.py").write_text(BARE_APP)
        (bench.folder / "bare_gunicorn.py").write_text(BARE_GUNICORN_CONFIG)
        argv = [
            *(sys.executable, "-m", "gunicorn", "--chdir", str(bench.folder)),
            *("--config", str(bench.folder / "bare_gunicorn.py")),
            *("--bind", "127.0.0.1:0", "--workers", str(workers)),
            *("--worker-class", "aiohttp.GunicornWebWorker", "bare_app:app"),
        ]
    return Server(argv, bench.folder / "bare.log", suffix="/bare")


# Stores ------------------------------------------------------------------------------------


class Store(Protocol):
    name: str
    database: str
    users: Users

    async def populate(self, stop: int) -> float:
        """Write users up to ``stop`` straight into the database; the seconds it took."""
        ...

    async def footprint(self, table: str) -> tuple[int, int]:
        """(bytes, rows) of a table with its indexes."""
        ...


class SqliteStore:
    name = "SQLite"

    def __init__(self, path: Path) -> None:
        self.path, self.database, self.users = path, str(path), Users()

    async def populate(self, stop: int) -> float:
        began = time.perf_counter()

        def write() -> None:
            with contextlib.closing(sqlite3.connect(self.path)) as db, db:  # one transaction
                db.executemany(
                    "INSERT INTO users (id, anonymous_id_digest, is_anonymous, created_at,"
                    " last_seen_at) VALUES (?, ?, ?, ?, ?)",
                    self.users.rows(stop, time.time()),
                )

        await asyncio.to_thread(write)
        self.users.count = max(self.users.count, stop)
        return time.perf_counter() - began

    async def footprint(self, table: str) -> tuple[int, int]:
        def read() -> tuple[int, int]:
            with contextlib.closing(sqlite3.connect(self.path)) as db:
                size = db.execute(
                    "SELECT coalesce(sum(pgsize), 0) FROM dbstat"
                    " WHERE name IN (SELECT name FROM sqlite_schema WHERE tbl_name = ?)",
                    (table,),
                ).fetchone()[0]
                rows = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            return int(size), int(rows)

        return await asyncio.to_thread(read)


class PostgresStore:
    name = "PostgreSQL"

    def __init__(self, url: str, schema: str) -> None:
        self.url, self.schema, self.users = url, schema, Users()
        self.database = f"{url}{'&' if '?' in url else '?'}search_path={schema}"

    async def populate(self, stop: int) -> float:
        began = time.perf_counter()
        connection = await asyncpg.connect(self.url)
        try:
            await connection.copy_records_to_table(
                "users",
                schema_name=self.schema,
                columns=["id", "anonymous_id_digest", "is_anonymous", "created_at", "last_seen_at"],
                records=self.users.rows(stop, time.time()),
            )
            await connection.execute(f'ANALYZE "{self.schema}".users')
        finally:
            await connection.close()
        self.users.count = max(self.users.count, stop)
        return time.perf_counter() - began

    async def footprint(self, table: str) -> tuple[int, int]:
        connection = await asyncpg.connect(self.url)
        try:
            name = f'"{self.schema}".{table}'
            size = await connection.fetchval("SELECT pg_total_relation_size($1::regclass)", name)
            rows = await connection.fetchval(f"SELECT count(*) FROM {name}")  # noqa: S608
        finally:
            await connection.close()
        return int(size), int(rows)


@contextlib.asynccontextmanager
async def sqlite_store(bench: Bench, part: str) -> AsyncIterator[SqliteStore]:
    """A new SQLite file in the server's schema, deleted (with its WAL) on exit."""
    path = bench.folder / f"{part}-{secrets.token_hex(4)}.sqlite3"
    try:
        await IdentityServer.migrate_database(path)
        yield SqliteStore(path)
    finally:
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def postgres_store(bench: Bench, part: str) -> AsyncIterator[PostgresStore]:
    """A schema of this part's own in the server's schema, dropped on exit."""
    assert bench.postgres is not None
    schema = f"mimi_bench_{part}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(bench.postgres)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        store = PostgresStore(bench.postgres, schema)
        await IdentityServer.migrate_database(store.database)
        yield store
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


def stores(bench: Bench, part: str) -> list[contextlib.AbstractAsyncContextManager[Store]]:
    """The stores a part runs on: SQLite, and PostgreSQL when it is reachable."""
    found: list[contextlib.AbstractAsyncContextManager[Store]] = [sqlite_store(bench, part)]
    if bench.postgres is not None:
        found.append(postgres_store(bench, part))
    return found


# Tables ------------------------------------------------------------------------------------


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], *notes: str) -> None:
    """One part's table: the first column left-aligned, the figures right-aligned."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    print(f"\n{title}")
    for row in (header, *rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("  ".join(cells).rstrip())
    for note in notes:
        print(note)
    sys.stdout.flush()


def ratio(mine: float, base: float) -> str:
    return f"{mine / base:.2f}x" if base else "-"


def rate(load: Load) -> str:
    flag = f" ({load.errors} errors)" if load.errors else ""
    return f"{load.rate:,.0f}{flag}"


def ms(value: float) -> str:
    return f"{value:.1f}"


def power(count: int) -> str:
    exponent = round(math.log10(count))
    return f"10^{exponent}" if 10**exponent == count else f"{count:,}"


# Parts -------------------------------------------------------------------------------------


async def part_speed(bench: Bench) -> None:
    """Each call beside the bare handler, interleaved, on each store."""
    rows: list[list[str]] = []
    goals = {"GET /health": 0.9, "log-in by anonymous id": 0.5, "anonymous sign-up": 0.5}
    async with contextlib.AsyncExitStack() as stack:
        opened: list[Store] = []
        for opening in stores(bench, "speed"):
            opened.append(await stack.enter_async_context(opening))
            await opened[-1].populate(bench.sizes.speed_users)
        each = (serve(bench, store.database, *LIMITS_OFF, *SWEEPER_OFF) for store in opened)
        bare_url, *urls = await stack.enter_async_context(running(bare(bench), *each))
        servers = list(zip(opened, urls, strict=True))
        await bench.warm_up(bare_url, health())
        for store, url in servers:
            await bench.warm_up(url, log_in(store.users))
        for store, url in servers:
            for call in (health(), log_in(store.users), sign_up()):
                mine, base = await bench.beside_bare(url, call, bare_url)
                goal = goals[call.name]
                met = "yes" if mine.rate >= goal * base.rate else "no"
                rows.append(
                    [
                        *(call.name, store.name, rate(mine), rate(base)),
                        *(ratio(mine.rate, base.rate), f"{goal:.2f}x", met),
                        *(ms(mine.p50), ms(mine.p99), ms(base.p99)),
                    ]
                )
    header = ["call, one worker", "database", "req/s", "bare req/s", "ratio", "goal", "met"]
    header += ["p50 ms", "p99 ms", "bare p99 ms"]
    table(
        "speed: requests/s beside a bare aiohttp JSON handler (same requests, interleaved)",
        header,
        rows,
        *missing(bench, postgres=True),
    )


async def grown(
    bench: Bench, store: Store, sizes: Sequence[int]
) -> AsyncGenerator[tuple[int, float, int, str]]:
    """For each size: (users, seconds writing them, bytes of the users table, server URL).

    On SQLite the users are written while no server runs (one transaction, one writer), and a
    server started after; on PostgreSQL, ``COPY`` runs beside one running server, as users
    arrive in a live system (``ANALYZE`` after it re-plans the server's prepared statements).
    """
    server = serve(bench, store.database, *LIMITS_OFF, *SWEEPER_OFF)
    if isinstance(store, PostgresStore):
        async with running(server) as (url,):
            for size in sizes:
                took = await store.populate(size)
                yield size, took, (await store.footprint("users"))[0], url
        return
    for size in sizes:
        took = await store.populate(size)
        users_bytes, _ = await store.footprint("users")
        async with running(server) as (url,):
            yield size, took, users_bytes, url


async def part_users(bench: Bench, up_to: int | None) -> None:
    """Log-in against the number of users, each size beside the smallest.

    The bare handler is measured beside each size too (interleaved), so that the ratio of
    ratios cancels the machine's load drifting from one size to the next.
    """
    rows: list[list[str]] = []
    notes: list[str] = []
    async with running(bare(bench)) as (bare_url,):
        for opening in stores(bench, "users"):
            async with opening as store:
                sizes = bench.sizes.sqlite_users
                if store.name == "PostgreSQL":
                    sizes = bench.sizes.postgres_users
                sizes = tuple(size for size in sizes if up_to is None or size <= up_to)
                first: tuple[Load, Load] | None = None
                figures = bench.users_plot.setdefault(store.name, [])
                async with contextlib.aclosing(grown(bench, store, sizes)) as growing:
                    async for size, took, users_bytes, url in growing:
                        call = log_in(store.users)
                        await bench.warm_up(url, call)
                        mine, base = await bench.beside_bare(url, call, bare_url)
                        first = first or (mine, base)
                        at, bare_at = first
                        figures.append((size, mine))
                        rows.append(
                            [
                                *(store.name, power(size), rate(mine), f"{at.rate:,.0f}"),
                                ratio(mine.rate, at.rate),
                                ratio(mine.rate * bare_at.rate, at.rate * base.rate),
                                *(ms(mine.p50), ms(mine.p99), ms(at.p99)),
                                *(ratio(mine.p99, at.p99), f"{took:.1f}"),
                                f"{users_bytes / size:,.0f}",
                            ]
                        )
                sessions, count = await store.footprint("sessions")
                tokens, _ = await store.footprint("refresh_tokens")
                notes.append(
                    f"{store.name}: {(sessions + tokens) / max(count, 1):,.0f} bytes per session"
                    f" with its refresh token, indexes included ({count:,} sessions)"
                )
    smallest = power(bench.sizes.sqlite_users[0])
    header = ["database", "users", "req/s", f"at {smallest}", "ratio", "beside bare", "p50 ms"]
    header += ["p99 ms", f"p99 at {smallest}", "ratio", "added in s", "bytes/user"]
    table(
        f"users: log-in by anonymous id (a random user of all) against users, beside {smallest}",
        header,
        rows,
        "(beside bare: the ratio of req/s/bare req/s to the same at the smallest size, each bare"
        " figure measured interleaved with its own; bytes/user: the users table with its"
        " indexes, over the users)",
        *notes,
        *missing(bench, postgres=True),
    )


async def part_workers(bench: Bench) -> None:
    """Requests/s against workers on PostgreSQL with Redis limits, beside bare and 1 worker."""
    if bench.postgres is None or bench.redis is None:
        table("workers: skipped", ["why"], [], *missing(bench, postgres=True, redis=True))
        return
    prefix = f"mimi-bench-{secrets.token_hex(4)}"
    limits = f"{bench.redis}{'&' if '?' in bench.redis else '?'}key_prefix={prefix}"
    options = ("--rate-limit-storage", limits, "--max-anonymous-sign-ups-per-hour", "1000000000")
    rows: list[list[str]] = []
    one: dict[str, float] = {}
    try:
        async with postgres_store(bench, "workers") as store:
            await store.populate(bench.sizes.workers_users)
            for workers in bench.sizes.workers:
                server = serve(bench, store.database, *options, *SWEEPER_OFF, workers=workers)
                async with running(bare(bench, workers), server) as (bare_url, url):
                    # Time for every worker to open its pool, then a warm-up of each.
                    await asyncio.sleep(bench.sizes.warm_up * (workers - 1))  # 0 in --quick
                    await bench.warm_up(bare_url, log_in(store.users).at(""))
                    await bench.warm_up(url, log_in(store.users))
                    loads: dict[str, list[Load]] = {}
                    for round_ in range(bench.sizes.rounds):
                        calls = [
                            ("bare aiohttp handler", bare_url, log_in(store.users).at("")),
                            ("log-in by anonymous id", url, log_in(store.users)),
                            ("anonymous sign-up", url, sign_up()),
                        ]
                        for name, target, call in calls[:: -1 if round_ % 2 else 1]:
                            loads.setdefault(name, []).append(await bench.window(target, call))
                figures = {name: median(each) for name, each in loads.items()}
                bare_rate = figures["bare aiohttp handler"].rate
                for name, figure in figures.items():
                    one.setdefault(name, figure.rate)
                    bench.workers_plot.setdefault(name, []).append((workers, figure.rate))
                    rows.append(
                        [
                            *(str(workers), name, rate(figure), f"{bare_rate:,.0f}"),
                            *(ratio(figure.rate, bare_rate), f"{one[name]:,.0f}"),
                            *(ratio(figure.rate, one[name]), ms(figure.p50), ms(figure.p99)),
                        ]
                    )
    finally:
        await reset_counters(bench.redis, prefix)
    header = ["workers", "call", "req/s", "bare req/s", "ratio", "1 worker", "ratio"]
    header += ["p50 ms", "p99 ms"]
    table(
        "workers: PostgreSQL, limits on with counters in Redis, beside bare gunicorn workers"
        " and 1 worker",
        header,
        rows,
        f"({os.cpu_count()} cores; the load generator and PostgreSQL share them with the workers)",
    )


async def reset_counters(redis: str, prefix: str) -> None:
    """Delete the rate-limit counters the servers kept under ``prefix``."""
    from limits.aio.storage import Storage
    from limits.storage import storage_from_string

    storage = storage_from_string(f"async+{redis}", key_prefix=prefix)
    if isinstance(storage, Storage):
        await storage.reset()


async def part_disk(bench: Bench) -> None:
    """The WAL while load runs, and live bytes per user after N, 2N, 4N log-ins (SQLite)."""
    sizes = bench.sizes
    async with sqlite_store(bench, "disk") as store:
        await store.populate(sizes.disk_users)
        page_size = sqlite_pragma(store.path, "page_size")
        checkpoint_at = 1000 * page_size  # SQLite's default wal_autocheckpoint, in bytes
        server = serve(
            bench,
            store.database,
            *LIMITS_OFF,
            *("--sweep-interval", str(sizes.sweep_interval)),
            *("--session-idle-timeout", str(sizes.idle_timeout)),
            *("--access-token-ttl", str(sizes.idle_timeout / 2)),  # must be shorter
            log_level="info",  # the sweeper logs each sweep
        )
        wal = store.path.with_name(store.path.name + "-wal")
        samples: list[int] = []

        async def sample() -> None:
            while True:
                with contextlib.suppress(FileNotFoundError):
                    samples.append(wal.stat().st_size)
                await asyncio.sleep(0.1)

        done = 0
        after: list[tuple[int, int, int, int]] = []  # log-ins, live bytes, file bytes, sessions
        async with running(server) as (url,):
            sampler = asyncio.create_task(sample())
            try:
                for phase in (sizes.disk_phase, sizes.disk_phase, 2 * sizes.disk_phase):
                    done += (await bench.window(url, log_in(store.users), phase)).requests
                    live, file = live_bytes(store.path), store.path.stat().st_size
                    after.append((done, live, file, sqlite_count(store.path, "sessions")))
            finally:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
        said = server.log.read_text(errors="replace")
        left = sqlite_count(store.path, "sessions")
    users = sizes.disk_users
    largest, middle = max(samples, default=0), int(statistics.median(samples or [0]))
    rows = [
        [f"WAL, largest of {len(samples)} samples while load ran", f"{largest:,}"],
        ["WAL, median sample", f"{middle:,}"],
    ]
    for row, figure in zip(rows, (largest, middle), strict=True):
        row += [f"{checkpoint_at:,}", ratio(figure, checkpoint_at)]
    first = after[0]
    for times, (count, live, _, sessions) in zip(("N", "2N", "4N"), after, strict=True):
        label = f"live bytes per user after {times} = {count:,} log-ins ({sessions:,} sessions)"
        rows.append(
            [label, f"{live / users:,.0f}", f"{first[1] / users:,.0f}", ratio(live, first[1])]
        )
    last = after[-1][2]
    label = "database file (no WAL) per user after 4N"
    rows.append([label, f"{last / users:,.0f}", f"{first[2] / users:,.0f}", ratio(last, first[2])])
    table(
        f"disk: SQLite under sustained log-ins, {users:,} users, sweeper every"
        f" {sizes.sweep_interval:g} s, sessions idle-expire after {sizes.idle_timeout:g} s",
        ["row", "figure", "baseline", "ratio"],
        rows,
        "(baselines: WAL beside the auto-checkpoint size, 1000 pages; per user beside after N)",
        f"sweeps: {said.count('retention.swept')}, failed: {said.count('retention.sweep_failed')};"
        f" sessions left at the end: {left:,}",
    )


def sqlite_pragma(path: Path, name: str) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute(f"PRAGMA {name}").fetchone()[0])


def sqlite_count(path: Path, table_name: str) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute(f"SELECT count(*) FROM {table_name}").fetchone()[0])  # noqa: S608


def live_bytes(path: Path) -> int:
    """Pages in use (all minus free) times the page size, as a reader sees the database."""
    with contextlib.closing(sqlite3.connect(path)) as db:

        def pragma(name: str) -> int:
            return int(db.execute(f"PRAGMA {name}").fetchone()[0])

        return (pragma("page_count") - pragma("freelist_count")) * pragma("page_size")


def missing(bench: Bench, *, postgres: bool = False, redis: bool = False) -> list[str]:
    """Notes for the rows a part skipped, with the reason."""
    notes = []
    if postgres and bench.postgres is None:
        notes.append(f"(PostgreSQL rows skipped: {bench.postgres_missing})")
    if redis and bench.redis is None:
        notes.append(f"(skipped without Redis: {bench.redis_missing})")
    return notes


# Plots -------------------------------------------------------------------------------------


def plot(bench: Bench, folder: Path) -> list[Path]:
    """requests/s and p99 against users (log x), and requests/s against workers, as PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\nplots: skipped, matplotlib is not installed (pip install -e '.[bench]')")
        return []
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if bench.users_plot:
        figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        for store, points in bench.users_plot.items():
            users = [count for count, _ in points]
            left.plot(users, [load.rate for _, load in points], marker="o", label=store)
            right.plot(users, [load.p99 for _, load in points], marker="o", label=store)
        for axes, label in ((left, "log-ins/s"), (right, "p99 latency, ms")):
            axes.set_xscale("log")
            axes.set_xlabel("users")
            axes.set_ylabel(label)
            axes.set_ylim(bottom=0)
            axes.grid(True, which="both", alpha=0.3)
            axes.legend()
        figure.suptitle(f"Log-in by anonymous id, one worker, {bench.load.name}\n{bench.run}")
        figure.tight_layout()
        written.append(folder / "server-users.png")
        figure.savefig(written[-1], dpi=100)
        plt.close(figure)
    if bench.workers_plot:
        figure, axes = plt.subplots(figsize=(6, 4))
        for name, worker_points in bench.workers_plot.items():
            counts = [count for count, _ in worker_points]
            axes.plot(counts, [each for _, each in worker_points], marker="o", label=name)
        axes.set_xlabel("workers")
        axes.set_xticks(
            sorted({count for points in bench.workers_plot.values() for count, _ in points})
        )
        axes.set_ylabel("requests/s")
        axes.set_yscale("log")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
        axes.set_title(f"PostgreSQL, Redis limits, {bench.load.name}\n{bench.run}")
        figure.tight_layout()
        written.append(folder / "server-workers.png")
        figure.savefig(written[-1], dpi=100)
        plt.close(figure)
    return written


# Main --------------------------------------------------------------------------------------


async def postgres_problem(url: str) -> tuple[str | None, str]:
    """(None, why) if no PostgreSQL answers at ``url``, else (its version, "")."""
    try:
        connection = await asyncpg.connect(url, timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        return None, f"no PostgreSQL at {url} ({type(error).__name__})"
    try:
        return str(await connection.fetchval("SHOW server_version")), ""
    finally:
        await connection.close()


async def redis_problem(url: str) -> str:
    """Why no Redis answers at ``url``, or ""."""
    from limits.aio.storage import Storage
    from limits.storage import storage_from_string

    try:
        storage = storage_from_string(f"async+{url}")
        if isinstance(storage, Storage) and await asyncio.wait_for(storage.check(), 5):
            return ""
    except Exception as error:  # any failure to reach it means: skip its rows
        return f"no Redis at {url} ({type(error).__name__})"
    return f"no Redis at {url}"


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=SUMMARY)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a second a figure")
    parser.add_argument("--parts", default=",".join(PARTS), help="of: " + ", ".join(PARTS))
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--plots", type=Path, help="where the PNGs go (default docs/; --quick none)"
    )
    parser.add_argument("--load", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, help="rounds per figure (3; --quick 1)")
    parser.add_argument("--seconds", type=float, help="seconds per window (5; --quick 0.2)")
    parser.add_argument("--users-up-to", type=int, help="largest user count of the users part")
    args = parser.parse_args(argv)
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    sizes = QUICK if args.quick else FULL
    sizes = dataclasses.replace(
        sizes, rounds=args.rounds or sizes.rounds, seconds=args.seconds or sizes.seconds
    )
    plots = args.plots if args.plots is not None else (None if args.quick else DOCS)
    began = time.perf_counter()
    version, postgres_missing = await postgres_problem(args.postgres)
    redis_missing = await redis_problem(args.redis) if "workers" in parts else ""
    with tempfile.TemporaryDirectory(prefix="mimi-bench-") as directory:
        folder = Path(directory)
        wrk = shutil.which("wrk")
        if args.load == "wrk" and wrk is None:
            parser.error("--load wrk: wrk is not on PATH (apt-get install wrk)")
        load: LoadGenerator
        if wrk is not None and args.load != "python":
            load = Wrk(wrk, folder)
            await load.describe()
        else:
            load = PythonLoad()
        bench = Bench(
            sizes=sizes,
            load=load,
            connections=args.connections,
            folder=folder,
            postgres=None if version is None else args.postgres,
            postgres_missing=postgres_missing,
            redis=None if redis_missing else args.redis,
            redis_missing=redis_missing,
            run=f"{os.cpu_count()} cores, {sizes.rounds}x{sizes.seconds:g} s a figure,"
            f" load average {os.getloadavg()[0]:.1f}",
        )
        print(
            f"load generator: {load.name}, 1 thread, {args.connections} connections;"
            f" {sizes.rounds} round(s) of {sizes.seconds:g} s a figure"
            f"\nPython {platform.python_version()}, SQLite {sqlite3.sqlite_version},"
            f" PostgreSQL {version or '-'}, {os.cpu_count()} cores,"
            f" load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        for part in parts:
            started = time.perf_counter()
            if part == "speed":
                await part_speed(bench)
            elif part == "users":
                await part_users(bench, args.users_up_to)
            elif part == "workers":
                await part_workers(bench)
            else:
                await part_disk(bench)
            print(f"({part}: {time.perf_counter() - started:.0f} s)", flush=True)
    if plots is not None:
        for path in plot(bench, plots):
            print(f"plot: {path}")
    print(f"\n{time.perf_counter() - began:.0f} s, load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
