"""FileSessionStorage: atomic, private, versioned, and never loses the last good session."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mimi_reactive import (
    AuthRoute,
    FileSessionStorage,
    MemorySessionStorage,
    MimiCore,
    SessionStorageError,
    Transition,
)
from mimi_reactive.testing import ScriptedBackend

from .helpers import event_names, library_events
from .session_writer import numbered

REPO = Path(__file__).resolve().parent.parent


async def test_round_trip_and_clear(tmp_path: Path) -> None:
    """What is saved loads back equal; clear() leaves a logged-out file, not a missing one."""
    storage = FileSessionStorage(tmp_path / "state" / "session.json")
    assert await storage.load() is None
    await storage.save(numbered(7))
    assert await storage.load() == numbered(7)
    await storage.clear()
    assert await storage.load() is None
    assert json.loads(storage.path.read_text()) == {"schema": 1, "session": None}


async def test_file_is_private_and_versioned(tmp_path: Path) -> None:
    """The file is 0600 in a 0700 folder it created, and carries its schema version."""
    storage = FileSessionStorage(tmp_path / "private" / "session.json")
    await storage.save(numbered(1))
    assert stat.S_IMODE(storage.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(storage.path.parent.stat().st_mode) == 0o700
    document = json.loads(storage.path.read_text())
    assert document["schema"] == 1
    assert document["session"]["user"]["id"] == "user-1"


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe binary",
        json.dumps({"schema": 99, "session": None}).encode(),
        json.dumps({"schema": 1, "session": {"user": {}}}).encode(),
        json.dumps([1, 2]).encode(),
    ],
)
async def test_unreadable_file_is_moved_aside_with_a_warning(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A corrupt or unknown-version file is moved aside, logged, and loads as no session."""
    path = tmp_path / "session.json"
    path.write_bytes(content)
    caplog.set_level(logging.DEBUG, logger="mimi_reactive")
    assert await FileSessionStorage(path).load() is None
    assert not path.exists()
    aside = list(tmp_path.glob("session.json.unreadable-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes() == content
    assert event_names(caplog) == ["storage.unreadable_session_moved_aside"]
    assert library_events(caplog)[0].levelno == logging.WARNING


async def test_stale_temporaries_are_removed_on_load(tmp_path: Path) -> None:
    """A temporary file a crash left behind (it holds tokens) is deleted once it is old."""
    storage = FileSessionStorage(tmp_path / "session.json")
    await storage.save(numbered(1))
    stale = tmp_path / ".session.json.deadbeef.tmp"
    fresh = tmp_path / ".session.json.cafe.tmp"
    stale.write_text("tokens")
    fresh.write_text("tokens")
    os.utime(stale, (0, 0))
    assert await storage.load() == numbered(1)
    assert not stale.exists()
    assert fresh.exists()


async def test_changes_reports_at_start_then_each_other_write(tmp_path: Path) -> None:
    """changes() yields once when the watch starts, then after each write by another writer."""
    path = tmp_path / "session.json"
    ours = FileSessionStorage(path, poll_interval=0.02)
    theirs = FileSessionStorage(path)
    seen = ours.changes()

    async def next_change() -> None:
        async with asyncio.timeout(5):
            await anext(seen)

    await next_change()  # the watch started: the caller loads what is there now
    for write in (theirs.save(numbered(3)), theirs.clear()):
        pending = asyncio.ensure_future(next_change())
        await write
        await pending
    assert await ours.load() is None
    pending = asyncio.ensure_future(next_change())
    done, _ = await asyncio.wait({pending}, timeout=0.2)
    assert not done, "no write, no change"
    pending.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pending
    await seen.aclose()


async def test_memory_storage_round_trip() -> None:
    """MemorySessionStorage keeps a session for the life of the object."""
    storage = MemorySessionStorage()
    await storage.save(numbered(2))
    assert await storage.load() == numbered(2)
    await storage.clear()
    assert await storage.load() is None


CRASHES = 200
PARALLEL = 4


class Writers:
    """A ``tests.session_writer serve`` process: forks writers for us to SIGKILL."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls) -> Writers:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.session_writer",
            "serve",
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def line(self) -> list[bytes]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 30)
        assert line, "the writer server stopped"
        return line.split()

    async def crash_once(self, path: Path, last_good: int) -> int:
        """Fork a writer, SIGKILL it at a random moment, return the number it printed last."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{path} {last_good}\n".encode())
        await self.process.stdin.drain()
        pid: int | None = None
        printed: list[int] = []
        while pid is None or not printed:  # it runs, and has saved at least once
            match await self.line():
                case [b"writer", number]:
                    pid = int(number)
                case [b"ended", _]:
                    raise AssertionError("the writer did not start")
                case [number]:
                    printed.append(int(number))
        await asyncio.sleep(random.uniform(0, 0.03))
        os.kill(pid, signal.SIGKILL)
        while True:
            match await self.line():
                case [b"ended", status]:
                    assert os.waitstatus_to_exitcode(int(status)) == -signal.SIGKILL
                    return printed[-1]
                case [number]:
                    printed.append(int(number))

    async def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert await self.process.wait() == 0


async def test_sigkill_while_saving_never_loses_the_last_good_session(tmp_path: Path) -> None:
    """200 SIGKILLs mid-save: the file always loads, to the last or the one being saved."""

    async def crash_repeatedly(lane: int) -> int:
        path = tmp_path / f"lane-{lane}" / "session.json"
        writers = await Writers.start()
        known = 0
        for _ in range(CRASHES // PARALLEL):
            printed = await writers.crash_once(path, known)
            loaded = await FileSessionStorage(path).load()
            assert loaded is not None, "the session was lost"
            number = int(loaded.user.id.removeprefix("user-"))
            # Saved and printed, or saved with the kill landing before the print.
            assert number in (printed, printed + 1)
            assert loaded == numbered(number)
            assert not list(path.parent.glob("*.unreadable-*"))
            known = number
        await writers.stop()
        return known

    finals = await asyncio.gather(*(crash_repeatedly(lane) for lane in range(PARALLEL)))
    assert all(final > CRASHES // PARALLEL for final in finals)


async def test_a_session_that_cannot_be_saved_is_kept_in_memory_and_the_log_says_where(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A save that fails leaves the session working in memory and tells the app (the outcome
    and the degraded state carry SessionStorageError); the error and the log name the
    storage's place and the OS's reason, and never the session."""
    caplog.set_level(logging.DEBUG, logger="mimi_reactive")
    path = tmp_path / "session.json"
    storage = FileSessionStorage(path)
    async with MimiCore.start(
        client_id="a", client_secret="s", backend=ScriptedBackend(), storage=storage
    ) as core:
        path.mkdir()  # a directory where the file goes: no save can replace it
        outcome = await core.auth.run(AuthRoute.sign_up_anonymously())
        user = core.auth.current_user
        assert user is not None
        assert user.anonymous_id is not None
        assert isinstance(outcome.error, SessionStorageError)
        assert outcome.state.error is outcome.error
        assert outcome.state.transition is Transition.ANONYMOUS_CREATED
        assert outcome.state.degraded
        assert str(path) in str(outcome.error)
        assert "Is a directory" in str(outcome.error)
        assert user.anonymous_id not in str(outcome.error)
        failed = [r for r in library_events(caplog) if r.getMessage().startswith("storage.")]
        assert failed[0].getMessage().startswith("storage.save_failed ")
        assert all(r.levelno == logging.ERROR for r in failed)
        line = failed[0].getMessage()
        assert str(path) in line
        assert "Is a directory" in line
        assert user.anonymous_id not in line


async def test_a_session_file_start_cannot_read_is_a_storage_error(tmp_path: Path) -> None:
    """A session file the OS will not open (here a symbolic link to itself: ELOOP, as
    PermissionError would) makes start raise SessionStorageError naming the path and the OS's
    reason, with the OSError chained, instead of the raw OSError."""
    path = tmp_path / "session.json"
    path.symlink_to(path)
    with pytest.raises(SessionStorageError) as failed:
        await MimiCore.start(
            client_id="a",
            client_secret="s",
            backend=ScriptedBackend(),
            storage=FileSessionStorage(path),
        )
    assert str(path) in str(failed.value)
    assert "Too many levels of symbolic links" in str(failed.value)
    assert isinstance(failed.value.__cause__, OSError)


@contextlib.contextmanager
def fifo_at(path: Path) -> Iterator[None]:
    """A FIFO at ``path``; at the end, one writer opens and closes it, so that a reader stuck
    waiting for one (the fault under test) reads end-of-file and its thread ends."""
    os.mkfifo(path, 0o600)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # ENXIO: no reader waits, as it should be
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


async def test_a_fifo_at_the_path_is_refused_at_once_and_saved_over(tmp_path: Path) -> None:
    """A FIFO at the session path is not read (the read would wait for a writer forever, and
    its thread kept the process from exiting): start raises SessionStorageError saying it is
    not a regular file, and a save replaces it with the session file."""
    path = tmp_path / "session.json"
    with fifo_at(path):
        with pytest.raises(SessionStorageError) as failed:
            await asyncio.wait_for(
                MimiCore.start(backend=ScriptedBackend(), storage=FileSessionStorage(path)), 10
            )
        assert str(path) in str(failed.value)
        assert "not a regular file" in str(failed.value)
        storage = FileSessionStorage(path)
        await asyncio.wait_for(storage.save(numbered(3)), 10)
        assert await storage.load() == numbered(3)


async def test_a_session_file_a_renewal_cannot_read_is_renewed_and_saved_over(
    tmp_path: Path,
) -> None:
    """A renewal that cannot read the session file (replaced by a symbolic link to itself)
    renews all the same, logging the failed read, and saves the new pair over it, instead of
    failing as a crashed command."""
    path = tmp_path / "session.json"
    async with MimiCore.start(
        client_id="a",
        client_secret="s",
        backend=ScriptedBackend(),
        storage=FileSessionStorage(path),
    ) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        loop = tmp_path / "loop"
        loop.symlink_to(path.name)
        loop.replace(path)  # at once: no reader ever finds the file missing
        await core.auth.refresh()
        assert core.auth.current_user == user
        assert not core.auth.state.degraded
        # The watch may have found the file lost first (DEGRADED): the renewal recovered it.
        assert core.auth.state.transition in {Transition.ANONYMOUS_CREATED, Transition.RECOVERED}
        stored = await FileSessionStorage(path).load()
        assert stored is not None
        assert stored.tokens.access_token == await core.auth.access_token()
