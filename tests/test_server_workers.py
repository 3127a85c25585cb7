"""Several server processes on one PostgreSQL database (and one Redis for the limits): what one
process does, the other sees. Real `serve` processes, a real PostgreSQL and a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import jwt
import pytest

from mimi_reactive.verify import AccessTokenVerifier

from .raw_http import send_raw
from .server_helpers import Caller, Served, serving
from .test_cli import UNRESOLVABLE, occupied_port

CLIENT = "workers-app"
SECRET = secrets.token_urlsafe(32)
WORKERS = ("--workers", "2")


@contextlib.asynccontextmanager
async def serve(*args: str) -> AsyncIterator[Served]:
    """`mimi-reactive serve ARGS` on a port the OS picks, for client CLIENT; it must exit 0."""
    async with serving(
        *("serve", "--port", "0", "--client-id", CLIENT, *args),
        environment={**os.environ, "MIMI_CLIENT_SECRET": SECRET},
    ) as served:
        yield served
    assert served.returncode == 0, served.stderr.decode()


@pytest.fixture
async def pair(postgres_url: str, redis_url: str) -> AsyncIterator[tuple[Caller, Caller]]:
    """Two separate `serve` processes on one PostgreSQL schema and one Redis, as callers."""
    options = (
        "--database",
        postgres_url,
        "--rate-limit-storage",
        redis_url,
        "--refresh-reuse-interval",
        "0",
        "--max-failed-log-ins-per-minute",
        "3",
        "--issuer",
        "http://identity.test",
    )
    async with (
        serve(*options) as first,
        serve(*options) as second,
        aiohttp.ClientSession() as http,
    ):
        yield Caller(http, first.url, CLIENT, SECRET), Caller(http, second.url, CLIENT, SECRET)


async def test_a_user_signed_up_on_one_logs_in_by_id_on_the_other(
    pair: tuple[Caller, Caller],
) -> None:
    """An anonymous user created by one process logs in by its id on the other."""
    one, other = pair
    created = await one.anonymous_user()
    status, logged_in = await other.log_in_anonymously(created["user"]["anonymous_id"])
    assert (status, logged_in["user"]["id"]) == (200, created["user"]["id"])


async def test_a_refresh_token_rotates_on_the_other_and_its_reuse_is_seen_back(
    pair: tuple[Caller, Caller],
) -> None:
    """A refresh token issued by one process rotates on the other; presenting it again on the
    first revokes the session, so the other's new token stops working too."""
    one, other = pair
    session = (await one.anonymous_user())["session"]
    status, rotated = await other.refresh(session["refresh_token"])
    assert status == 200
    status, reused = await one.refresh(session["refresh_token"])
    assert (status, reused["error"]["code"]) == (400, "invalid_grant")
    status, after = await other.refresh(rotated["session"]["refresh_token"])
    assert (status, after["error"]["reason"]) == (400, "reused")


async def test_deletion_on_one_ends_the_sessions_the_other_serves(
    pair: tuple[Caller, Caller],
) -> None:
    """Deleting the user through one process ends its session on the other: refresh refused,
    introspection inactive, the anonymous id unknown."""
    one, other = pair
    created = await one.anonymous_user()
    anonymous_id = created["user"]["anonymous_id"]
    status, elsewhere = await other.log_in_anonymously(anonymous_id)
    assert status == 200
    deletion = {"access_token": created["session"]["access_token"]}
    assert (await one.post("/v1/users/delete", deletion))[0] == 200
    assert (await other.refresh(elsewhere["session"]["refresh_token"]))[0] == 400
    _, introspected, _ = await other.post(
        "/v1/token/introspect", {"token": elsewhere["session"]["access_token"]}
    )
    assert introspected == {"active": False}
    assert (await other.log_in_anonymously(anonymous_id))[0] == 400


async def test_log_out_everywhere_on_one_ends_the_sessions_the_other_serves(
    pair: tuple[Caller, Caller],
) -> None:
    """Log out everywhere through one process revokes the session opened on the other."""
    one, other = pair
    created = await one.anonymous_user()
    status, elsewhere = await other.log_in_anonymously(created["user"]["anonymous_id"])
    assert status == 200
    everywhere = {"access_token": created["session"]["access_token"]}
    status, answer, _ = await one.post("/v1/sessions/revoke-all", everywhere)
    assert (status, answer) == (200, {"revoked_sessions": 2})
    status, refused = await other.refresh(elsewhere["session"]["refresh_token"])
    assert (status, refused["error"]["message"]) == (400, "the session was revoked")


async def test_failed_log_ins_count_across_both(pair: tuple[Caller, Caller]) -> None:
    """Failed log-ins on both processes count against one limit (3 a minute) in Redis."""
    one, other = pair
    right = (await one.anonymous_user())["user"]["anonymous_id"]
    wrong = "w" * 43
    await clear_of_a_minute_boundary()
    for caller in (one, other, one):
        assert (await caller.log_in_anonymously(wrong))[0] == 400
    status, refused = await other.log_in_anonymously(wrong)
    assert (status, refused["error"]["code"]) == (429, "rate_limited")
    assert (await one.log_in_anonymously(right))[0] == 429


