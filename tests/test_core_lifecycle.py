"""Starting and closing a core: queued work fails clearly, nothing hangs."""

from __future__ import annotations

import asyncio
import contextvars
import errno
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from mimi_reactive import (
    AnonymousAuthManager,
    AuthController,
    AuthRoute,
    BackendSession,
    CoreClosedError,
    Failure,
    FileSessionStorage,
    LogOut,
    MemorySessionStorage,
    MimiCore,
    MimiCoreError,
    Session,
    SessionState,
    TransportError,
    _eager,
    _storage,
)
from mimi_reactive._revocations import _take_over
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer
from mimi_reactive.testing import Reply, ScriptedBackend

from .conftest import ANONYMOUS_ONLY, CLIENT_ID, StartCore
from .helpers import completed, event_names, stored_user_id


async def test_async_with_start_closes(server: IdentityServer, client_secret: str) -> None:
    """`async with MimiCore.start(...)` yields a started core and closes it after."""
    completed: list[bool] = []
    async with MimiCore.start(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        backend=HttpBackend(server.url),
        configuration=ANONYMOUS_ONLY,
    ) as core:
        core.auth.states.subscribe(on_completed=lambda: completed.append(True))
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    assert completed == [True]
    with pytest.raises(CoreClosedError):
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())


async def test_close_fails_queued_commands(start_core: StartCore) -> None:
    """Commands still queued at close fail with CoreClosedError; the running one finishes."""
    core = await start_core()
    running = asyncio.ensure_future(core.auth.authenticate(AuthRoute.sign_up_anonymously()))
    queued = [
        asyncio.ensure_future(core.auth.authenticate(AuthRoute.sign_up_anonymously()))
        for _ in range(3)
    ]
    for _ in range(3):  # let them all enqueue and the worker take the first
        await asyncio.sleep(0)
    await core.close()
    user = await running
    assert core.auth.current_user == user
    for future in queued:
        with pytest.raises(CoreClosedError):
            await future
    result = await AnonymousAuthManager(core).authenticate_anonymous_user("an-id-0123456789")
    assert isinstance(result, Failure)
    assert isinstance(result.error, CoreClosedError)
    await core.close()  # idempotent


async def test_late_subscriber_to_a_closed_core_completes(start_core: StartCore) -> None:
    """Subscribing after close completes at once instead of waiting forever."""
    core = await start_core()
    await core.close()
    events: list[object] = []
    core.auth.states.subscribe(events.append, on_completed=lambda: events.append("done"))
    assert events == ["done"]


