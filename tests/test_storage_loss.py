"""A session file lost while the core runs (removed, or unreadable) is reported and written
back, never taken as a log-out; only a stored log-out ({"session": null}) is one."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from mimi_reactive import (
    AuthRoute,
    ConfigurationError,
    FileSessionStorage,
    MimiConfiguration,
    MimiCore,
    MimiUser,
    RetryPolicy,
    SessionState,
    SessionStorageError,
    Transition,
    _keeper,
)
from mimi_reactive._messages import RefreshFailed, SessionAdopted
from mimi_reactive._reducer import IllegalTransitionError, reduce
from mimi_reactive.testing import ScriptedBackend, StateRecorder

from .helpers import stored_user_id
from .session_writer import numbered

POLL = 0.02


def remove(path: Path) -> None:
    """A user cleaning their configuration folder."""
    path.unlink()


def corrupt(path: Path) -> None:
    """A disk glitch or a sync tool writing garbage in place."""
    path.write_bytes(b"\x00garbage")


LOSSES: dict[str, tuple[Callable[[Path], None], str]] = {
    "removed": (remove, "the session file was removed"),
    "corrupted": (corrupt, "the session file was unreadable and was moved aside"),
}


@contextlib.asynccontextmanager
async def running_core(path: Path) -> AsyncIterator[tuple[MimiCore, StateRecorder]]:
    """A core on a file watched every POLL seconds, with an anonymous user signed up."""
    storage = FileSessionStorage(path, poll_interval=POLL)
    async with MimiCore.start(
        client_id="a", client_secret="s", backend=ScriptedBackend(), storage=storage
    ) as core:
        recorder = StateRecorder(core)
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        yield core, recorder


async def wait_for(recorder: StateRecorder, transition: Transition) -> SessionState:
    async with asyncio.timeout(10):
        return await recorder.wait_for(transition)


class LogEvents(logging.Handler):
    """Sets an event per log message the session logger writes, for a test to wait on."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, asyncio.Event] = {}

    def event(self, message: str) -> asyncio.Event:
        return self.seen.setdefault(message, asyncio.Event())

    def emit(self, record: logging.LogRecord) -> None:
        self.event(record.getMessage().split(" ", 1)[0]).set()

    async def wait_for(self, message: str) -> None:
        async with asyncio.timeout(10):
            await self.event(message).wait()


@pytest.fixture
def log_events() -> Iterator[LogEvents]:
    """The session logger's messages, from warning up."""
    handler = LogEvents()
    logger = logging.getLogger("mimi_reactive.session")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.mark.parametrize("loss", LOSSES.values(), ids=LOSSES.keys())
async def test_a_session_file_lost_while_running_is_written_back(
    tmp_path: Path, loss: tuple[Callable[[Path], None], str], log_events: LogEvents
) -> None:
    """A file removed or corrupted under a running core keeps the user logged in and the
    session is written back (logged, as the failed load is), so a restart restores it;
    nothing degrades, as the storage again holds what the core does."""
    lose, _reason = loss
    path = tmp_path / "session.json"
    async with running_core(path) as (core, recorder):
        user = core.auth.current_user
        assert user is not None
        lose(path)
        await log_events.wait_for("storage.session_written_back")
        assert stored_user_id(path) == user.id
        assert core.auth.current_user == user
        assert not {Transition.LOGGED_OUT, Transition.DEGRADED} & set(recorder.transitions)
    restored = await FileSessionStorage(path).load()
    assert restored is not None
    assert restored.user == user


async def test_a_lost_file_is_written_back_only_under_the_lock_and_not_over_a_newer_save(
    tmp_path: Path, log_events: LogEvents
) -> None:
    """While another process holds the storage's lock (a refresh), the lost file is not
    written back; what that process stores meanwhile is taken in, not overwritten."""
    path = tmp_path / "session.json"
    async with running_core(path) as (_core, recorder):
        other = FileSessionStorage(path)
        newer = attrs.evolve(numbered(4), obtained_at=time.time())  # not due for renewal
        async with other.lock():
            path.unlink()
            await log_events.wait_for("storage.load_failed")
            assert not path.exists()
            await other.save(newer)
        switched = await wait_for(recorder, Transition.SWITCHED_USER)
        assert switched.user == newer.user
        assert stored_user_id(path) == newer.user.id


