"""`mimi-reactive sweep` deletes, once and on either store, what can never work again."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import aiohttp

from mimi_reactive.server import IdentityServer

from .conftest import CLIENT_ID, stores
from .server_helpers import Caller, row_counts

COUNTS = re.compile(r"^deleted (\d+) sessions, (\d+) spent refresh tokens, (\d+) anonymous users$")


@stores("sqlite-file", "postgresql")
async def test_the_sweep_command_deletes_a_revoked_session_and_keeps_a_live_one(
    database_url: str, client_secret: str, tmp_path: Path
) -> None:
    """A session logged out is deleted with its token; a session in use stays; the command
    prints what it deleted and exits 0."""
    async with (
        IdentityServer(
            client_id=CLIENT_ID, client_secret=client_secret, database=database_url
        ) as server,
        aiohttp.ClientSession() as http,
    ):
        caller = Caller(http, server.url, CLIENT_ID, client_secret)
        gone = await caller.anonymous_user()
        await caller.anonymous_user()  # stays logged in
        await caller.post("/v1/sessions/revoke", {"token": gone["session"]["refresh_token"]})
    assert (await row_counts(database_url, "sessions"))["sessions"] == 2

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mimi_reactive",
        "sweep",
        "--database",
        database_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    match = COUNTS.match(stdout.decode().strip())
    assert match is not None, stdout.decode()
    assert match.groups() == ("1", "0", "0")
    assert await row_counts(database_url, "sessions", "refresh_tokens") == {
        "sessions": 1,
        "refresh_tokens": 1,
    }
