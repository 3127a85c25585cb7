"""Two processes sharing one session file share one session."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mimi_reactive import (
    AuthRoute,
    FileSessionStorage,
    MimiConfiguration,
    MimiCore,
    RefreshPolicy,
    RetryPolicy,
    Transition,
)
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer, ServerSettings
from mimi_reactive.testing import StateRecorder

from .conftest import CLIENT_ID
from .server_helpers import eventually

REPO = Path(__file__).resolve().parent.parent
# A bound on waiting for a change to reach the other process (it is watched every 0.1 s),
# not a timing claim: it only turns a change that never arrives into a failure.
WITHIN = 15.0


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


async def start_peer(url: str, path: Path, client_secret: str) -> AsyncGenerator[Peer, None]:
    """The other process, as the generator's one item: take it within
    ``contextlib.aclosing`` so the peer is ended when the test ends, passed or failed."""
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
            try:
                await peer.send("quit")
                await asyncio.wait_for(process.wait(), 10)
            except (TimeoutError, OSError):  # stuck, or gone and its stdin with it
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


def core_on(url: str, path: Path, client_secret: str) -> Any:
    return MimiCore.start(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        backend=HttpBackend(url),
        configuration=MimiConfiguration(
            allow_anonymous_user_only=True,
            refresh=RefreshPolicy(ahead=0.5),
            retry=RetryPolicy(initial_delay=0.05, max_delay=0.2),
        ),
        storage=FileSessionStorage(path, poll_interval=0.1),
    )


async def test_processes_see_each_others_log_in_and_log_out(
    server: IdentityServer, client_secret: str, tmp_path: Path
) -> None:
    """A log-out here reaches the other process, and the other way round."""
    path = tmp_path / "session.json"
    async with core_on(server.url, path, client_secret) as core:
        recorder = StateRecorder(core)
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        async with contextlib.aclosing(start_peer(server.url, path, client_secret)) as peers:
            peer = await anext(peers)  # the peer quits, the test passed or not
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
    """Two processes keep a 2-second session through 3 renewals: rotation never trips reuse."""
    path = tmp_path / "session.json"
    async with core_on(short_lived.url, path, client_secret) as core:
        recorder = StateRecorder(core)
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        async with contextlib.aclosing(start_peer(short_lived.url, path, client_secret)) as peers:
            peer = await anext(peers)  # the peer quits, the test passed or not
            assert (await peer.next_report())["transition"] == "restored"
            async with asyncio.timeout(60):
                await renewals_stored(path, 3)
                # Both hand out the one current token (a renewal may land between the asks).
                while True:
                    await peer.send("token")
                    theirs = await peer.next_report()
                    if theirs == {"token": await core.auth.access_token()}:
                        break
        assert Transition.SESSION_EXPIRED not in recorder.transitions
        assert core.auth.current_user is not None


async def renewals_stored(path: Path, count: int) -> None:
    """Wait until the session file has held ``count`` more access tokens than it holds now."""
    watcher = FileSessionStorage(path, poll_interval=0.05)
    tokens: set[str] = set()
    async for _ in watcher.changes():
        stored = await watcher.load()
        assert stored is not None, "a renewal ended the session"
        tokens.add(stored.tokens.access_token)
        if len(tokens) > count:
            return


class PeerWritesBetweenLoadAndWatch(FileSessionStorage):
    """A storage whose first load is followed at once by another process's log-out."""

    async def load(self) -> Any:
        stored = await super().load()
        if not getattr(self, "loaded", False):
            self.loaded = True
            await FileSessionStorage(self.path).clear()
        return stored


