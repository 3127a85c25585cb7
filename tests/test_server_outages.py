"""A store that stops answering (a network partition: a ``TcpGate`` paused, bytes held and
nothing closed) bounds each request by ``storage_timeout``: 503 ``temporarily_unavailable``
with Retry-After and a warning, never a request left hanging, and calls succeed again once it
answers; ``GET /ready`` says so too, for the rate-limit storage while a limit is on. Over the
real Redis and PostgreSQL on loopback. PostgreSQL connections terminated under load (a
restart, a failover) are an outage too. Which store failures count as an outage (503) rather
than a bug (500)."""

from __future__ import annotations

import asyncio
import functools
import secrets
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from structlog.testing import LogCapture

from mimi_reactive._server._limits import describe_storage
from mimi_reactive._server._outages import is_outage
from mimi_reactive._server._readiness import READY_CACHE
from mimi_reactive._server._stores import describe as describe_database
from mimi_reactive.server import IdentityServer, ServerSettings, ServerStartError

from .conftest import CLIENT_ID, REDIS
from .server_helpers import Caller, Clock, calling, eventually
from .tcp_gate import TcpGate
from .test_server_logs import capturing_logger, logged
from .test_server_readiness import NOT_READY, probe

# It bounds the calls made before the partition and after it too (the pool's first connect,
# a migration's statements): long enough for those on two loaded cores, short enough to wait.
TIMEOUT = 2.0
# The bound a request must be answered within: the timeout on the store's call, and on
# PostgreSQL once more on giving the cut-off connection back (asyncpg), with ample room.
ANSWERED_WITHIN = 10 * TIMEOUT


@pytest.fixture
async def gate_to_redis() -> AsyncIterator[TcpGate]:
    """A gate in front of the test Redis."""
    gate = TcpGate(*REDIS)
    await gate.start()
    yield gate
    await gate.close()


async def answered_503(caller: Caller) -> None:
    """An anonymous sign-up answers 503 temporarily_unavailable with Retry-After: 5, within
    the bound."""
    async with asyncio.timeout(ANSWERED_WITHIN):
        status, body, headers = await caller.post("/v1/anonymous-users")
    assert (status, body["error"]["code"], headers.get("Retry-After")) == (
        503,
        "temporarily_unavailable",
        "5",
    )


def no_internal_error(captured: LogCapture) -> bool:
    return not [e for e in captured.entries if e["event"] == "http.internal_error"]


async def test_a_redis_that_stops_answering_gets_503_within_the_timeout(
    redis_url: str, client_secret: str, gate_to_redis: TcpGate
) -> None:
    """With the rate-limit Redis cut off by a partition, a limited call answers 503 with
    Retry-After within the bound, logged at warning with timed_out and the storage named
    without secrets; once Redis answers again, calls succeed."""
    url = redis_url.replace(f"{REDIS[0]}:{REDIS[1]}", gate_to_redis.host)
    captured, logger = capturing_logger()
    settings = ServerSettings(rate_limit_storage=url, storage_timeout=TIMEOUT)
    async with calling(CLIENT_ID, client_secret, settings=settings, logger=logger) as (_, call):
        await call.anonymous_user()
        gate_to_redis.pause()
        await answered_503(call)
        failed = await logged(captured, "rate_limit.storage_failed")
        assert (failed["log_level"], failed["timed_out"]) == ("warning", True)
        assert failed["storage"] == describe_storage(url)
        assert no_internal_error(captured)
        gate_to_redis.resume()
        await call.anonymous_user()


@pytest.mark.parametrize("cut", ["shut", "pause"])
async def test_ready_is_503_while_the_rate_limit_storage_is_out(
    cut: str, redis_url: str, client_secret: str, gate_to_redis: TcpGate
) -> None:
    """While a limit is on and the rate-limit Redis is cut off (connections dropped) or stops
    answering (a partition), GET /ready answers 503 temporarily_unavailable with Retry-After
    within the bound, as the sign-ups it would send there do, logged at warning naming the
    storage; once Redis answers again, /ready is 200."""
    url = redis_url.replace(f"{REDIS[0]}:{REDIS[1]}", gate_to_redis.host)
    captured, logger = capturing_logger()
    clock = Clock()
    settings = ServerSettings(rate_limit_storage=url, storage_timeout=TIMEOUT, clock=clock)
    async with calling(CLIENT_ID, client_secret, settings=settings, logger=logger) as (server, _):
        assert (await probe(server.url))[0] == 200
        if cut == "shut":
            gate_to_redis.shut()
        else:
            gate_to_redis.pause()
        clock.now += READY_CACHE  # past the answer each process keeps
        async with asyncio.timeout(ANSWERED_WITHIN):
            assert await probe(server.url) == NOT_READY
        failed = await logged(captured, "rate_limit.storage_failed")
        assert (failed["log_level"], failed["route"]) == ("warning", "/ready")
        assert (failed["storage"], failed["timed_out"]) == (describe_storage(url), cut == "pause")
        assert no_internal_error(captured)
        gate_to_redis.reopen()
        gate_to_redis.resume()
        clock.now += READY_CACHE
        assert await probe(server.url) == (200, {"status": "ready"}, None)


