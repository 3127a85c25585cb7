"""The rate-limit storage: closed when the server stops (a server started and stopped again and
again leaves no Redis connection behind), checked at start, and a storage lost while serving
answers 503 rather than 500. Over the real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import secrets
import warnings

import pytest
from limits.aio.storage import MemoryStorage

from mimi_reactive._server import _limits
from mimi_reactive._server._limits import (
    RateLimit,
    RateLimiter,
    RateLimitStorageError,
    close_storage,
    describe_storage,
    limiter_storage,
)
from mimi_reactive._server._stores import describe
from mimi_reactive.server import IdentityServer, ServerSettings, ServerStartError

from .conftest import CLIENT_ID, REDIS
from .server_helpers import calling, run_command
from .tcp_gate import TcpGate
from .test_server_logs import capturing_logger, logged

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
            async with calling(CLIENT_ID, client_secret, settings=settings) as (_, caller):
                await caller.anonymous_user()
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


# Port 1 (tcpmux) is closed on any machine these tests run on: nothing answers there.
CLOSED = "redis://:hunter2-password@127.0.0.1:1/0?key_prefix=mimi"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (CLOSED, "redis://127.0.0.1:1/0"),
        ("redis://user:pw@host:6379", "redis://user@host:6379"),
        ("rediss://:pw@host:6380/2?password=other", "rediss://host:6380/2"),
        (
            "redis+sentinel://:pw@a:26379,b:26379/primary",
            "redis+sentinel://a:26379,b:26379/primary",
        ),
        ("redis+unix:///run/redis.sock?password=pw", "redis+unix:///run/redis.sock"),
        ("memory://", "memory://"),
        ("no-scheme:pw@host", "a rate-limit storage URL that cannot be parsed"),
        # An @ past a / ? or #: in a password URL parsers would cut short, or in a query.
        ("redis://:hunter2/pw@host:6379/0", "redis://..."),
        ("redis://host:6379/0?password=hunter2@pw", "redis://..."),
    ],
)
def test_a_storage_url_is_shown_without_its_password(url: str, shown: str) -> None:
    """describe_storage keeps the scheme, user, hosts and path; never a password or query."""
    assert describe_storage(url) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://mimi:pw@[::1]:5432/db?password=pw2", "postgresql://mimi@[::1]:5432/db"),
        ("postgres://mimi:pw@a:5432,b:5433/db", "postgres://mimi@a:5432,b:5433/db"),
        ("postgresql://mimi:pw/2@a/db", "postgresql://..."),
    ],
)
def test_a_database_url_is_shown_by_the_same_rule(url: str, shown: str) -> None:
    """The database's URL in messages is shown as the storage's is: IPv6 and several hosts as
    written, no password, no query."""
    assert describe(url) == shown


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("bogus://u:SEKRIT1@x", "URL bogus://u@x: unknown scheme 'bogus'"),
        ("redis://u:SEKRIT1@127.0.0.1:notaport/0", "URL redis://u@127.0.0.1:notaport/0: its"),
        ("redis://u:SEKRIT1@[::1/0", "its scheme, hosts, port or options cannot be read"),
        ("redis://:SEKRIT1/pw@host:x/0", "URL redis://...: its scheme, hosts"),
        ("redis//host?password=SEKRIT1", "its scheme, hosts, port or options cannot be read"),
        ("no-scheme:SEKRIT1@host", "cannot be parsed: unknown scheme 'no-scheme'"),
    ],
)
def test_an_unusable_storage_url_is_refused_without_its_password(url: str, says: str) -> None:
    """A storage URL the limits library cannot use is refused in our own words, which name
    the URL as describe_storage shows it and never repeat its password."""
    with pytest.raises(ValueError, match=r"^unusable rate-limit storage URL ") as refused:
        limiter_storage(url)
    assert says in str(refused.value)
    assert "SEKRIT1" not in str(refused.value)


async def test_an_unreachable_storage_refuses_start(client_secret: str) -> None:
    """A server whose rate-limit storage does not answer does not start: one line naming the
    storage, without its password."""
    settings = ServerSettings(rate_limit_storage=CLOSED)
    server = IdentityServer(client_id=CLIENT_ID, client_secret=client_secret, settings=settings)
    with pytest.raises(ServerStartError) as refused:
        await server.start()
    assert str(refused.value) == "the rate-limit storage redis://127.0.0.1:1/0 does not answer"


async def test_serve_refuses_an_unreachable_storage_before_serving(client_secret: str) -> None:
    """``serve`` exits 1 with one line, before printing where it serves, and no password."""
    status, out, err = await run_command(
        # With '=': a secret may start with '-', which argparse takes for an option.
        *("serve", "--port", "0", "--client-id", CLIENT_ID, f"--client-secret={client_secret}"),
        *("--rate-limit-storage", CLOSED),
    )
    assert (status, out) == (1, "")
    assert (
        err == "mimi-reactive serve: the rate-limit storage redis://127.0.0.1:1/0 does not answer\n"
    )


async def test_a_storage_lost_while_serving_answers_503_until_it_is_back(
    redis_url: str, client_secret: str
) -> None:
    """With Redis cut off mid-run, a limited call answers 503 temporarily_unavailable with a
    Retry-After, logged at warning naming the storage; once Redis is back, calls succeed."""
    gate = TcpGate(*REDIS)
    await gate.start()
    url = redis_url.replace(f"{REDIS[0]}:{REDIS[1]}", gate.host)
    captured, logger = capturing_logger()
    settings = ServerSettings(rate_limit_storage=url)
    try:
        async with calling(CLIENT_ID, client_secret, settings=settings, logger=logger) as (
            _,
            caller,
        ):
            await caller.anonymous_user()
            gate.shut()
            status, body, headers = await caller.post("/v1/anonymous-users")
            assert (status, body["error"]["code"]) == (503, "temporarily_unavailable")
            assert headers["Retry-After"] == "5"
            failed = await logged(captured, "rate_limit.storage_failed")
            assert failed["log_level"] == "warning"
            assert failed["storage"] == describe_storage(url) == f"redis://{gate.host}/0"
            assert not [e for e in captured.entries if e["event"] == "http.internal_error"]
            gate.reopen()
            await caller.anonymous_user()
    finally:
        await gate.close()


@pytest.mark.parametrize("call", ["hit", "ready"])
async def test_a_storage_connection_reset_is_the_storage_failing(call: str, redis_url: str) -> None:
    """Redis connections reset (RST) while a count or a readiness read is on its way, which
    coredis raises as the OS's ConnectionResetError, fail as the storage failing
    (RateLimitStorageError naming it, so the server logs rate_limit.storage_failed, not
    database.unavailable); once Redis answers again, counts succeed."""
    gate = TcpGate(*REDIS)
    await gate.start()
    url = redis_url.replace(f"{REDIS[0]}:{REDIS[1]}", gate.host)
    limiter = RateLimiter.from_url(url, lambda: 1_000_000.0)
    limit = RateLimit("reset", 5, 60)
    try:
        await limiter.hit(limit, "192.0.2.1")  # a connection to reset
        gate.reset()
        with pytest.raises(RateLimitStorageError) as failed:
            await (limiter.ready() if call == "ready" else limiter.hit(limit, "192.0.2.1"))
        assert (failed.value.storage, failed.value.timed_out) == (describe_storage(url), False)
        gate.reopen()
        await limiter.hit(limit, "192.0.2.1")
    finally:
        await limiter.close()
        await gate.close()


async def test_a_start_check_cancelled_while_redis_is_silent_raises_the_cancellation() -> None:
    """Cancelled (a Ctrl-C) while it waits on a Redis that accepted and never answers, the
    start check raises CancelledError, not "does not answer": the limits library's own check
    takes any exception, a cancellation too, for no answer."""
    gate = TcpGate(*REDIS)
    await gate.start()
    gate.pause()
    limiter = RateLimiter.from_url(f"redis://{gate.host}/0", lambda: 1_000_000.0)
    try:
        check = asyncio.create_task(limiter.check())
        async with asyncio.timeout(5):
            await gate.connected.wait()  # the check is waiting on the silent Redis now
        check.cancel()
        with pytest.raises(asyncio.CancelledError):
            await check
    finally:
        await limiter.close()
        await gate.close()


async def test_a_silent_redis_past_the_start_check_timeout_does_not_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Redis that never answers within the start check's timeout (made short here) refuses
    start with "does not answer": the timeout's own cancellation is not a Ctrl-C."""
    monkeypatch.setattr(_limits, "_CHECK_TIMEOUT", 0.1)
    gate = TcpGate(*REDIS)
    await gate.start()
    gate.pause()
    limiter = RateLimiter.from_url(f"redis://{gate.host}/0", lambda: 1_000_000.0)
    try:
        with pytest.raises(ValueError, match=f"^the rate-limit storage redis://{gate.host}/0 does"):
            await limiter.check()
        assert gate.connected.is_set()
    finally:
        await limiter.close()
        await gate.close()


async def test_overlapping_start_checks_leave_the_warning_filters_as_they_were() -> None:
    """Two start checks at once on a database Redis does not have (coredis warns as it
    connects) both refuse it, the warning escapes neither (pytest makes it an error), and
    the process's warning filters are as before but for the one narrow filter of that
    warning: none is swapped while a check waits, nor left behind by one."""
    message, category, module = _limits.MODULE_LIST_FILTER
    narrow = ("ignore", re.compile(message, re.I), category, re.compile(module), 0)
    before = list(warnings.filters)
    limiters = [
        RateLimiter.from_url(f"redis://{REDIS[0]}:{REDIS[1]}/99", lambda: 1_000_000.0)
        for _ in range(2)
    ]
    try:
        refused = await asyncio.gather(
            *(limiter.check() for limiter in limiters), return_exceptions=True
        )
    finally:
        for limiter in limiters:
            await limiter.close()
    assert [str(error) for error in refused] == [
        f"the rate-limit storage redis://{REDIS[0]}:{REDIS[1]}/99 has no database of its URL's"
        " number (Redis has 16 by default, numbered 0 to 15: see its databases setting)"
    ] * 2
    assert warnings.filters == (before if narrow in before else [narrow, *before])
