"""A rate-limit Redis that answers reads but refuses writes (a read-only replica after a
failover, a full Redis under ``noeviction``) fails closed: every limited call answers 503
whether its password, anonymous id or email was right, and ``GET /ready`` is 503, so guessing
never runs past the limit. Over a private ``redis-server`` each test starts on a free port,
since refusing writes takes ``REPLICAOF`` or ``CONFIG SET``."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mimi_reactive._server._readiness import READY_CACHE
from mimi_reactive.server import ServerSettings

from .conftest import CLIENT_ID
from .server_helpers import Caller, Clock, calling
from .test_server_readiness import probe

FAILURES = 3
VICTIM = {"email": "victim@example.test", "password": "correct horse battery"}


async def redis_send(port: int, *parts: str) -> bytes:
    """One command to the private Redis over a socket of its own; the first line answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = f"*{len(parts)}\r\n" + "".join(f"${len(p.encode())}\r\n{p}\r\n" for p in parts)
        writer.write(request.encode())
        await writer.drain()
        return (await reader.readline()).rstrip()
    finally:
        writer.close()
        await writer.wait_closed()


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(7) == b"+PONG\r\n"
    except OSError:
        return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[int]:
    """The port of a redis-server of this test's own (no persistence), stopped after it."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not on PATH: these tests refuse a private Redis's writes")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    process = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--maxmemory-policy", "noeviction", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not _answers_ping(port):
            assert process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not answer in 10 s"
            time.sleep(0.02)
        yield port
    finally:
        process.terminate()
        process.wait(10)


# How a Redis comes to refuse writes while still answering reads, and how it takes them again.
REFUSALS = {
    # A replica of a master that never answers: read-only, its data still served.
    "read_only_replica": (("REPLICAOF", "127.0.0.1", "1"), ("REPLICAOF", "NO", "ONE")),
    # Past maxmemory under noeviction (Redis's default policy): every write refused with OOM.
    "full_noeviction": (("CONFIG", "SET", "maxmemory", "1"), ("CONFIG", "SET", "maxmemory", "0")),
}

Requests = tuple[str, dict[str, Any], dict[str, Any]]
"""A route, a body with the right credential, and one with a wrong one."""


async def password_log_in(caller: Caller) -> Requests:
    status, body, _ = await caller.post("/v1/users", VICTIM)
    assert status == 201, body
    wrong = {**VICTIM, "password": "guess number one"}
    return "/v1/sessions", VICTIM, wrong


async def anonymous_log_in(caller: Caller) -> Requests:
    user = await caller.anonymous_user()
    wrong = {"anonymous_id": secrets.token_urlsafe(32)}
    return "/v1/sessions/anonymous", {"anonymous_id": user["user"]["anonymous_id"]}, wrong


async def sign_up_email(caller: Caller) -> Requests:
    status, body, _ = await caller.post("/v1/users", VICTIM)
    assert status == 201, body
    free = {**VICTIM, "email": "free@example.test"}
    return "/v1/users", free, VICTIM


async def promotion_email(caller: Caller) -> Requests:
    status, body, _ = await caller.post("/v1/users", VICTIM)
    assert status == 201, body
    right_user, wrong_user = await caller.anonymous_user(), await caller.anonymous_user()
    free = {**VICTIM, "email": "free@example.test"}
    right = {"access_token": right_user["session"]["access_token"], **free}
    wrong = {"access_token": wrong_user["session"]["access_token"], **VICTIM}
    return "/v1/users/promote", right, wrong


ROUTES: dict[str, Callable[[Caller], Awaitable[Requests]]] = {
    "password_log_in": password_log_in,
    "anonymous_log_in": anonymous_log_in,
    "sign_up_email": sign_up_email,
    "promotion_email": promotion_email,
}


def settings_on(port: int, clock: Clock) -> ServerSettings:
    """Only the failed log-in limit on (the sign-up limits count by writes of their own)."""
    return ServerSettings(
        clock=clock,
        rate_limit_storage=f"redis://127.0.0.1:{port}/0?key_prefix=mimi-writes",
        max_failed_log_ins_per_minute=FAILURES,
        max_anonymous_sign_ups_per_hour=0,
        max_credential_sign_ups_per_hour=0,
    )


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("refusal", REFUSALS)
async def test_a_redis_refusing_writes_answers_right_and_wrong_credentials_alike(
    private_redis: int, client_secret: str, route: str, refusal: str
) -> None:
    """While the rate-limit Redis answers reads but refuses writes, wrong credentials (many
    more than the limit) and the right one all answer 503 temporarily_unavailable with
    Retry-After, and /ready is 503; once it takes writes again the right one succeeds and
    wrong ones are counted up to 429."""
    refuse, restore = REFUSALS[refusal]
    clock = Clock()
    settings = settings_on(private_redis, clock)
    async with calling(CLIENT_ID, client_secret, settings=settings) as (_, caller):
        path, right, wrong = await ROUTES[route](caller)
        assert await redis_send(private_redis, *refuse) == b"+OK"
        answers = [await caller.post(path, wrong) for _ in range(FAILURES * 3)]
        answers.append(await caller.post(path, right))
        for status, body, headers in answers:
            assert (status, body["error"]["code"]) == (503, "temporarily_unavailable")
            assert headers["Retry-After"] == "5"
        assert (await probe(caller.url))[0] == 503
        assert await redis_send(private_redis, *restore) == b"+OK"
        clock.now += 1  # past the cached readiness answer
        assert (await probe(caller.url))[0] == 200
        status, body, _ = await caller.post(path, right)
        assert status in (200, 201), body
        statuses = [(await caller.post(path, wrong))[0] for _ in range(FAILURES + 1)]
        assert statuses[-1] == 429
        assert 429 not in statuses[:-1]


async def test_right_log_ins_are_taken_back_and_do_not_count(
    private_redis: int, client_secret: str
) -> None:
    """Each log-in counts as failed from its start, but one that succeeds is taken back: many
    more right log-ins than the limit all succeed, and the wrong ones after them are still
    allowed up to the limit."""
    settings = settings_on(private_redis, Clock())
    async with calling(CLIENT_ID, client_secret, settings=settings) as (_, caller):
        path, right, wrong = await password_log_in(caller)
        for _ in range(FAILURES * 3):
            status, body, _ = await caller.post(path, right)
            assert status == 200, body
        statuses = [(await caller.post(path, wrong))[0] for _ in range(FAILURES + 1)]
        assert statuses == [400] * FAILURES + [429]


async def incr_calls(port: int) -> int:
    """How many INCRBY commands the private Redis has run (a count, or a readiness write)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"INFO commandstats\r\n")
        await writer.drain()
        header = await reader.readline()
        info = (await reader.readexactly(int(header[1:]) + 2)).decode()
    finally:
        writer.close()
        await writer.wait_closed()
    for line in info.splitlines():
        if line.startswith("cmdstat_incrby:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


async def test_a_flood_of_ready_probes_costs_one_check_per_period(
    private_redis: int, client_secret: str
) -> None:
    """Fifty GET /ready at once are all answered 200 by one check (one write to the
    rate-limit storage), and the next check runs only once READY_CACHE has passed."""
    clock = Clock()
    settings = settings_on(private_redis, clock)
    async with calling(CLIENT_ID, client_secret, settings=settings) as (_, caller):
        before = await incr_calls(private_redis)
        answers = await asyncio.gather(*(probe(caller.url) for _ in range(50)))
        assert {answer[0] for answer in answers} == {200}
        assert await incr_calls(private_redis) == before + 1
        clock.now += READY_CACHE - 0.01
        assert (await probe(caller.url))[0] == 200
        assert await incr_calls(private_redis) == before + 1
        clock.now += 0.01
        assert (await probe(caller.url))[0] == 200
        assert await incr_calls(private_redis) == before + 2