async def test_ready_does_not_ask_the_rate_limit_storage_while_every_limit_is_off(
    redis_url: str, client_secret: str, gate_to_redis: TcpGate
) -> None:
    """With every limit at 0 nothing counts in the rate-limit storage, so GET /ready stays 200
    while it is cut off."""
    url = redis_url.replace(f"{REDIS[0]}:{REDIS[1]}", gate_to_redis.host)
    settings = ServerSettings(
        rate_limit_storage=url,
        storage_timeout=TIMEOUT,
        max_anonymous_sign_ups_per_hour=0,
        max_credential_sign_ups_per_hour=0,
        max_failed_log_ins_per_minute=0,
    )
    async with calling(CLIENT_ID, client_secret, settings=settings) as (server, _):
        gate_to_redis.shut()
        assert await probe(server.url) == (200, {"status": "ready"}, None)


async def test_a_postgresql_that_stops_answering_gets_503_within_the_timeout(
    postgres_url: str, client_secret: str
) -> None:
    """With the PostgreSQL database cut off by a partition, sign-ups and GET /ready answer
    503 with Retry-After within the bound (several at once: the pool's waits are bounded too),
    logged at warning; once it answers again, sign-ups and /ready succeed."""
    gate = TcpGate("127.0.0.1", 5432)
    await gate.start()
    url = postgres_url.replace("127.0.0.1:5432", gate.host)
    captured, logger = capturing_logger()
    clock = Clock()
    settings = ServerSettings(storage_timeout=TIMEOUT, database_pool_size=2, clock=clock)
    try:
        async with calling(
            CLIENT_ID, client_secret, database=url, settings=settings, logger=logger
        ) as (server, call):
            await call.anonymous_user()
            gate.pause()
            # More calls than the pool has connections: the rest wait for one, bounded.
            await asyncio.gather(*(answered_503(call) for _ in range(4)))
            async with asyncio.timeout(ANSWERED_WITHIN):
                assert await probe(server.url) == NOT_READY
            unavailable = await logged(captured, "database.unavailable")
            assert (unavailable["log_level"], unavailable["error"]) == ("warning", "TimeoutError")
            assert no_internal_error(captured)
            gate.resume()
            await call.anonymous_user()
            clock.now += READY_CACHE  # past the answer each process keeps
            assert (await probe(server.url))[0] == 200
    finally:
        await gate.close()


async def test_a_postgresql_that_never_answers_refuses_start_within_the_timeout(
    postgres_url: str, client_secret: str
) -> None:
    """A PostgreSQL that takes connections and never answers them (partitioned at start) fails
    the start within the storage timeout, with one line naming the database, rather than
    after asyncpg's own minute."""
    gate = TcpGate("127.0.0.1", 5432)
    await gate.start()
    gate.pause()
    url = postgres_url.replace("127.0.0.1:5432", gate.host)
    server = IdentityServer(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        database=url,
        settings=ServerSettings(storage_timeout=TIMEOUT),
    )
    try:
        async with asyncio.timeout(ANSWERED_WITHIN):
            with pytest.raises(ServerStartError) as refused:
                await server.start()
    finally:
        await gate.close()
    assert str(refused.value).startswith(f"cannot open the database {describe_database(url)}")
    assert "\n" not in str(refused.value)