async def test_a_lost_file_that_cannot_be_written_back_reports_the_failed_save(
    tmp_path: Path,
) -> None:
    """When the lost file cannot be written back either (a directory took its place), the
    user stays logged in and the state carries the save's error, the session kept in memory."""
    path = tmp_path / "session.json"
    async with running_core(path) as (core, recorder):
        user = core.auth.current_user
        path.unlink()
        path.mkdir()
        degraded = await wait_for(recorder, Transition.DEGRADED)
        assert degraded.user == user
        assert isinstance(degraded.error, SessionStorageError)
        assert "could not save" in str(degraded.error)
        assert core.auth.current_user == user
        path.rmdir()  # let close() keep it
    restored = await FileSessionStorage(path).load()
    assert restored is not None
    assert restored.user == user


@pytest.mark.parametrize("attempt", range(20))
async def test_a_write_back_kept_after_the_keeper_gave_up_recovers_and_refreshes_resume(
    tmp_path: Path, log_events: LogEvents, attempt: int
) -> None:
    """A directory in the session file's place until the keeper gives up renewing: once it is
    gone, the write-back that keeps the session ends the degraded state (RECOVERED, no error)
    and the keeper refreshes again on its schedule, with no call from the app."""
    path = tmp_path / "session.json"
    backend = ScriptedBackend(token_ttl=1.0)  # due again 0.8 s after each renewal
    retry = RetryPolicy(initial_delay=0.01, max_delay=0.02, max_attempts=2)
    async with MimiCore.start(
        client_id="a",
        client_secret="s",
        backend=backend,
        storage=FileSessionStorage(path, poll_interval=POLL),
        configuration=MimiConfiguration(retry=retry),
    ) as core:
        recorder = StateRecorder(core)
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        user = core.auth.current_user
        assert user is not None
        path.unlink()
        path.mkdir()
        await log_events.wait_for("session.refresh_gave_up")
        assert core.auth.state.degraded
        path.rmdir()
        recovered = await wait_for(recorder, Transition.RECOVERED)
        assert (recovered.user, recovered.error, recovered.degraded) == (user, None, False)
        assert stored_user_id(path) == user.id
        refreshes = backend.calls.count("refresh")
        refreshed = asyncio.Event()

        def on_token(_: str | None) -> None:
            if backend.calls.count("refresh") > refreshes:
                refreshed.set()

        core.auth.access_tokens.subscribe(on_token)
        async with asyncio.timeout(10):
            await refreshed.wait()


async def test_a_log_out_stored_by_another_process_is_still_followed(tmp_path: Path) -> None:
    """A log-out another process stores ({"session": null}) logs the user out, with no error,
    and a file removed after that is no loss."""
    path = tmp_path / "session.json"
    async with running_core(path) as (_, recorder):
        await FileSessionStorage(path).clear()
        logged_out = await wait_for(recorder, Transition.LOGGED_OUT)
        assert logged_out.error is None
        path.unlink()
        fresh = attrs.evolve(numbered(4), obtained_at=time.time())  # not due for renewal
        await FileSessionStorage(path).save(fresh)
        await wait_for(recorder, Transition.LOGGED_IN)
        assert Transition.DEGRADED not in recorder.transitions


async def test_a_storage_raises_a_loss_only_while_it_watches_a_file_it_saw_hold_a_session(
    tmp_path: Path,
) -> None:
    """Unwatched (a start), a missing file is nothing stored; watched, after a session was
    read or written, it is a loss (an OSError saying which); after a stored log-out, not."""
    path = tmp_path / "session.json"
    storage = FileSessionStorage(path)
    await storage.save(numbered(1))
    path.unlink()
    assert await storage.load() is None  # not watched: a start after the file was removed
    watch = storage.changes()
    await anext(watch)
    assert await storage.load() is None  # it last read no session
    await storage.save(numbered(2))
    path.unlink()
    with pytest.raises(OSError, match="the session file was removed") as lost:
        await storage.load()
    assert "refresh" not in str(lost.value)
    await storage.clear()
    path.unlink()
    assert await storage.load() is None
    await watch.aclose()
    await storage.save(numbered(3))
    path.unlink()
    assert await storage.load() is None  # the watch ended


async def test_a_save_removed_before_the_next_poll_is_a_change(tmp_path: Path) -> None:
    """The watch reports a save of ours that was removed before it polled: the file looks as
    it did (missing), yet the session saved is lost."""
    path = tmp_path / "session.json"
    storage = FileSessionStorage(path, poll_interval=0.05)
    watch = storage.changes()
    await anext(watch)
    await storage.save(numbered(1))
    path.unlink()
    async with asyncio.timeout(5):
        await anext(watch)
    with pytest.raises(OSError, match="the session file was removed"):
        await storage.load()
    await watch.aclose()


_ANONYMOUS = MimiUser("user-a", "anonymous-id-of-user-a")
_LOST = SessionStorageError("the session file was removed")


