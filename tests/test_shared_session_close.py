"""What a core saves (or clears) at close that the session file failed to keep, when other
processes share the file: under the file's lock, and never over a newer pair of the same user
another process stored since (the service rotates refresh tokens: the older pair is spent), nor
a log-out over a session another process signed in after it."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mimi_reactive import (
    AuthRoute,
    FileSessionStorage,
    MimiCore,
    MimiUser,
    RetryPolicy,
    Session,
    SessionStorageError,
    Transition,
    _storage,
)

from .conftest import Service
from .helpers import REPO, event_names
from .server_helpers import eventually
from .test_shared_session import start_peer

# One attempt, then one an hour: once the keeper gave up saving the unkept pair again, it is
# still unkept at close.
ONCE = RetryPolicy(initial_delay=0.05, max_delay=3600, max_attempts=1)


class FillingDisk(FileSessionStorage):
    """A session file whose saves fail (``ENOSPC``) while ``full``, and which notes when its
    lock is wanted. Its watch looks once a minute: the other process's writes go unseen."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, poll_interval=60)
        self.full = False
        self.lock_wanted = asyncio.Event()

    async def save(self, session: Session) -> None:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        await super().save(session)

    @contextlib.asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        self.lock_wanted.set()
        async with super().lock():
            yield


class Holder:
    """Another process renewing the stored session (``tests.session_writer hold``): it holds
    the file's lock until ``go()``."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def go(self) -> bytes:
        """Let it save its renewed pair and release the lock: what it said."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(b"go\n")
        await self.process.stdin.drain()
        async with asyncio.timeout(10):
            said = await self.process.stdout.readline()
            await self.process.wait()
        return said


@contextlib.asynccontextmanager
async def holding(path: Path) -> AsyncIterator[Holder]:
    """A ``Holder`` that holds the lock of ``path`` once this enters."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.session_writer",
        "hold",
        str(path),
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(30):
            assert await process.stdout.readline() == b"held\n"
        yield Holder(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def unkept_renewal(
    core: MimiCore, storage: FillingDisk, caplog: pytest.LogCaptureFixture
) -> MimiUser:
    """Sign up (kept), renew with the disk full (not kept), and wait until the keeper gave up
    saving the renewed pair again; then make room: only the save at close is left."""
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    storage.full = True
    with pytest.raises(SessionStorageError):
        await core.auth.refresh()

    async def keeper_gave_up() -> bool:
        return "session.refresh_gave_up" in event_names(caplog)

    async with asyncio.timeout(10):
        await eventually(keeper_gave_up)
    storage.full = False
    storage.lock_wanted.clear()
    return user


async def test_close_leaves_the_pair_another_process_renewed_since(
    service: Service, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A renewed pair the file could not keep is not saved at close over the pair another
    process renewed since (the live one at the service): the file keeps the other's."""
    path = tmp_path / "session.json"
    storage = FillingDisk(path)
    core = await service.core(storage, retry=ONCE)
    try:
        user = await unkept_renewal(core, storage, caplog)
        peers = start_peer(service.url, path, service.client_secret)
        async with contextlib.aclosing(peers):  # the peer quits, the test passed or not
            peer = await anext(peers)
            assert (await peer.wait_for(Transition.RESTORED))["user"] == user.id
            await peer.send("refresh")
            while "refreshed" not in (report := await peer.next_report()):
                pass
            renewed = await FileSessionStorage(path).load()
            assert renewed is not None
            assert renewed.tokens.access_token == report["refreshed"]
            await core.close()
            assert await FileSessionStorage(path).load() == renewed
    finally:
        await core.close()