async def test_postgresql_backends_terminated_under_load_get_503_never_500(
    postgres_url: str, client_secret: str
) -> None:
    """With the server's PostgreSQL backends terminated again and again while sign-ups,
    log-ins by id and renewals run (a restart or a failover), every call answers 2xx or 503
    with Retry-After, never 500 (asyncpg fails such a connection with InterfaceError or
    InternalClientError too, not only ConnectionDoesNotExistError), and calls succeed after."""
    name = f"mimi_test_{secrets.token_hex(6)}"  # only this server's connections are ended
    url = f"{postgres_url}&application_name={name}"
    captured, logger = capturing_logger()
    settings = ServerSettings(
        storage_timeout=TIMEOUT, database_pool_size=4, max_anonymous_sign_ups_per_hour=0
    )
    answers: list[tuple[int, str | None]] = []
    stop = asyncio.Event()

    async def answered(call: Caller, path: str, body: Any = None) -> Any:
        status, answer, headers = await call.post(path, body)
        answers.append((status, headers.get("Retry-After")))
        return answer if status < 300 else None

    async def user_calls(call: Caller) -> None:
        while not stop.is_set():
            created = await answered(call, "/v1/anonymous-users")
            if created is not None:
                anonymous_id = {"anonymous_id": created["user"]["anonymous_id"]}
                await answered(call, "/v1/sessions/anonymous", anonymous_id)
                refresh_token = created["session"]["refresh_token"]
                renewal = {"grant_type": "refresh_token", "refresh_token": refresh_token}
                await answered(call, "/v1/token", renewal)

    async def terminate(admin: asyncpg.Connection[asyncpg.Record], times: int) -> int:
        ended = 0
        for _ in range(times):
            # Each round once calls have run since the last: some on the new connections.
            await eventually(functools.partial(_more_than, answers, len(answers) + 20))
            ended += await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = $1",
                name,
            )
        stop.set()
        return ended

    admin = await asyncpg.connect(postgres_url)
    try:
        async with calling(
            CLIENT_ID, client_secret, database=url, settings=settings, logger=logger
        ) as (_, call):
            async with asyncio.timeout(60), asyncio.TaskGroup() as group:
                for _ in range(6):
                    group.create_task(user_calls(call))
                ended = group.create_task(terminate(admin, 8))
            assert ended.result() > 0
            assert [a for a in answers if a[0] >= 500 and a != (503, "5")] == []
            assert no_internal_error(captured)
            await call.anonymous_user()
    finally:
        await admin.close()


async def _more_than(answers: list[tuple[int, str | None]], count: int) -> bool:
    """Whether more than ``count`` calls were answered."""
    return len(answers) > count


def sqlite_error(code: int) -> sqlite3.Error:
    """A SQLite error as the module raises it, with its result code."""
    error = sqlite3.OperationalError("failed")
    error.sqlite_errorcode = code
    return error


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (TimeoutError(), True),
        (ConnectionRefusedError(), True),
        (ConnectionResetError(), True),
        (asyncpg.ConnectionDoesNotExistError("closed mid-operation"), True),
        (asyncpg.InvalidCatalogNameError("database does not exist"), True),
        (asyncpg.CannotConnectNowError("starting up"), True),
        (asyncpg.AdminShutdownError("terminating"), True),
        (asyncpg.TooManyConnectionsError("too many"), True),
        (asyncpg.InvalidPasswordError("password"), True),
        (asyncpg.LockNotAvailableError("lock timeout"), True),  # 55P03: past lock_timeout
        (asyncpg.QueryCanceledError("statement timeout"), True),  # 57014: statement_timeout
        (asyncpg.ObjectInUseError("in use"), False),  # 55006: its class 55 is not an outage
        (asyncpg.ReadOnlySQLTransactionError("read-only"), True),  # 25006: a standby, say
        (asyncpg.ActiveSQLTransactionError("in a transaction"), False),  # 25001: a bug
        (sqlite_error(14), True),  # CANTOPEN
        (sqlite_error(10 | 10 << 8), True),  # IOERR_FSYNC: the primary code counts
        (sqlite_error(13), True),  # FULL
        (sqlite_error(5), True),  # BUSY
        (sqlite_error(8), True),  # READONLY
        (sqlite_error(26), True),  # NOTADB
        (sqlite_error(11), False),  # CORRUPT: trying again does not mend it
        (sqlite_error(1), False),  # a statement's own error: a bug
        (sqlite3.ProgrammingError("closed database"), False),
        (asyncpg.UndefinedColumnError("no column"), False),
        (asyncpg.InterfaceError("another operation is in progress"), False),
        (KeyError("x"), False),
        (ValueError("x"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_store_failures_that_are_outages(error: BaseException, outage: bool) -> None:
    """A timeout, a lost or refused connection, a dropped database, an unusable SQLite file
    are outages (503); a statement's own error or any other exception is a bug (500)."""
    assert is_outage(error) is outage