async def clear_of_a_minute_boundary(margin: float = 15.0) -> None:
    """Wait, if need be, until a new minute has ``margin`` seconds left: the limiter counts in
    windows of the real minute, which the serve processes' clock cannot be told to avoid, and
    a count that crosses one starts again."""
    left = 60.0 - time.time() % 60.0
    if left < margin:
        await asyncio.sleep(left + 0.1)  # until the next window has begun


async def test_both_publish_the_key_both_sign_with(pair: tuple[Caller, Caller]) -> None:
    """Both processes sign with one key kept in the database: a token from either verifies
    against the other's JWKS."""
    one, other = pair
    tokens = [(await each.anonymous_user())["session"]["access_token"] for each in pair]
    assert len({jwt.get_unverified_header(token)["kid"] for token in tokens}) == 1
    for caller, token in ((other, tokens[0]), (one, tokens[1])):
        verifier = AccessTokenVerifier("http://identity.test")
        verifier._jwks_url = caller.url + "/.well-known/jwks.json"  # the issuer is a name
        async with verifier:
            assert (await verifier.verify(token)).client_id == CLIENT


def children(pid: int) -> list[int]:
    """The ids of the processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


async def test_workers_run_under_gunicorn_and_share_the_database(
    postgres_url: str, redis_url: str
) -> None:
    """`serve --workers 2` runs two worker processes on one port; what many requests create
    through it logs in through it, whichever worker answers; SIGTERM stops them all."""
    options = ("--database", postgres_url, "--rate-limit-storage", redis_url)
    async with serve("--workers", "2", *options) as workers, aiohttp.ClientSession() as http:
        caller = Caller(http, workers.url, CLIENT, SECRET)
        created = [await caller.anonymous_user() for _ in range(10)]
        for each in created:
            status, _ = await caller.log_in_anonymously(each["user"]["anonymous_id"])
            assert status == 200
        async with asyncio.timeout(30):
            while len(children(workers.process.pid)) < 2:  # noqa: ASYNC110 (other processes)
                await asyncio.sleep(0.05)  # polling a condition, bounded by the timeout
        assert len(children(workers.process.pid)) == 2
    stderr = workers.stderr.decode()
    assert "Booting worker" in stderr or stderr == ""
    assert SECRET not in stderr


async def test_workers_stop_on_sighup_as_on_sigterm(postgres_url: str, redis_url: str) -> None:
    """`serve --workers 2` stops on SIGHUP (a closed terminal), as `serve` in one process does:
    its workers end, and it exits 0, where gunicorn's own SIGHUP would boot new workers."""
    options = ("--database", postgres_url, "--rate-limit-storage", redis_url)
    async with serve(*WORKERS, *options) as workers, asyncio.timeout(60):
        while len(children(workers.process.pid)) < 2:  # noqa: ASYNC110 (other processes)
            await asyncio.sleep(0.05)  # polling a condition, bounded by the timeout
        booted = children(workers.process.pid)
        workers.process.send_signal(signal.SIGHUP)
        assert await workers.process.wait() == 0
    assert not [pid for pid in booted if Path(f"/proc/{pid}").exists()]


HEALTH = b"GET /health HTTP/1.1\r\nHost: identity.test\r\nConnection: close\r\n\r\n"
# A stop with nothing to wait for takes a second or two; one that waits for a connection that
# will never be read takes the workers' whole shutdown timeout (9.5 s of gunicorn's 10).
STOPS_WITHIN = 7.0


async def keep_connecting(
    url: str, signalled: asyncio.Event, stopped: asyncio.Event, statuses: list[int | None]
) -> None:
    """Open connection after connection to ``url``, one request each, as a load balancer goes
    on sending clients while a server stops, until one is refused after ``signalled`` (the
    server was told to stop: its port has closed, and more tries would only load the CPU the
    stop is timed on), or ``stopped``; each answer's status (None for a connection closed
    unanswered) into ``statuses``."""
    while not stopped.is_set():
        try:
            answer = await send_raw(url, HEALTH)
        except ConnectionRefusedError:
            if signalled.is_set():
                return
            await asyncio.sleep(0.01)
            continue
        except OSError:  # reset: a connection cut as the port closed
            await asyncio.sleep(0.01)
            continue
        statuses.append(None if answer is None else answer.status)


