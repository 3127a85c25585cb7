"""FileSessionStorage.lock(): excludes other processes and other holders of the same storage;
cancelling a wait or timing out never leaves it held."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mimi_reactive import FileSessionStorage, SessionLockTimeoutError

# Another process: takes the lock, says so, and releases it when told (a line on stdin).
HOLDER = """
import sys, filelock
lock = filelock.FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
sys.stdin.readline()
lock.release()
print("released", flush=True)
"""

# A third process: exits 0 if it can take the lock within 10 s.
TAKER = """
import sys, filelock
filelock.FileLock(sys.argv[1]).acquire(timeout=10)
"""


class Holder:
    """A process holding the storage's lock until ``release()``."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def release(self) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(b"go\n")
        await self.process.stdin.drain()
        async with asyncio.timeout(10):
            assert await self.process.stdout.readline() == b"released\n"
            assert await self.process.wait() == 0


def lock_file(storage: FileSessionStorage) -> str:
    return str(storage.path) + ".lock"


@pytest.fixture
async def holder(tmp_path: Path) -> AsyncIterator[Holder]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        str(tmp_path / "session.json.lock"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    async with asyncio.timeout(10):
        assert await process.stdout.readline() == b"held\n"
    yield Holder(process)
    if process.returncode is None:
        process.kill()
        await process.wait()


async def another_process_can_take(storage: FileSessionStorage) -> bool:
    """Whether a third process gets the lock (within its 10 s)."""
    taker = await asyncio.create_subprocess_exec(sys.executable, "-c", TAKER, lock_file(storage))
    return await taker.wait() == 0


async def still_waiting(task: asyncio.Task[Any]) -> bool:
    """The task has not got the lock within a while (it must not, another process holds it)."""
    done, _ = await asyncio.wait({task}, timeout=0.3)
    return not done


async def test_a_task_cancelled_while_waiting_leaves_the_lock_free(
    tmp_path: Path, holder: Holder
) -> None:
    """Cancel a wait for a lock another process holds: once released, others can take it."""
    storage = FileSessionStorage(tmp_path / "session.json")

    async def hold() -> None:
        async with storage.lock():
            raise AssertionError("got a lock another process holds")

    waiting = asyncio.create_task(hold())
    assert await still_waiting(waiting)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await holder.release()
    assert await another_process_can_take(storage)
    async with asyncio.timeout(10), storage.lock():
        pass


async def test_a_waiting_task_gets_the_lock_once_released(tmp_path: Path, holder: Holder) -> None:
    """A wait for a held lock ends when the other process releases it, and excludes others."""
    storage = FileSessionStorage(tmp_path / "session.json")
    inside = asyncio.Event()
    leave = asyncio.Event()

    async def hold() -> None:
        async with storage.lock():
            inside.set()
            await leave.wait()

    waiting = asyncio.create_task(hold())
    assert await still_waiting(waiting)
    await holder.release()
    async with asyncio.timeout(10):
        await inside.wait()
    taker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", TAKER.replace("timeout=10", "timeout=0"), lock_file(storage)
    )
    assert await taker.wait() != 0, "another process took the lock this one holds"
    leave.set()
    await waiting
    assert await another_process_can_take(storage)


async def test_a_wait_past_the_timeout_fails_clearly_and_holds_nothing(
    tmp_path: Path, holder: Holder
) -> None:
    """After lock_timeout the wait raises an error naming the lock file; nothing stays held."""
    storage = FileSessionStorage(tmp_path / "session.json", lock_timeout=0.2)
    with pytest.raises(SessionLockTimeoutError, match="another process held the lock") as raised:
        async with storage.lock():
            raise AssertionError("got a lock another process holds")
    assert lock_file(storage) in str(raised.value)
    assert isinstance(raised.value, TimeoutError)
    await holder.release()
    assert await another_process_can_take(storage)


