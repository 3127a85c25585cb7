"""The PostgreSQL pool's size is an option (``--database-pool-size``, ``database_pool_size``):
it reaches the pool, a size below 1 is refused with one line, and workers whose pools together
may open more connections than the PostgreSQL server allows are warned of at start."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

import pytest

from mimi_reactive._server._postgres import PostgresIdentityDatabase
from mimi_reactive._server._workers import prepare_workers
from mimi_reactive.server import IdentityServer, ServerSettings

from .conftest import CLIENT_ID
from .helpers import library_events
from .server_helpers import query_value, serving
from .test_cli import run_cli


@pytest.mark.parametrize("size", [None, 1, 3])
async def test_the_pool_size_reaches_the_postgresql_pool(
    postgres_url: str, client_secret: str, size: int | None
) -> None:
    """The server's PostgreSQL pool opens at most database_pool_size connections (10 unless
    told)."""
    settings = ServerSettings() if size is None else ServerSettings(database_pool_size=size)
    async with IdentityServer(
        client_id=CLIENT_ID, client_secret=client_secret, database=postgres_url, settings=settings
    ) as server:
        assert server._service is not None
        database = server._service.database
        assert isinstance(database, PostgresIdentityDatabase)
        assert database.pool_max_size == (10 if size is None else size)


@pytest.mark.parametrize("size", [0, -1, 1001, 10**20])
def test_a_pool_size_out_of_range_is_refused_in_process(size: int) -> None:
    """ServerSettings refuses a pool size below 1 or above 1000, naming the setting."""
    with pytest.raises(ValueError, match="database_pool_size must be from 1 to 1000"):
        ServerSettings(database_pool_size=size)


@pytest.mark.parametrize("value", ["0", "-3", "many", "1001", "100000000000000000000"])
def test_serve_refuses_a_bad_pool_size_flag(value: str) -> None:
    """`serve --database-pool-size` below 1, above 1000 or not a number exits 2 with one line
    naming it (a huge pool would hang the start, set up slot by slot)."""
    done = run_cli("serve", "--client-id", "app", "--database-pool-size", value)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "--database-pool-size" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("setting", "status", "named"),
    [
        ("0", 2, "database_pool_size must be from 1 to 1000"),
        ("100000000", 2, "database_pool_size must be from 1 to 1000"),
        ('"ten"', 2, "database_pool_size"),
    ],
)
def test_serve_refuses_a_bad_pool_size_in_the_config_file(
    tmp_path: Path, setting: str, status: int, named: str
) -> None:
    """`database_pool_size` below 1, above 1000 or not a whole number in [server] stops the
    start with one line naming it, before anything is created."""
    config = tmp_path / "mimi.toml"
    config.write_text(f"[server]\ndatabase_pool_size = {setting}\n")
    database = tmp_path / "ids.sqlite3"
    done = run_cli(
        "serve", "--client-id", "app", "--config", str(config), "--database", str(database)
    )
    assert done.returncode == status, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert named in done.stderr
    assert not database.exists()


async def test_the_flag_wins_over_the_config_file(tmp_path: Path) -> None:
    """A pool size of 0 in the file does not stop `serve` when --database-pool-size says 2."""
    config = tmp_path / "mimi.toml"
    config.write_text("[server]\ndatabase_pool_size = 0\n")
    async with serving(
        *("serve", "--port", "0", "--client-id", "app", "--config", str(config)),
        *("--database", str(tmp_path / "ids.sqlite3"), "--database-pool-size", "2"),
        environment={**os.environ, "MIMI_CLIENT_SECRET": secrets.token_urlsafe(32)},
    ) as served:
        pass  # it started: serving read the line saying where it listens
    assert served.returncode == 0, served.stderr.decode()


@pytest.mark.parametrize(("workers", "over", "warned"), [(1, 0, False), (1, 1, True), (3, 1, True)])
async def test_workers_that_may_open_more_connections_than_postgresql_allows_are_warned_of(
    postgres_url: str, caplog: pytest.LogCaptureFixture, workers: int, over: int, warned: bool
) -> None:
    """prepare_workers logs one warning naming --workers and --database-pool-size when the
    workers' pools together may open more connections than max_connections less the reserved
    ones, and none when they fit exactly."""
    allowed = int(
        await query_value(
            postgres_url,
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int",
        )
    )
    size = allowed // workers + over
    caplog.set_level(logging.WARNING, logger="mimi_reactive")
    await prepare_workers(postgres_url, ServerSettings(database_pool_size=size), workers=workers)
    warnings = [r.getMessage() for r in library_events(caplog) if r.levelno == logging.WARNING]
    assert len(warnings) == int(warned), warnings
    if warned:
        assert f"--workers {workers} x --database-pool-size {size}" in warnings[0]
        assert str(allowed) in warnings[0]


async def test_serve_warns_of_workers_whose_pools_postgresql_cannot_hold(
    postgres_url: str, redis_url: str
) -> None:
    """`serve --workers 2 --database-pool-size 1000` on PostgreSQL starts, and says at start that
    the workers' pools together may open more connections than the server allows."""
    async with serving(
        *("serve", "--port", "0", "--client-id", "app", "--database", postgres_url),
        *("--workers", "2", "--database-pool-size", "1000", "--rate-limit-storage", redis_url),
        environment={**os.environ, "MIMI_CLIENT_SECRET": secrets.token_urlsafe(32)},
    ) as served:
        pass  # it started: serving read the line saying where it listens
    assert served.returncode == 0, served.stderr.decode()
    assert "--workers 2 x --database-pool-size 1000" in served.stderr.decode()