def test_a_lost_session_degrades_a_logged_in_state_once() -> None:
    """The reducer turns a loss into DEGRADED with the error; a degraded state stays as it is
    until a write-back keeps the session (RECOVERED; nothing new if it was not degraded), and
    a loss while nobody is logged in is a bug of the shell."""
    logged_in = SessionState(_ANONYMOUS, transition=Transition.LOGGED_IN)
    degraded = reduce(logged_in, SessionAdopted(_ANONYMOUS, _LOST))
    assert degraded == SessionState(
        _ANONYMOUS, _ANONYMOUS, Transition.DEGRADED, _LOST, degraded=True
    )
    assert degraded == reduce(logged_in, RefreshFailed(_LOST))
    assert reduce(degraded, SessionAdopted(_ANONYMOUS, _LOST)) is degraded
    recovered = reduce(degraded, SessionAdopted(_ANONYMOUS, kept=True))
    assert recovered == SessionState(_ANONYMOUS, _ANONYMOUS, Transition.RECOVERED)
    assert reduce(logged_in, SessionAdopted(_ANONYMOUS, kept=True)) is logged_in
    with pytest.raises(IllegalTransitionError):
        reduce(SessionState(), SessionAdopted(_ANONYMOUS, _LOST))


BAD_ARGUMENTS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"poll_interval": -1}, ConfigurationError, "poll_interval"),
    ({"poll_interval": 0}, ConfigurationError, "poll_interval must be 0.01 s or more"),
    ({"poll_interval": 0.001}, ConfigurationError, "poll_interval must be 0.01 s or more"),
    ({"poll_interval": math.nan}, ConfigurationError, "poll_interval"),
    ({"poll_interval": math.inf}, ConfigurationError, "poll_interval"),
    ({"poll_interval": "0.2"}, TypeError, "poll_interval"),
    ({"poll_interval": True}, TypeError, "poll_interval"),
    ({"poll_interval": None}, TypeError, "poll_interval"),
    ({"lock_timeout": -1}, ConfigurationError, "lock_timeout"),
    ({"lock_timeout": math.nan}, ConfigurationError, "lock_timeout"),
    ({"lock_timeout": math.inf}, ConfigurationError, "lock_timeout"),
    ({"lock_timeout": "30"}, TypeError, "lock_timeout"),
    ({"path": None}, TypeError, "path must be a str or a path, not NoneType"),
    ({"path": 3}, TypeError, "path must be a str or a path, not int"),
    ({"path": b"session.json"}, TypeError, "path must be a str or a path, not bytes"),
]


@pytest.mark.parametrize(("arguments", "kind", "message"), BAD_ARGUMENTS)
def test_file_storage_refuses_bad_arguments_by_name(
    tmp_path: Path, arguments: dict[str, Any], kind: type[Exception], message: str
) -> None:
    """A path that is no path, a poll that would spin the loop (under 0.01 s, not finite) or a
    lock wait that is negative or never ends fails at construction, naming the argument."""
    given: dict[str, Any] = {"path": tmp_path / "session.json", **arguments}
    path = given.pop("path")
    with pytest.raises(kind, match=message):
        FileSessionStorage(path, **given)


def test_file_storage_takes_arguments_at_their_bounds(tmp_path: Path) -> None:
    """The shortest poll, a lock tried once, and a plain str path are taken."""
    storage = FileSessionStorage(str(tmp_path / "s.json"), poll_interval=0.01, lock_timeout=0)
    assert (storage.path, storage.poll_interval, storage.lock_timeout) == (
        tmp_path / "s.json",
        0.01,
        0,
    )


class FailingOnceWatch(FileSessionStorage):
    """A file storage whose first watch the OS fails (as a permission or a symlink loop
    would), after it has begun."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, poll_interval=POLL)
        self.watches = 0

    async def changes(self) -> AsyncGenerator[None, None]:
        self.watches += 1
        if self.watches == 1:
            yield
            raise OSError(errno.ELOOP, "Too many levels of symbolic links")
        async for change in super().changes():
            yield change


async def test_a_watch_the_os_fails_starts_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A watch the OS fails starts again after a pause: the core still follows another
    process's log-out."""
    monkeypatch.setattr(_keeper, "_FIRST_WATCH_PAUSE", 0.01)
    path = tmp_path / "session.json"
    storage = FailingOnceWatch(path)
    async with MimiCore.start(
        client_id="a", client_secret="s", backend=ScriptedBackend(), storage=storage
    ) as core:
        recorder = StateRecorder(core)
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        await FileSessionStorage(path).clear()  # another process logs out
        await wait_for(recorder, Transition.LOGGED_OUT)
        assert storage.watches == 2
