"""The SQLite store's connection: operations batched per thread crossing and per commit."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mimi_reactive._server._sqlite_connection import BatchingConnection


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("CREATE TABLE IF NOT EXISTS items (name TEXT PRIMARY KEY)")
    return connection


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[BatchingConnection]:
    connection = BatchingConnection(functools.partial(_connect, tmp_path / "t.db"), writes=True)
    await connection.open()
    yield connection
    await connection.close()


def _insert(name: str) -> Callable[[sqlite3.Connection], int]:
    def insert(db: sqlite3.Connection) -> int:
        db.execute("INSERT INTO items VALUES (?)", (name,))
        return int(db.total_changes)

    return insert


def _names(db: sqlite3.Connection) -> list[str]:
    return [row[0] for row in db.execute("SELECT name FROM items ORDER BY name")]


def _data_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA data_version").fetchone()[0])


async def test_operations_queued_together_share_one_commit(
    writer: BatchingConnection, tmp_path: Path
) -> None:
    """Operations queued while a batch runs go in one transaction: far fewer commits."""
    with sqlite3.connect(tmp_path / "t.db") as observer:
        before = _data_version(observer)
        await asyncio.gather(*(writer.run(_insert(f"item-{n:03}")) for n in range(100)))
        # data_version moves once per commit made by another connection.
        commits = _data_version(observer) - before
    assert 1 <= commits <= 3
    assert len(await writer.run(_names)) == 100


async def test_a_failing_operation_is_undone_alone(writer: BatchingConnection) -> None:
    """One operation that fails midway is rolled back; the others in its batch commit."""

    def half_then_fail(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO items VALUES ('half')")
        db.execute("INSERT INTO items VALUES ('first')")  # taken: IntegrityError

    results = await asyncio.gather(
        writer.run(_insert("first")),
        writer.run(half_then_fail),
        writer.run(_insert("second")),
        return_exceptions=True,
    )
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert await writer.run(_names) == ["first", "second"]


async def test_an_operation_alone_runs_outside_any_transaction(writer: BatchingConnection) -> None:
    """run_alone is for what a transaction refuses, such as a WAL checkpoint."""
    assert await writer.run_alone(lambda db: db.in_transaction) is False
    assert await writer.run(lambda db: db.in_transaction) is True


async def test_a_closed_connection_refuses_work(tmp_path: Path) -> None:
    """After close, queued work has finished and new work is refused with a clear error."""
    connection = BatchingConnection(functools.partial(_connect, tmp_path / "c.db"), writes=True)
    await connection.open()
    queued = asyncio.ensure_future(connection.run(_insert("last")))
    await asyncio.sleep(0)  # let it queue before closing
    await connection.close()
    assert await queued
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        await connection.run(_names)


async def test_a_failure_of_the_database_itself_fails_the_whole_batch(
    writer: BatchingConnection,
) -> None:
    """A locked, full or failing database fails every operation of its batch: none commits."""

    def broken(db: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    # The first starts a batch of its own at once; the other two queue behind it, together.
    results = await asyncio.gather(
        writer.run(_insert("first")),
        writer.run(broken),
        writer.run(_insert("after-it")),
        return_exceptions=True,
    )
    assert all(isinstance(result, sqlite3.OperationalError) for result in results[1:])
    assert "after-it" not in await writer.run(_names)
