"""The command line under signals, as real processes: a Ctrl-C at any point exits 130 without
a traceback, a SIGTERM or SIGHUP ends `serve`'s start at once, and `serve` stops cleanly on
SIGINT, SIGTERM and SIGHUP once it listens."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from mimi_reactive._cli import INTERRUPTED
from mimi_reactive._demo import PROMPT

from .conftest import REDIS
from .server_helpers import Caller, serving
from .tcp_gate import TcpGate

POSTGRES = ("127.0.0.1", 5432)
"""Where the test PostgreSQL (``postgres_url``) listens."""


def environment() -> dict[str, str]:
    """This process's environment with a client secret, and stdout unbuffered so that a
    test sees each line as it is printed."""
    return {
        **os.environ,
        "MIMI_CLIENT_SECRET": secrets.token_urlsafe(32),
        "PYTHONUNBUFFERED": "1",
    }


async def interrupted(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    """Send SIGINT to ``process`` and wait for it to end (30 s at most); its exit status,
    the rest of its stdout, and its stderr."""
    process.send_signal(signal.SIGINT)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def _sigint_as_at_a_terminal() -> None:
    """In the child, before it runs: SIGINT back to its default disposition. A test run
    started in the background by a shell without job control (`pytest &` in a script, as a
    CI runner may) ignores SIGINT, every child inherits that, and Python then never raises
    KeyboardInterrupt: a Ctrl-C test would test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def start(*arguments: str, stdin: int | None = None) -> asyncio.subprocess.Process:
    """`mimi-reactive ARGUMENTS` in a child process, its stdout and stderr piped, SIGINT
    handled as when run from a terminal."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mimi_reactive",
        *arguments,
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment(),
        preexec_fn=_sigint_as_at_a_terminal,
    )


@pytest.mark.parametrize(
    "after",
    [
        "reference server on",
        "1. first launch",
        "3. reinstall",
        "6. an unknown id fails",
    ],
)
async def test_ctrl_c_during_the_demo_exits_130_without_a_traceback(after: str) -> None:
    """SIGINT once the demo printed the line starting with ``after`` ends it with exit status
    130 and no traceback (the demo's temporary folder is removed by its own cleanup). With
    ``--step``, the test presses Enter at each step's heading before that one and never at
    it, so the demo waits there (or at the next heading) and cannot have finished before the
    signal lands."""
    process = await start("demo", "--step", stdin=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdin is not None
    try:
        async with asyncio.timeout(60):
            while not (line := (await process.stdout.readline()).decode().strip()).startswith(
                after
            ):
                assert line or not process.stdout.at_eof(), f"the demo ended before {after!r}"
                if line[:1].isdigit():  # an earlier step's heading: go on to the next
                    process.stdin.write(b"\n")
                    await process.stdin.drain()
    except BaseException:
        process.kill()
        await process.wait()
        raise
    status, _, stderr = await interrupted(process)
    assert status == INTERRUPTED, stderr
    assert "Traceback" not in stderr
    assert "KeyboardInterrupt" not in stderr


@pytest.mark.parametrize(
    ("stdin", "given"),
    [(b"\n" * 7, "an Enter for each step"), (b"", "stdin at its end")],
)
async def test_the_demo_step_by_step_goes_on_at_each_enter_and_at_the_end_of_input(
    stdin: bytes, given: str
) -> None:
    """`demo --step` walks every step and exits 0 given an Enter for each, or stdin at its
    end (a demo piped from nothing never hangs)."""
    process = await start("demo", "--step", stdin=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(stdin), 60)
    assert process.returncode == 0, f"{given}: {stderr.decode()}"
    assert stdout.decode().rstrip().endswith("done"), given
    assert "7. the person deletes their account" in stdout.decode()
    # A person at a terminal is told to press Enter at each step, on stderr (not in the walk).
    assert stderr.decode().count(PROMPT) == 7, stderr.decode()
    assert PROMPT not in stdout.decode()


async def test_ctrl_c_before_serve_listens_exits_130_without_a_traceback(
    tmp_path: Path,
) -> None:
    """SIGINT while `serve` is starting (once asyncio logged that it builds its event loop,
    before the server is opened) ends it with exit status 130 and no KeyboardInterrupt
    traceback; should the start win the race, the signal stops the server cleanly (0).

    (A signal that lands inside the event loop's constructor can leave asyncio's own
    "Exception ignored in BaseEventLoop.__del__" note: the standard library's, not ours.)"""
    process = await start(
        *("--log-level", "debug", "serve", "--client-id", "app", "--port", "0"),
        *("--database", str(tmp_path / "ids.sqlite3")),
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(60):
            # asyncio's first debug line: the server is not opened yet.
            while "Using selector" not in (line := (await process.stderr.readline()).decode()):
                assert line, "serve ended before its event loop ran"
    except BaseException:
        process.kill()
        await process.wait()
        raise
    status, stdout, stderr = await interrupted(process)
    assert "KeyboardInterrupt" not in stderr
    assert status == (0 if "serving on" in stdout else INTERRUPTED), stderr


@pytest.mark.parametrize("workers", [1, 2])
async def test_ctrl_c_while_serve_waits_on_a_silent_redis_exits_130(
    tmp_path: Path, workers: int
) -> None:
    """SIGINT while `serve` (one process, or the master of several workers) waits at start on
    a rate-limit Redis that accepted and never answers ends it at once with exit status 130
    and no traceback, not with "does not answer" once the check times out."""
    # Several workers need PostgreSQL; the Redis check comes first, so none is reached.
    database = str(tmp_path / "ids.sqlite3") if workers == 1 else "postgresql://u@127.0.0.1:1/d"
    gate = TcpGate(*REDIS)
    await gate.start()
    gate.pause()
    try:
        process = await start(
            *("serve", "--client-id", "app", "--port", "0", "--workers", str(workers)),
            *("--database", database, "--rate-limit-storage", f"redis://{gate.host}/0"),
        )
        try:
            async with asyncio.timeout(30):
                await gate.connected.wait()  # serve is checking the storage now
        except BaseException:
            process.kill()
            await process.wait()
            raise
        status, stdout, stderr = await interrupted(process)
    finally:
        await gate.close()
    assert (status, stdout) == (INTERRUPTED, ""), stderr
    assert "Traceback" not in stderr
    assert "does not answer" not in stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["sigterm", "sighup"])
@pytest.mark.parametrize(
    ("silent", "workers"),
    [("redis", 1), ("postgresql", 1), ("redis", 2), ("postgresql", 2)],
    ids=["redis-1-process", "postgresql-1-process", "redis-2-workers", "postgresql-2-workers"],
)
async def test_a_stop_signal_while_serve_waits_on_a_silent_store_ends_it_at_once(
    postgres_url: str, signum: int, silent: str, workers: int
) -> None:
    """SIGTERM or SIGHUP while `serve` waits at start on a rate-limit Redis or a PostgreSQL
    that accepted and never answers ends the start at once, exit status 128 + the signal's
    number and no traceback: not once the store's timeout (here far past the test's patience)
    has run out, with "does not answer", or a server started only to stop."""
    gate = TcpGate(*(REDIS if silent == "redis" else POSTGRES))
    await gate.start()
    gate.pause()
    database, storage = postgres_url, f"redis://{REDIS[0]}:{REDIS[1]}/0"
    if silent == "redis":
        storage = f"redis://{gate.host}/0"
    else:
        database = postgres_url.replace(f"{POSTGRES[0]}:{POSTGRES[1]}", gate.host)
    try:
        process = await start(
            *("serve", "--client-id", "app", "--port", "0", "--workers", str(workers)),
            *("--database", database, "--rate-limit-storage", storage),
            *("--storage-timeout", "600"),
        )
        try:
            async with asyncio.timeout(30):
                await gate.connected.wait()  # serve is waiting on the store now
                process.send_signal(signum)
                stdout, stderr = await process.communicate()
        except BaseException:
            process.kill()
            await process.wait()
            raise
    finally:
        await gate.close()
    assert (process.returncode, stdout.decode()) == (128 + signum, ""), stderr.decode()
    assert "Traceback" not in stderr.decode()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
async def test_serve_stops_cleanly_on_a_stop_signal(tmp_path: Path, signum: int) -> None:
    """`serve` stops on SIGINT, SIGTERM and SIGHUP (a closed terminal) with exit status 0,
    its SQLite database checkpointed and closed: no -wal or -shm file is left."""
    database = tmp_path / "ids.sqlite3"
    client_secret = secrets.token_urlsafe(32)
    async with serving(
        *("serve", "--port", "0", "--database", str(database), "--client-id", "app"),
        environment={**os.environ, "MIMI_CLIENT_SECRET": client_secret},
    ) as served:
        async with aiohttp.ClientSession() as http:  # a write: SQLite makes its -wal and -shm files
            await Caller(http, served.url, "app", client_secret).anonymous_user()
        assert (tmp_path / "ids.sqlite3-wal").exists()
        served.process.send_signal(signum)
        await asyncio.wait_for(served.process.wait(), 30)
    assert served.returncode == 0, served.stderr.decode()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ids.sqlite3"]
