"""The command line: `serve` and `demo`, run as real processes."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from mimi_reactive import AnonymousAuthManager, AuthRoute, MimiCore, Success
from mimi_reactive.backends.http import HttpBackend

from .conftest import ANONYMOUS_ONLY


def test_demo_walks_the_flow_and_exits_zero() -> None:
    """`mimi-reactive demo` prints every transition of the seeds' flow and exits 0."""
    done = subprocess.run(
        [sys.executable, "-m", "mimi_reactive", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for expected in (
        "anonymous_created",
        "logged_out",
        "logged_in",
        "switched_user",
        "Skipped()",
        "failed",
        "Failure(InvalidCredentialsError",
    ):
        assert expected in done.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_serve_runs_a_server_until_terminated(tmp_path: Path) -> None:
    """`mimi-reactive serve` creates its database, serves the API, logs no secret, stops on TERM."""
    port, database = free_port(), tmp_path / "ids.sqlite3"
    client_secret = secrets.token_urlsafe(32)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mimi_reactive",
        "--log-level",
        "debug",
        "serve",
        "--port",
        str(port),
        "--database",
        str(database),
        "--client-id",
        "cli-app",
        env={**os.environ, "MIMI_CLIENT_SECRET": client_secret},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        url = f"http://127.0.0.1:{port}"
        assert line.decode().strip() == f"serving on {url}"
        async with aiohttp.ClientSession() as http, http.get(url + "/health") as response:
            assert response.status == 200
        async with MimiCore.start(
            client_id="cli-app",
            client_secret=client_secret,
            backend=HttpBackend(url),
            configuration=ANONYMOUS_ONLY,
        ) as core:
            user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
            await core.auth.log_out()
            result = await AnonymousAuthManager(core).authenticate_anonymous_user(user.anonymous_id)
            assert result == Success(user.anonymous_id)  # type: ignore[arg-type]
        assert database.exists()
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    log = stderr.decode()
    assert "http.request" in log  # it did log at debug
    assert user.anonymous_id is not None
    assert user.anonymous_id not in log
    assert client_secret not in log


def test_serve_without_a_secret_says_so() -> None:
    """`serve` with no client secret exits 2 with a clear message."""
    env = {k: v for k, v in os.environ.items() if k != "MIMI_CLIENT_SECRET"}
    done = subprocess.run(
        [sys.executable, "-m", "mimi_reactive", "serve", "--client-id", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 2
    assert "MIMI_CLIENT_SECRET" in done.stderr
