"""The server's sweeper on a failing PostgreSQL database: a sweep that fails because the
database is out is logged at warning (an outage; the next sweep does the work), one that fails
otherwise at error (a bug), and the sweeper goes on either way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mimi_reactive._server._stores import open_database
from mimi_reactive._server._sweeper import run_sweeper
from mimi_reactive.server import ServerSettings

from .server_helpers import execute
from .tcp_gate import TcpGate
from .test_server_logs import capturing_logger, logged


@pytest.fixture
async def gate_to_postgres() -> AsyncIterator[TcpGate]:
    """A gate in front of the test PostgreSQL."""
    gate = TcpGate("127.0.0.1", 5432)
    await gate.start()
    yield gate
    await gate.close()


@pytest.mark.parametrize(
    ("failure", "level", "error"),
    [
        # Whichever the pool meets first: the connection closed, or reset on connecting again.
        ("database cut off", "warning", ("ConnectionDoesNotExistError", "ConnectionResetError")),
        ("table dropped", "error", ("UndefinedTableError",)),
    ],
)
async def test_a_failed_sweep_is_a_warning_during_an_outage_and_an_error_otherwise(
    postgres_url: str, gate_to_postgres: TcpGate, failure: str, level: str, error: tuple[str, ...]
) -> None:
    """A sweep failing on a database cut off is logged `retention.sweep_failed` at warning; one
    failing on a table that is gone (no outage: a bug) at error; both with the error's type."""
    url = postgres_url.replace("127.0.0.1:5432", gate_to_postgres.host)
    database = await open_database(url, storage_timeout=2.0)
    captured, log = capturing_logger()
    sweeper = asyncio.create_task(
        run_sweeper(database, ServerSettings(sweep_interval=0.05, storage_timeout=2.0), log)
    )
    try:
        await logged(captured, "retention.swept")
        if failure == "database cut off":
            gate_to_postgres.shut()
        else:
            await execute(postgres_url, "DROP TABLE signing_keys")
        failed = await logged(captured, "retention.sweep_failed")
        assert failed["log_level"] == level
        assert failed["error"] in error
    finally:
        sweeper.cancel()
        await asyncio.gather(sweeper, return_exceptions=True)
        await database.close()
