"""`mimi-reactive sweep` deletes, once and on either store, what can never work again."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import aiohttp

from mimi_reactive.server import IdentityServer, ServerSettings

from .conftest import CLIENT_ID, stores
from .server_helpers import Caller, Clock, row_counts, run_command

COUNTS = re.compile(
    r"^deleted (\d+) sessions, (\d+) spent refresh tokens, (\d+) anonymous users,"
    r" (\d+) retired signing keys( \(kept: give the servers' --access-token-ttl to delete them\))?$"
)


async def sweep(database_url: str, home: Path, *options: str) -> re.Match[str]:
    """Run ``mimi-reactive sweep`` once; the counts it printed."""
    status, stdout, stderr = await run_command(
        "sweep", "--database", database_url, *options, environment={**os.environ, "HOME": str(home)}
    )
    assert status == 0, stderr
    match = COUNTS.match(stdout.strip())
    assert match is not None, stdout
    return match


@stores("sqlite-file", "postgresql")
async def test_the_sweep_command_deletes_a_revoked_session_and_keeps_a_live_one(
    database_url: str, client_secret: str, tmp_path: Path
) -> None:
    """A session logged out over a day ago (spent_token_retention) is deleted with its token;
    a session in use stays; the command prints what it deleted and exits 0."""
    settings = ServerSettings(clock=Clock(time.time() - 2 * 86400))  # the command's is now
    async with (
        IdentityServer(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            database=database_url,
            settings=settings,
        ) as server,
        aiohttp.ClientSession() as http,
    ):
        caller = Caller(http, server.url, CLIENT_ID, client_secret)
        gone = await caller.anonymous_user()
        await caller.anonymous_user()  # stays logged in
        await caller.post("/v1/sessions/revoke", {"token": gone["session"]["refresh_token"]})
    assert (await row_counts(database_url, "sessions"))["sessions"] == 2

    match = await sweep(database_url, tmp_path)
    assert match.groups()[:4] == ("1", "0", "0", "0")
    assert await row_counts(database_url, "sessions", "refresh_tokens") == {
        "sessions": 1,
        "refresh_tokens": 1,
    }


@stores("sqlite-file", "postgresql")
async def test_the_sweep_command_deletes_a_retired_key_only_by_the_servers_token_lifetime(
    database_url: str, tmp_path: Path
) -> None:
    """Retired keys stay without a lifetime (the command says so) and while tokens they signed
    can be valid; each goes once they cannot, by the lifetime of the config file or flag."""
    await IdentityServer.migrate_database(database_url)  # rotation needs an existing database
    await IdentityServer.rotate_signing_key(database_url, now=time.time() - 20000)  # the first
    await IdentityServer.rotate_signing_key(database_url, now=time.time() - 10000)
    await IdentityServer.rotate_signing_key(database_url, now=time.time() - 7200)
    assert (await row_counts(database_url, "signing_keys"))["signing_keys"] == 3

    unknown = await sweep(database_url, tmp_path)
    assert unknown.groups()[3] == "0"
    assert unknown.groups()[4] is not None
    assert (await sweep(database_url, tmp_path, "--access-token-ttl", "86400")).groups()[3:] == (
        "0",
        None,
    )
    assert (await row_counts(database_url, "signing_keys"))["signing_keys"] == 3

    config = tmp_path / "server.toml"
    config.write_text("[server]\naccess_token_ttl = 7000\n")  # the key retired 10000 s ago
    assert (await sweep(database_url, tmp_path, "--config", str(config))).groups()[3:] == (
        "1",
        None,
    )
    gone = await sweep(database_url, tmp_path, "--access-token-ttl", "3600")
    assert gone.groups()[3:] == ("1", None)
    assert (await row_counts(database_url, "signing_keys"))["signing_keys"] == 1