async def test_workers_stop_at_once_while_connections_keep_coming(
    postgres_url: str, redis_url: str
) -> None:
    """`serve --workers 3` taking new connections all the time stops on SIGTERM within seconds,
    exit status 0, answering none 5xx: a connection made as a worker stops is closed, not
    waited for until the graceful timeout."""
    options = ("--database", postgres_url, "--rate-limit-storage", redis_url)
    signalled, stopped, statuses = asyncio.Event(), asyncio.Event(), list[int | None]()
    # Each worker's stop is a chance for a connection to be made as it closes the idle ones.
    async with serve("--workers", "3", *options) as workers:
        clients = [
            asyncio.ensure_future(keep_connecting(workers.url, signalled, stopped, statuses))
            for _ in range(96)
        ]
        try:
            async with asyncio.timeout(60):
                while statuses.count(200) < 500:  # noqa: ASYNC110 (other processes)
                    await asyncio.sleep(0.05)  # polling a condition, bounded by the timeout
            workers.process.send_signal(signal.SIGTERM)
            signalled.set()
            began = time.monotonic()
            assert await workers.process.wait() == 0
            took = time.monotonic() - began
        finally:
            stopped.set()
            await asyncio.gather(*clients)
    assert took < STOPS_WITHIN
    assert set(statuses) <= {200, None}


@pytest.mark.parametrize("runtime_dir", [True, False])
async def test_workers_open_no_control_socket(
    runtime_dir: bool, postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    """`serve --workers 2` opens no gunicorn control socket, neither in $XDG_RUNTIME_DIR nor
    under ~/.gunicorn: nothing there can add or stop workers, nor is shared by deployments."""
    home, runtime = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    runtime.mkdir()
    environment = {**os.environ, "MIMI_CLIENT_SECRET": SECRET, "HOME": str(home)}
    environment.pop("XDG_RUNTIME_DIR", None)
    if runtime_dir:
        environment["XDG_RUNTIME_DIR"] = str(runtime)
    options = ("--database", postgres_url, "--rate-limit-storage", redis_url)
    arguments = ("serve", "--port", "0", "--client-id", CLIENT, *WORKERS, *options)
    async with serving(*arguments, "--log-level", "info", environment=environment) as workers:
        async with asyncio.timeout(30):
            while len(children(workers.process.pid)) < 2:  # noqa: ASYNC110 (other processes)
                await asyncio.sleep(0.05)  # polling a condition, bounded by the timeout
    # gunicorn opens it before it reads its first signal, and stopping it waits for it: had it
    # been opened, it was logged, and ~/.gunicorn (made for it) outlives it.
    stderr = workers.stderr.decode()
    assert workers.returncode == 0, stderr
    assert "Booting worker" in stderr
    assert "Control socket" not in stderr
    assert list(home.iterdir()) == []
    assert list(runtime.iterdir()) == []


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (("--database", "x.sqlite3"), "postgresql://"),
        (("--database", "postgresql://u:hunter2@127.0.0.1:1/db"), "--rate-limit-storage"),
    ],
)
def test_several_workers_are_refused_where_they_would_not_share(
    options: tuple[str, ...], named: str, tmp_path: Path
) -> None:
    """`--workers 2` on SQLite, or with per-process rate-limit counts, exits 2 with one line
    that says what to give instead (and never a password)."""
    done = subprocess.run(
        [sys.executable, "-m", "mimi_reactive", "serve", "--client-id", CLIENT, *WORKERS, *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "MIMI_CLIENT_SECRET": SECRET},
    )
    assert done.returncode == 2, done.stderr
    assert named in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "hunter2" not in done.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("case", ["busy-port", "unbindable-host", "unknown-host", "no-redis"])
async def test_workers_that_cannot_start_say_why_in_one_line_before_touching_the_database(
    case: str, postgres_url: str, redis_url: str
) -> None:
    """`serve --workers 2` that cannot listen or reach its rate-limit storage exits 1 within
    seconds with one line naming what failed (no password), and creates no table: the port and
    the storage are checked before the database, and before gunicorn starts."""
    holder, busy = occupied_port()
    options, named = {
        "busy-port": (["--port", str(busy)], f"127.0.0.1:{busy}"),
        "unbindable-host": (["--host", "192.0.2.1"], "192.0.2.1"),
        "unknown-host": (["--host", UNRESOLVABLE], UNRESOLVABLE),
        "no-redis": (["--rate-limit-storage", "redis://:hunter2@127.0.0.1:1/0"], "127.0.0.1:1"),
    }[case]
    if "--rate-limit-storage" not in options:
        options += ["--rate-limit-storage", redis_url]
    if "--port" not in options:
        options += ["--port", "0"]
    command = ["serve", "--client-id", CLIENT, *WORKERS, "--database", postgres_url, *options]
    with holder:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "mimi_reactive", *command],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "MIMI_CLIENT_SECRET": SECRET},
        )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("mimi-reactive serve: "), lines[0]
    assert named in lines[0]
    assert "hunter2" not in done.stderr
    assert done.stdout == ""
    connection = await asyncpg.connect(postgres_url.partition("?")[0])
    try:
        schema = postgres_url.partition("search_path=")[2]
        tables = await connection.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema
        )
    finally:
        await connection.close()
    assert tables == 0
