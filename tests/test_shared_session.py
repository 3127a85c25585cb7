"""Two processes sharing one session file share one session."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mimi_reactive import (
    AuthRoute,
    FileSessionStorage,
    MimiConfiguration,
    MimiCore,
    RetryPolicy,
    Transition,
)
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer, ServerSettings
from mimi_reactive.testing import StateRecorder

from .conftest import CLIENT_ID

REPO = Path(__file__).resolve().parent.parent
WITHIN = 1.0  # seconds for a change in one process to reach the other's stream


class Peer:
    """The other process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()

    async def next_report(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        async with asyncio.timeout(30):
            line = await self.process.stdout.readline()
        assert line, "the peer exited"
        return json.loads(line)  # type: ignore[no-any-return]

    async def wait_for(self, transition: Transition) -> dict[str, Any]:
        while (report := await self.next_report()).get("transition") != transition.value:
            pass
        return report


@pytest.fixture
async def short_lived(client_secret: str, tmp_path: Path) -> AsyncIterator[IdentityServer]:
    settings = ServerSettings(access_token_ttl=2.0)
    async with IdentityServer(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        settings=settings,
        database=tmp_path / "identity.sqlite3",
    ) as running:
        yield running


async def start_peer(url: str, path: Path, client_secret: str) -> AsyncIterator[Peer]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.session_peer",
        url,
        str(path),
        cwd=REPO,
        env={**os.environ, "MIMI_CLIENT_SECRET": client_secret},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    peer = Peer(process)
    try:
        yield peer
    finally:
        if process.returncode is None:
            await peer.send("quit")
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def core_on(url: str, path: Path, client_secret: str) -> Any:
    return MimiCore.start(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        backend=HttpBackend(url),
        configuration=MimiConfiguration(
            allow_anonymous_user_only=True,
            refresh_ahead=0.5,
            retry=RetryPolicy(initial_delay=0.05, max_delay=0.2),
        ),
        storage=FileSessionStorage(path, poll_interval=0.1),
    )


async def test_processes_see_each_others_log_in_and_log_out(
    server: IdentityServer, client_secret: str, tmp_path: Path
) -> None:
    """A log-out here reaches the other process within a second, and the other way round."""
    path = tmp_path / "session.json"
    async with core_on(server.url, path, client_secret) as core:
        recorder = StateRecorder(core)
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        async for peer in start_peer(server.url, path, client_secret):
            restored = await peer.next_report()
            assert restored == {"transition": "restored", "user": user.id}

            await core.auth.log_out()
            async with asyncio.timeout(WITHIN):
                theirs = await peer.wait_for(Transition.LOGGED_OUT)
            assert theirs == {"transition": "logged_out", "user": None}

            await peer.send("sign_up")
            created = await peer.wait_for(Transition.ANONYMOUS_CREATED)
            async with asyncio.timeout(WITHIN):
                adopted = await recorder.wait_for(Transition.LOGGED_IN)
            assert adopted.user is not None
            assert adopted.user.id == created["user"]

            after = StateRecorder(core)
            await peer.send("log_out")
            await peer.wait_for(Transition.LOGGED_OUT)
            async with asyncio.timeout(WITHIN):
                await after.wait_for(Transition.LOGGED_OUT)
            assert core.auth.current_user is None


async def test_processes_renew_one_at_a_time(
    short_lived: IdentityServer, client_secret: str, tmp_path: Path
) -> None:
    """Both processes keep a 2-second session for 4.5 s: rotation never trips reuse."""
    path = tmp_path / "session.json"
    async with core_on(short_lived.url, path, client_secret) as core:
        recorder = StateRecorder(core)
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        async for peer in start_peer(short_lived.url, path, client_secret):
            assert (await peer.next_report())["transition"] == "restored"
            await asyncio.sleep(4.5)
            await peer.send("token")
            theirs = await peer.next_report()
            ours = await core.auth.access_token()
            assert theirs == {"token": ours}
        assert Transition.SESSION_EXPIRED not in recorder.transitions
        assert core.auth.current_user is not None