async def test_write_between_restore_and_watch_is_seen(
    server: IdentityServer, client_secret: str, tmp_path: Path
) -> None:
    """A log-out stored while the core starts (after its restore, before its watch) is seen."""
    path = tmp_path / "session.json"
    async with core_on(server.url, path, client_secret) as first:
        user = await first.auth.authenticate(AuthRoute.sign_up_anonymously())
    async with MimiCore.start(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        backend=HttpBackend(server.url),
        configuration=MimiConfiguration(allow_anonymous_user_only=True),
        storage=PeerWritesBetweenLoadAndWatch(path, poll_interval=60),
    ) as core:
        recorder = StateRecorder(core)
        assert recorder.states[0].user == user
        async with asyncio.timeout(WITHIN):
            await recorder.wait_for(Transition.LOGGED_OUT)
        assert core.auth.current_user is None


def credentials_core_on(url: str, path: Path, client_secret: str) -> Any:
    """A core on the same file that allows users with credentials (the default)."""
    return MimiCore.start(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        backend=HttpBackend(url),
        storage=FileSessionStorage(path, poll_interval=0.1),
    )


async def test_anonymous_only_never_adopts_a_user_another_process_stored_with_credentials(
    server: IdentityServer, client_secret: str, tmp_path: Path
) -> None:
    """A core allowing credentials promotes the shared user: the anonymous-only core ends its
    session (SESSION_EXPIRED, not_anonymous) instead of taking it in as PROMOTED, leaves the
    other's session stored, and does not restore it at its next start either."""
    path = tmp_path / "session.json"
    async with core_on(server.url, path, client_secret) as core:
        recorder = StateRecorder(core)
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        async with credentials_core_on(server.url, path, client_secret) as other:
            assert other.auth.current_user == user
            promote = AuthRoute.promote(email="shared@example.com", password="a long passphrase")
            await other.auth.authenticate(promote)
            async with asyncio.timeout(WITHIN):
                expired = await recorder.wait_for(Transition.SESSION_EXPIRED)
            assert expired.previous_user == user
            assert expired.error is not None
            assert getattr(expired.error, "code", None) == "not_anonymous"
            assert all(seen.user is None or seen.user.is_anonymous for seen in recorder.states)
            assert other.auth.current_user is not None
            assert not other.auth.current_user.is_anonymous
            await other.auth.refresh()  # its session lives on: not revoked from here
            assert other.auth.state.transition is Transition.PROMOTED
            stored = await FileSessionStorage(path).load()
            assert stored is not None
            assert not stored.user.is_anonymous
    async with core_on(server.url, path, client_secret) as again:
        assert again.auth.state.transition is Transition.INITIAL
        assert again.auth.current_user is None


class LoadsRecorded(FileSessionStorage):
    """A session file whose loads are recorded, to wait until the core read a change."""

    loaded: list[Any]

    async def load(self) -> Any:
        stored = await super().load()
        self.loaded.append(stored)
        return stored


async def test_anonymous_only_with_nobody_stays_logged_out_when_another_process_signs_up(
    server: IdentityServer, client_secret: str, tmp_path: Path
) -> None:
    """Another process signs up with an email: the anonymous-only core, logged out, reads it
    and stays logged out (no LOGGED_IN with that user), and still follows a later anonymous
    sign-up."""
    path = tmp_path / "session.json"
    storage = LoadsRecorded(path, poll_interval=0.1)
    storage.loaded = []
    async with (
        MimiCore.start(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            backend=HttpBackend(server.url),
            configuration=MimiConfiguration(allow_anonymous_user_only=True),
            storage=storage,
        ) as core,
        credentials_core_on(server.url, path, client_secret) as other,
    ):
        recorder = StateRecorder(core)
        sign_up = AuthRoute.sign_up(email="someone@example.com", password="a long passphrase")
        with_email = await other.auth.authenticate(sign_up)

        async def read_it() -> bool:
            return any(s is not None and s.user == with_email for s in storage.loaded)

        async with asyncio.timeout(WITHIN):
            await eventually(read_it)
        await other.auth.log_out()
        anonymous = await other.auth.authenticate(AuthRoute.sign_up_anonymously())
        async with asyncio.timeout(WITHIN):
            adopted = await recorder.wait_for(Transition.LOGGED_IN)
        assert adopted.user == anonymous
        assert all(seen.user is None or seen.user.is_anonymous for seen in recorder.states)