async def test_close_saves_under_the_lock_and_leaves_the_pair_renewed_under_it(
    service: Service, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The save at close waits for the lock another process holds while it renews: nothing
    is written while it holds it, and the newer pair it then stores stays."""
    path = tmp_path / "session.json"
    storage = FillingDisk(path)
    core = await service.core(storage, retry=ONCE)
    try:
        user = await unkept_renewal(core, storage, caplog)
        async with holding(path) as holder:
            closing = asyncio.ensure_future(core.close())
            wanted = asyncio.ensure_future(storage.lock_wanted.wait())
            await asyncio.wait({closing, wanted}, return_when=asyncio.FIRST_COMPLETED)
            wanted.cancel()
            assert await holder.go() == b"saved\n"
            async with asyncio.timeout(10):
                await closing
        stored = await FileSessionStorage(path).load()
        assert stored is not None
        assert stored.user == user
        assert (stored.tokens.refresh_token or "").startswith("renewed-")
    finally:
        await core.close()


async def test_close_abandons_the_save_while_another_process_holds_the_lock_past_the_bound(
    service: Service,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lock another process holds past the write bound: close returns then, logs
    storage.keep_at_close_abandoned, and writes nothing under the other's lock."""
    path = tmp_path / "session.json"
    storage = FillingDisk(path)
    core = await service.core(storage, retry=ONCE)
    try:
        await unkept_renewal(core, storage, caplog)
        async with holding(path) as holder:
            monkeypatch.setattr(_storage, "WRITE_END_SECONDS", 0.05)
            async with asyncio.timeout(10):
                await core.close(grace_period=0)
            assert "storage.keep_at_close_abandoned" in event_names(caplog)
            assert await holder.go() == b"saved\n"
    finally:
        await core.close()


class ReadOnlyClear(FileSessionStorage):
    """A session file whose clears fail (``EROFS``) while ``failing``; its watch looks every
    ``poll_interval`` seconds (once a minute unless told)."""

    def __init__(self, path: Path, poll_interval: float = 60) -> None:
        super().__init__(path, poll_interval=poll_interval)
        self.failing = False

    async def clear(self) -> None:
        if self.failing:
            raise OSError(errno.EROFS, "Read-only file system")
        await super().clear()


async def unkept_log_out(core: MimiCore, storage: ReadOnlyClear) -> MimiUser:
    """Sign up (kept), then log out with the clear failing: the file still holds the user
    logged out, the clear is unkept. The file clears again from then on."""
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    storage.failing = True
    with pytest.raises(SessionStorageError):
        await core.auth.log_out()
    storage.failing = False
    return user


async def test_close_leaves_a_sign_in_another_process_stored_after_an_unkept_log_out(
    service: Service, tmp_path: Path
) -> None:
    """A log-out whose clear failed is not cleared at close over the user another process
    signed in since (it logged out the stale session, then signed up): the file keeps the
    other's session."""
    path = tmp_path / "session.json"
    storage = ReadOnlyClear(path)
    core = await service.core(storage, retry=ONCE)
    try:
        ours = await unkept_log_out(core, storage)
        peers = start_peer(service.url, path, service.client_secret)
        async with contextlib.aclosing(peers):  # the peer quits, the test passed or not
            peer = await anext(peers)
            assert (await peer.wait_for(Transition.RESTORED))["user"] == ours.id
            await peer.send("log_out")
            await peer.wait_for(Transition.LOGGED_OUT)
            await peer.send("sign_up")
            theirs = (await peer.wait_for(Transition.ANONYMOUS_CREATED))["user"]
            stored = await FileSessionStorage(path).load()
            assert stored is not None
            assert stored.user.id == theirs
            await core.close()
            assert await FileSessionStorage(path).load() == stored
    finally:
        await core.close()


async def test_close_clears_the_session_an_unkept_log_out_left_in_the_file(
    service: Service, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A log-out whose clear failed, the file still holding that session at close: close
    clears it (storage.kept_at_close), so a restart does not restore the user logged out."""
    caplog.set_level(logging.INFO, logger="mimi_reactive")
    path = tmp_path / "session.json"
    storage = ReadOnlyClear(path)
    core = await service.core(storage, retry=ONCE)
    try:
        ours = await unkept_log_out(core, storage)
        stored = await FileSessionStorage(path).load()
        assert stored is not None
        assert stored.user == ours
        await core.close()
        assert await FileSessionStorage(path).load() is None
        assert "storage.kept_at_close" in event_names(caplog)
    finally:
        await core.close()


async def test_a_sign_in_stored_after_an_unkept_log_out_is_taken_in(
    service: Service, tmp_path: Path
) -> None:
    """After a log-out whose clear failed, a session of another user another process writes
    over the stale one is taken in (the log-out was not of it), and close leaves it."""
    path = tmp_path / "session.json"
    storage = ReadOnlyClear(path, poll_interval=0.05)
    core: MimiCore = await service.core(storage, retry=ONCE)
    try:
        await unkept_log_out(core, storage)
        elsewhere = tmp_path / "elsewhere.json"
        async with service.core(FileSessionStorage(elsewhere)) as other:
            theirs: MimiUser = await other.auth.authenticate(AuthRoute.sign_up_anonymously())
        signed_in = await FileSessionStorage(elsewhere).load()
        assert signed_in is not None
        await FileSessionStorage(path).save(signed_in)  # as another process's sign-in would

        async def taken_in() -> bool:
            return core.auth.current_user == theirs

        async with asyncio.timeout(10):
            await eventually(taken_in)
        await core.close()
        assert await FileSessionStorage(path).load() == signed_in
    finally:
        await core.close()
