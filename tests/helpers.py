"""Small test helpers that wrap real things; nothing here fakes the server."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import cast

import pytest
from aiohttp import web

from mimi_reactive import (
    AuthBackend,
    AuthRoute,
    BackendCapabilities,
    BackendSession,
    BlockingMimiCore,
    ClientCredentials,
    DeletingBackend,
    LogOut,
    MimiConfiguration,
    MimiCore,
    Session,
    SessionState,
    Transition,
)
from mimi_reactive.testing import ScriptedBackend

SIGN_UP = AuthRoute.sign_up_anonymously()


class TokenWatcher:
    """Records what ``core.auth.access_tokens`` publishes and lets a test wait for it."""

    def __init__(self, core: MimiCore) -> None:
        self.tokens: list[str | None] = []
        self._published = asyncio.Event()
        core.auth.access_tokens.subscribe(self._record)

    def _record(self, token: str | None) -> None:
        self.tokens.append(token)
        self._published.set()

    async def wait_for(self, found: Callable[[str | None], bool]) -> None:
        """Wait until the last token published is ``found`` (bound it with a timeout)."""
        while not found(self.tokens[-1]):
            self._published.clear()
            await self._published.wait()


class CountingBackend:
    """Delegates every call to a real backend and counts them by method name."""

    def __init__(self, inner: AuthBackend) -> None:
        self.inner = inner
        self.counts: Counter[str] = Counter()
        """How many times each method was called, by name (ScriptedBackend.calls, by
        contrast, lists the calls in order)."""
        self.sessions: list[BackendSession] = []
        """Every session the service returned, tokens included, for tests to look for."""
        self._called = asyncio.Event()

    @property
    def capabilities(self) -> BackendCapabilities:
        return self.inner.capabilities

    @property
    def total(self) -> int:
        """Calls that reach the identity service (open and close do not)."""
        return sum(self.counts.values())

    async def open(self, client: ClientCredentials) -> None:
        await self.inner.open(client)

    async def close(self) -> None:
        await self.inner.close()

    async def authenticate(self, route: AuthRoute, session: Session | None) -> BackendSession:
        self._count("authenticate")
        return self._keep(await self.inner.authenticate(route, session))

    async def refresh(self, session: Session) -> BackendSession:
        self._count("refresh")
        return self._keep(await self.inner.refresh(session))

    async def revoke(self, session: Session, *, everywhere: bool = False) -> None:
        self._count("revoke")
        await self.inner.revoke(session, everywhere=everywhere)

    async def delete(self, session: Session) -> None:
        self._count("delete")
        await cast(DeletingBackend, self.inner).delete(session)

    async def wait_for_calls(self, name: str, count: int = 1) -> None:
        """Wait until ``name`` has been called ``count`` times (bound it with a timeout)."""
        while self.counts[name] < count:
            self._called.clear()
            await self._called.wait()

    def _count(self, name: str) -> None:
        self.counts[name] += 1
        self._called.set()

    def _keep(self, session: BackendSession) -> BackendSession:
        self.sessions.append(session)
        return session


def library_events(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The records the library logged (its loggers are named ``mimi_reactive...``)."""
    return [r for r in caplog.records if r.name.startswith("mimi_reactive")]


def event_names(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The names of the events the library logged, in order."""
    return [getattr(r, "event", r.getMessage()) for r in library_events(caplog)]


def transitions(states: list[SessionState]) -> list[Transition]:
    return [state.transition for state in states]


REPO = Path(__file__).resolve().parent.parent


def stored_user_id(path: Path) -> str | None:
    """The id of the user stored in the file, as a fresh process would read it (None: no
    file, no JSON, or a stored log-out)."""
    with contextlib.suppress(FileNotFoundError, ValueError):
        session = json.loads(path.read_text())["session"]
        return None if session is None else str(session["user"]["id"])
    return None


def run_python(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGUMENTS`` in a fresh process from the checkout; capture its output."""
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def completed(result: object) -> object:
    """The result of a call, awaited if it is awaitable (for tables mixing both kinds)."""
    return await result if inspect.isawaitable(result) else result


@contextlib.asynccontextmanager
async def serving_app(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def settle(core: MimiCore) -> None:
    """Wait until every command queued so far, and any they queued, has run."""
    for _ in range(5):
        await core.auth.run(LogOut())  # goes to the back of the queue


def join_all(threads: list[threading.Thread]) -> None:
    """Wait for every thread to finish."""
    for thread in threads:
        thread.join()


def start_blocking(backend: ScriptedBackend | None = None) -> BlockingMimiCore:
    """A blocking core of an anonymous-only app on ``backend`` (a fresh ScriptedBackend by
    default)."""
    return BlockingMimiCore.start(
        client_id="app",
        client_secret="secret",
        backend=backend or ScriptedBackend(),
        configuration=MimiConfiguration(allow_anonymous_user_only=True),
    )


def finishes(body: Callable[[], object], within: float = 20.0) -> bool:
    """Run ``body`` on a daemon thread; True if it returned in time (a hang fails the test
    instead of stalling it)."""
    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(within)
    return not thread.is_alive()
