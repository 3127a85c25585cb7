"""``mimi-reactive demo``: the anonymous-user flow, end to end, against an in-process server."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from ._config import MimiConfiguration
from ._core import MimiCore
from ._manager import AnonymousAuthManager
from ._messages import AuthRoute
from ._redaction import mask
from ._results import Failure
from ._state import SessionState
from .backends.http import HttpBackend
from .server import IdentityServer

__all__ = ["PROMPT", "enter_pressed", "run_demo"]

_CLIENT_ID = "demo-app"
_ANONYMOUS_ONLY = MimiConfiguration(allow_anonymous_user_only=True)


def describe(state: SessionState) -> str:
    """One line for a state, with ids shortened and the anonymous id masked."""
    user = state.user
    who = (
        "nobody" if user is None else f"user {user.id[:8]} (anonymous id {mask(user.anonymous_id)})"
    )
    line = f"{state.transition.value:<17} {who}"
    if state.previous_user is not None and state.previous_user != user:
        line += f", was {state.previous_user.id[:8]}"
    if state.error is not None:
        line += f", error: {state.error}"
    return line


PROMPT = "   (press Enter to run this step)"
"""What ``enter_pressed`` writes to stderr (stdout is the walk itself) before it waits."""


async def enter_pressed() -> None:
    """Say ``PROMPT`` on stderr, then return once stdin has a line (Enter) or is at its end,
    without blocking the loop, so a Ctrl-C while the demo waits ends it as at any other point.
    Read straight from the file descriptor: sys.stdin's buffer could hold the next lines,
    which the next wait would not see."""
    print(PROMPT, file=sys.stderr, flush=True)
    loop = asyncio.get_running_loop()
    try:
        stdin = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):  # no stdin at all: nothing to wait for
        return
    readable: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not readable.done():
            readable.set_result(None)

    try:
        loop.add_reader(stdin, ready)
    except PermissionError:  # a regular file: always readable (epoll refuses to watch it)
        pass
    else:
        try:
            await readable
        finally:
            loop.remove_reader(stdin)
    os.read(stdin, 4096)  # a terminal gives one line a read; end of input gives b""


async def run_demo(
    out: Callable[[str], None] = print, *, pause: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Walk the flow, printing each state as a subscriber sees it; a line ``out`` cannot
    write (``BrokenPipeError``: stdout's reader went away, as ``| head`` does) stops it.
    ``pause`` (``demo --step``: ``enter_pressed``) is awaited after each step's heading."""
    client_secret = secrets.token_urlsafe(32)
    broken: list[BrokenPipeError] = []

    def say(line: str) -> None:
        """One line of the walk, unless an earlier one could not be written: its error."""
        if broken:
            raise broken[0]
        out(line)

    def show(state: SessionState) -> None:
        """A subscriber's line for ``state``."""
        # A subscriber's error would only be logged by the stream (stream.subscriber_failed)
        # and the demo go on: kept instead for the demo's next line to raise.
        if not broken:
            try:
                out(f"   state: {describe(state)}")
            except BrokenPipeError as error:
                broken.append(error)

    async def step(heading: str) -> None:
        """A numbered step's heading; then, if asked, wait before doing it."""
        say(heading)
        if pause is not None:
            await pause()

    with tempfile.TemporaryDirectory() as directory:
        async with IdentityServer(
            client_id=_CLIENT_ID,
            client_secret=client_secret,
            database=Path(directory) / "identity.sqlite3",
        ) as server:
            say(f"reference server on {server.url} (temporary SQLite database)")

            def start() -> AbstractAsyncContextManager[MimiCore]:
                return MimiCore.start(
                    client_id=_CLIENT_ID,
                    client_secret=client_secret,
                    configuration=_ANONYMOUS_ONLY,
                    backend=HttpBackend(server.url),
                )

            await step("\n1. first launch: the app subscribes, then signs up anonymously")
            async with start() as core:
                core.auth.states.subscribe(show)
                user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
                stored_id = user.anonymous_id
                say(f"   the app stores anonymous id {mask(stored_id)} beside its own account")
                await step("\n2. the user logs out")
                await core.auth.log_out()

            await step("\n3. reinstall: a new MimiCore logs back in with the stored id")
            async with start() as core:
                core.auth.states.subscribe(show)
                manager = AnonymousAuthManager(core)
                result = await manager.authenticate_anonymous_user(stored_id)
                say(f"   result: {result!r}")

                await step("\n4. the same person's other product created a second anonymous user")
                async with start() as other:
                    second = await other.auth.authenticate(AuthRoute.sign_up_anonymously())
                say("   logging in with its id switches users (log out first, then log in)")
                result = await manager.authenticate_anonymous_user(second.anonymous_id)
                say(f"   result: {result!r}")

                await step("\n5. a blank id is skipped: no call, no new state")
                result = await manager.authenticate_anonymous_user("   ")
                say(f"   result: {result!r}")

                await step("\n6. an unknown id fails; the previous user was logged out first")
                result = await manager.authenticate_anonymous_user(secrets.token_urlsafe(32))
                match result:
                    case Failure(error=error):
                        say(f"   result: Failure({type(error).__name__}: {error})")
                    case _:
                        say(f"   result: {result!r} (expected a Failure)")

                await step(
                    "\n7. the person deletes their account: the data goes, and the id with it"
                )
                await core.auth.authenticate(AuthRoute.log_in_anonymously(stored_id))
                await core.auth.delete_account()
                result = await manager.authenticate_anonymous_user(stored_id)
                match result:
                    case Failure(error=error):
                        say(f"   logging in with the old id: Failure({type(error).__name__})")
                    case _:
                        say(f"   result: {result!r} (expected a Failure)")
    say("\ndone")