async def test_one_storage_excludes_its_own_holders_on_one_loop(tmp_path: Path) -> None:
    """Two tasks locking one storage instance hold it one at a time (the OS lock alone is
    re-entrant per object)."""
    storage = FileSessionStorage(tmp_path / "session.json")
    entered, leave = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with storage.lock():
            entered.set()
            await leave.wait()

    async def hold_next() -> bool:
        async with storage.lock():
            return leave.is_set()  # False: it held the lock another task holds

    first = asyncio.create_task(hold())
    await entered.wait()
    second = asyncio.create_task(hold_next())
    assert await still_waiting(second)
    leave.set()
    async with asyncio.timeout(10):
        assert (await asyncio.gather(first, second))[1]


@pytest.mark.parametrize("attempt", range(20))
async def test_one_storage_excludes_holders_on_other_threads(tmp_path: Path, attempt: int) -> None:
    """A holder of one storage on another thread's loop keeps this loop's holder out until
    it leaves (two blocking cores sharing a storage refresh one at a time)."""
    storage = FileSessionStorage(tmp_path / "session.json")
    entered, leave = threading.Event(), threading.Event()

    async def hold_on_that_thread() -> None:
        async with storage.lock():
            entered.set()
            await asyncio.to_thread(leave.wait, 10)

    that_thread = threading.Thread(target=asyncio.run, args=(hold_on_that_thread(),))
    that_thread.start()
    try:
        assert await asyncio.to_thread(entered.wait, 10)

        async def hold_here() -> bool:
            async with storage.lock():
                return leave.is_set()  # False: it held the lock another thread holds

        here = asyncio.create_task(hold_here())
        assert await still_waiting(here)
        leave.set()
        async with asyncio.timeout(10):
            assert await here
    finally:
        leave.set()
        await asyncio.to_thread(that_thread.join, 10)


@pytest.mark.parametrize("times_out", [True, False])
async def test_a_wait_for_a_holder_of_the_same_storage_ends_holding_nothing(
    tmp_path: Path, times_out: bool
) -> None:
    """A wait for a lock held through the same storage that times out (an error saying so)
    or is cancelled holds nothing: once the holder leaves, the lock is free."""
    storage = FileSessionStorage(tmp_path / "session.json", lock_timeout=0.2 if times_out else 30)
    leave = asyncio.Event()
    entered = asyncio.Event()

    async def hold() -> None:
        async with storage.lock():
            entered.set()
            await leave.wait()

    async def wait_for_it() -> None:
        async with storage.lock():
            raise AssertionError("got a lock another holder of this storage holds")

    holder = asyncio.create_task(hold())
    await entered.wait()
    waiting = asyncio.create_task(wait_for_it())
    if times_out:
        with pytest.raises(SessionLockTimeoutError, match="another holder of this storage"):
            await waiting
    else:
        assert await still_waiting(waiting)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    leave.set()
    await holder
    assert await another_process_can_take(storage)
    async with asyncio.timeout(1), storage.lock():
        pass


async def test_the_lock_file_is_private_in_a_folder_others_may_enter(tmp_path: Path) -> None:
    """The lock file is created 0600 even with umask 022 in an existing 0755 folder (a home
    folder, say): another user who could open it could flock it and hold every renewal up."""
    folder = tmp_path / "home"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    storage = FileSessionStorage(folder / "session.json")
    before = os.umask(0o022)
    try:
        async with storage.lock():
            pass
    finally:
        os.umask(before)
    assert stat.S_IMODE((folder / "session.json.lock").stat().st_mode) == 0o600


async def test_a_lock_file_an_earlier_release_left_open_is_made_private(tmp_path: Path) -> None:
    """A lock file already there with mode 0644 (an earlier release made it so) is made
    0600 before it is first taken: filelock sets the mode only on files it creates."""
    lock_file = tmp_path / "session.json.lock"
    lock_file.touch()
    lock_file.chmod(0o644)
    async with FileSessionStorage(tmp_path / "session.json").lock():
        pass
    assert stat.S_IMODE(lock_file.stat().st_mode) == 0o600