async def test_cancelled_caller_leaves_a_whole_state(start_core: StartCore) -> None:
    """Cancelling an await never leaves the state half way; later commands still run."""
    core = await start_core()
    seen: list[SessionState] = []
    core.auth.states.subscribe(seen.append)
    task = asyncio.ensure_future(core.auth.authenticate(AuthRoute.sign_up_anonymously()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    assert core.auth.current_user == user
    assert seen[-1] == core.auth.state


class _TimingOutBackend(ScriptedBackend):
    """Records the task each step of a sign-up runs in, and times out waiting for nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[asyncio.Task[object] | None] = []

    async def authenticate(self, route: AuthRoute, session: Session | None) -> BackendSession:
        self.tasks.append(asyncio.current_task())
        await asyncio.sleep(0)
        self.tasks.append(asyncio.current_task())
        async with asyncio.timeout(0.01):  # cancels the task it was entered in
            await asyncio.Event().wait()
        return await super().authenticate(route, session)


async def test_a_backend_call_runs_in_one_task_that_its_timeouts_cancel(
    start_core: StartCore, eager: bool
) -> None:
    """A backend call runs in one task, not its caller's, before and after it first waits
    (a command may start at once in the caller's call): a timeout it enters ends the call,
    never the caller, whose command fails as a bug in a backend does."""
    backend = _TimingOutBackend()
    core = await start_core(ANONYMOUS_ONLY, backend)
    outcome = await core.auth.run(AuthRoute.sign_up_anonymously())
    before, after = backend.tasks
    assert before is after
    assert before is not asyncio.current_task()
    assert isinstance(outcome.error, MimiCoreError)
    assert isinstance(outcome.error.__cause__, TimeoutError)


class _SlowRevocations(ScriptedBackend):
    """Records the task each step of a revocation runs in; its second revocation times out,
    and ``recorded`` is set once both have recorded theirs."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[tuple[asyncio.Task[object] | None, ...]] = []
        self.started = 0
        self.recorded = asyncio.Event()

    async def revoke(self, session: Session, *, everywhere: bool = False) -> None:
        self.started += 1
        first = self.started == 1
        task = asyncio.current_task()
        await asyncio.sleep(0)
        self.tasks.append((task, asyncio.current_task()))
        try:
            if not first:
                async with asyncio.timeout(0.01):  # cancels the task it was entered in
                    await asyncio.Event().wait()
        finally:
            if len(self.tasks) == 2:
                self.recorded.set()
        await super().revoke(session, everywhere=everywhere)


async def test_a_revocation_runs_in_a_task_of_its_own_that_its_timeouts_cancel(
    start_core: StartCore, eager: bool
) -> None:
    """A background revocation runs in one task, neither the command's nor its caller's,
    before and after it first waits, whether it started at once or not; a timeout it enters
    ends it alone, and no task of the core is left after close."""
    backend = _SlowRevocations()
    core = await start_core(ANONYMOUS_ONLY, backend)
    before = asyncio.all_tasks()
    first, second, third = (backend.add_anonymous_user().anonymous_id for _ in range(3))
    for anonymous_id in (first, second, third):
        outcome = await core.auth.run(AuthRoute.log_in_anonymously(anonymous_id))
        assert outcome.error is None
    await backend.recorded.wait()
    (one, one_after), (two, two_after) = backend.tasks
    assert one is one_after
    assert two is two_after
    assert one is not two
    assert not {one, two} & {asyncio.current_task(), *before}
    await core.close()
    assert asyncio.all_tasks() <= before


@pytest.fixture(params=["at once", "hop"])
def eager(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Each command runs at once where asyncio lets it (its private _enter_task), or, as
    where it does not, always through the worker: both paths keep every guarantee."""
    if request.param == "hop":
        monkeypatch.setattr(_eager, "SUPPORTED", False)
    return _eager.SUPPORTED


class _RecordingBackend(ScriptedBackend):
    """Records the task each sign-up starts in."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[asyncio.Task[object] | None] = []

    async def authenticate(self, route: AuthRoute, session: Session | None) -> BackendSession:
        self.tasks.append(asyncio.current_task())
        return await super().authenticate(route, session)


async def test_a_command_starts_in_its_callers_turn_only_when_it_runs_at_once(
    start_core: StartCore, eager: bool
) -> None:
    """A command awaited with nothing ahead of it calls the backend in its caller's turn of
    the loop when it runs at once, and only at the worker's next turn when it takes the hop."""
    backend = _RecordingBackend()
    core = await start_core(ANONYMOUS_ONLY, backend)
    caller = asyncio.create_task(core.auth.run(AuthRoute.sign_up_anonymously()))
    await asyncio.sleep(0)  # the caller's first step ran; the worker's next has not
    assert len(backend.tasks) == (1 if eager else 0)
    assert (await caller).error is None
    assert backend.tasks[0] is not caller


class _InstantTimeout(ScriptedBackend):
    """Its first sign-up enters a timeout already due before its first wait, then waits for
    nothing; later ones sign up."""

    def __init__(self) -> None:
        super().__init__()
        self.timed_out = False

    async def authenticate(self, route: AuthRoute, session: Session | None) -> BackendSession:
        if not self.timed_out:
            self.timed_out = True
            async with asyncio.timeout(0):  # cancels the task it was entered in, next turn
                await asyncio.Event().wait()
        return await super().authenticate(route, session)


async def test_a_timeout_due_before_the_first_wait_ends_the_call_not_the_core(
    start_core: StartCore, eager: bool
) -> None:
    """A timeout a backend enters already due, before its first wait, cancels the call when
    the worker has not yet taken it over: the command fails as a backend's bug does, and the
    core goes on (the worker was not ended by a cancellation meant for the call)."""
    backend = _InstantTimeout()
    core = await start_core(ANONYMOUS_ONLY, backend)
    await asyncio.sleep(0)  # the worker's first step: it waits for a command
    outcome = await core.auth.run(AuthRoute.sign_up_anonymously())
    assert isinstance(outcome.error, MimiCoreError)
    assert isinstance(outcome.error.__cause__, TimeoutError)
    user = backend.add_anonymous_user()
    again = await core.auth.run(AuthRoute.log_in_anonymously(user.anonymous_id))
    assert again.error is None
    assert core.auth.state.user == user


class _EndlessEverywhere(ScriptedBackend):
    """Its log-out everywhere waits for ever, recording that it started and was cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = False
        self.cancelled = False

    async def revoke(self, session: Session, *, everywhere: bool = False) -> None:
        self.entered = True
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def test_a_worker_ended_unclosed_stops_the_command_started_in_its_name(
    start_core: StartCore,
) -> None:
    """The loop cancelling an unclosed core's worker (asyncio.run ending) before it took over
    a command that started at once cancels that command where it waits, as it would one the
    worker ran: its caller hears CoreClosedError, the cleared storage's log-out is published,
    and no coroutine is left half-run."""
    backend = _EndlessEverywhere()
    core = await start_core(ANONYMOUS_ONLY, backend)
    user = backend.add_anonymous_user()
    assert (await core.auth.run(AuthRoute.log_in_anonymously(user.anonymous_id))).error is None
    caller = asyncio.create_task(core.auth.run(LogOut(everywhere=True)))
    await asyncio.sleep(0)  # the caller's first step ran; the worker's next has not
    assert backend.entered
    (worker,) = (t for t in asyncio.all_tasks() if t.get_name() == "mimi_reactive.session_store")
    worker.cancel()  # what asyncio.run does as the app's main() returns
    with pytest.raises(CoreClosedError):
        await caller
    assert backend.cancelled
    assert core.auth.state.user is None
    with pytest.raises(CoreClosedError):
        await core.auth.run(LogOut())
    await core.close()


class _Observer:
    def auth_controller_did_update(self, *args: object) -> None:
        raise AssertionError("a closed core tells no observer anything")


# Every public method of core.auth, called after close (an awaitable is awaited).
AFTER_CLOSE: dict[str, Callable[[AuthController], object]] = {
    "access_token": lambda auth: auth.access_token(),
    "add_observer": lambda auth: auth.add_observer(_Observer()),
    "authenticate": lambda auth: auth.authenticate(AuthRoute.sign_up_anonymously()),
    "delete_account": lambda auth: auth.delete_account(),
    "dispatch": lambda auth: auth.dispatch(LogOut()),
    "log_out": lambda auth: auth.log_out(),
    "log_out everywhere": lambda auth: auth.log_out(everywhere=True),
    "refresh": lambda auth: auth.refresh(),
    "run": lambda auth: auth.run(LogOut()),
}
# updates() is an iteration: on a closed core it ends at once, as the streams complete
# (tests/test_stream_ordering.py, guarantee 6).
ENDS_AT_ONCE = {"updates"}


def test_the_table_covers_every_public_method() -> None:
    """AFTER_CLOSE calls every public method of AuthController but the iteration."""
    methods = {name for name, member in vars(AuthController).items() if inspect.isfunction(member)}
    public = {method for method in methods if method[0] != "_"}
    assert {name.split()[0] for name in AFTER_CLOSE} | ENDS_AT_ONCE == public


@pytest.mark.parametrize("call", AFTER_CLOSE.values(), ids=AFTER_CLOSE.keys())
async def test_every_call_after_close_raises_core_closed(
    start_core: StartCore, call: Callable[[AuthController], object]
) -> None:
    """After close every method raises CoreClosedError, even access_token with a cached,
    still valid token; the state stays readable."""
    core = await start_core()
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    await core.close()
    with pytest.raises(CoreClosedError):
        await completed(call(core.auth))
    assert core.auth.current_user == user


class GatedStorage(FileSessionStorage):
    """A session file whose next write, once armed, waits in its thread until let go."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.armed = False
        self.started, self.go, self.ended = threading.Event(), threading.Event(), threading.Event()

    def _write(self, document: dict[str, object]) -> None:
        if not self.armed:
            super()._write(document)
            return
        self.armed = False
        self.started.set()
        self.go.wait(10)
        try:
            super()._write(document)
        finally:
            self.ended.set()


class CloseGaveUp(logging.Handler):
    """Set once close() stops waiting for the running command (it cancels it next)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("session.close_cancelled_command"):
            self.seen.set()


@pytest.fixture
def close_gave_up() -> Iterator[CloseGaveUp]:
    handler = CloseGaveUp()
    logger = logging.getLogger("mimi_reactive.session")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


# The command close() cancels, whose first storage write is held up, from a user logged in
# (or not): a sign-in (its save), a switch (its log-out's clear, then a sign-up with
# credentials), a log-out everywhere (its clear, then a call to the service that never answers).
SWITCH = AuthRoute.sign_up(email="switch@example.test", password="a password to switch")
CANCELLED: dict[str, tuple[bool, Callable[[MimiCore], Awaitable[object]]]] = {
    "sign-in": (False, lambda core: core.auth.authenticate(AuthRoute.sign_up_anonymously())),
    "switch": (True, lambda core: core.auth.authenticate(SWITCH)),
    "log-out everywhere": (True, lambda core: core.auth.log_out(everywhere=True)),
}


@pytest.mark.parametrize("attempt", range(20))
@pytest.mark.parametrize("case", CANCELLED.values(), ids=CANCELLED.keys())
async def test_close_cancelling_a_command_mid_write_leaves_state_and_file_agreeing(
    tmp_path: Path,
    close_gave_up: CloseGaveUp,
    case: tuple[bool, Callable[[MimiCore], Awaitable[object]]],
    attempt: int,
) -> None:
    """close(grace_period=0) while the running command writes the session file: the write
    ends and the last published state holds the user the file holds."""
    logged_in, command = case
    path = tmp_path / "session.json"
    storage = GatedStorage(path)
    backend = ScriptedBackend()
    core = await MimiCore.start(client_id="a", client_secret="s", backend=backend, storage=storage)
    if logged_in:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    backend.script(Reply.never(only_for=("revoke",)))
    storage.armed = True
    running = asyncio.ensure_future(command(core))
    assert await asyncio.to_thread(storage.started.wait, 10)
    closing = asyncio.ensure_future(core.close(grace_period=0))
    async with asyncio.timeout(10):
        await close_gave_up.seen.wait()
        storage.go.set()
        await closing
    assert await asyncio.to_thread(storage.ended.wait, 10)
    await asyncio.gather(running, return_exceptions=True)
    published = core.auth.state.user
    assert (published.id if published else None) == stored_user_id(path)


@pytest.mark.parametrize("told", [True, False], ids=["service-told", "service-unreachable"])
async def test_a_log_out_everywhere_that_returned_leaves_nothing_for_a_close_to_apply(
    told: bool,
) -> None:
    """Once log_out(everywhere=True) has returned, the service told or not, no stored result
    is left behind that a close cancelling a later command would publish."""
    backend = ScriptedBackend()
    async with MimiCore.start(backend=backend) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        if not told:
            backend.script(Reply.fail(TransportError("offline"), only_for=("revoke",)))
        outcome = await core.auth.run(LogOut(everywhere=True))
        assert (outcome.error is None) is told
        assert core._store._effects.committed is None


class HungStorage(MemorySessionStorage):
    """Its saves, once armed, never return until released (a network file system, a prompt)."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.started, self.released = asyncio.Event(), asyncio.Event()

    async def save(self, session: Session) -> None:
        if self.armed:
            self.started.set()
            await self.released.wait()
        await super().save(session)


async def test_close_abandons_a_storage_write_that_hangs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """close(grace_period=0) while the running command's save hangs: close returns once the
    write bound has passed, logs session.close_abandoned_write, and the caller gets
    CoreClosedError."""
    monkeypatch.setattr(_storage, "WRITE_END_SECONDS", 0.05)
    caplog.set_level(logging.INFO, logger="mimi_reactive")
    storage = HungStorage()
    core = await MimiCore.start(backend=ScriptedBackend(), storage=storage)
    storage.armed = True
    running = asyncio.ensure_future(core.auth.authenticate(AuthRoute.sign_up_anonymously()))
    try:
        async with asyncio.timeout(10):
            await storage.started.wait()
            await core.close(grace_period=0)
    finally:
        storage.released.set()
    assert "session.close_abandoned_write" in event_names(caplog)
    with pytest.raises(CoreClosedError):
        await running
    assert core.auth.current_user is None  # the sign-in never finished: the state before it


class UnkeptThenHungStorage(HungStorage):
    """Its first save fails (the core holds what it could not keep); armed, the next hangs."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def save(self, session: Session) -> None:
        if not self.failed:
            self.failed = True
            raise OSError(errno.EIO, "disk error")
        await super().save(session)


async def test_close_abandons_a_save_at_close_that_hangs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A sign-in the storage could not keep is saved once more at close; a save that then
    hangs is abandoned after the write bound (logged), and close returns."""
    monkeypatch.setattr(_storage, "WRITE_END_SECONDS", 0.05)
    caplog.set_level(logging.INFO, logger="mimi_reactive")
    storage = UnkeptThenHungStorage()
    core = await MimiCore.start(backend=ScriptedBackend(), storage=storage)
    outcome = await core.auth.run(AuthRoute.sign_up_anonymously())
    assert outcome.state.user is not None  # the sign-in works here, unkept
    assert outcome.state.degraded
    storage.armed = True
    try:
        async with asyncio.timeout(10):
            await core.close(grace_period=0)
    finally:
        storage.released.set()
    assert storage.started.is_set()
    assert "storage.keep_at_close_abandoned" in event_names(caplog)


async def test_a_spare_task_cancelled_as_it_is_handed_a_revocation_cancels_the_revocation() -> None:
    """A revocation started in a waiting spare task's name that enters a timeout already due
    before its first wait hears TimeoutError, though the spare is cancelled before it took the
    revocation over: the cancellation is the revocation's, not the spare's to drop it."""
    heard: list[BaseException] = []
    waited: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def revocation() -> None:
        try:
            async with asyncio.timeout(0):  # cancels the task it was entered in
                await waited
        except BaseException as error:
            heard.append(error)
            raise

    context = contextvars.copy_context()
    handed: asyncio.Future[_eager.Started[None] | None] = asyncio.get_running_loop().create_future()
    spare = asyncio.get_running_loop().create_task(_take_over(handed), context=context)
    await asyncio.sleep(0)  # the spare waits to be handed a revocation
    started = _eager.start(spare, context, revocation())
    assert isinstance(started, _eager.Started)
    handed.set_result(started)
    with pytest.raises(TimeoutError):
        await spare
    assert [type(error) for error in heard] == [TimeoutError]
    assert waited.cancelled()  # as a task's cancellation cancels what it waits on
