"""``mimi-reactive demo``: the anonymous-user flow, end to end, against an in-process server."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable
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

__all__ = ["run_demo"]

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


async def run_demo(out: Callable[[str], None] = print) -> None:
    """Walk the flow, printing each state as a subscriber sees it."""
    client_secret = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory() as directory:
        async with IdentityServer(
            client_id=_CLIENT_ID,
            client_secret=client_secret,
            database=Path(directory) / "identity.sqlite3",
        ) as server:
            out(f"reference server on {server.url} (temporary SQLite database)")

            def start() -> AbstractAsyncContextManager[MimiCore]:
                return MimiCore.start(
                    client_id=_CLIENT_ID,
                    client_secret=client_secret,
                    configuration=_ANONYMOUS_ONLY,
                    backend=HttpBackend(server.url),
                )

            out("\n1. first launch: the app subscribes, then signs up anonymously")
            async with start() as core:
                core.auth.states.subscribe(lambda state: out(f"   state: {describe(state)}"))
                user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
                stored_id = user.anonymous_id
                out(f"   the app stores anonymous id {mask(stored_id)} beside its own account")
                out("\n2. the user logs out")
                await core.auth.log_out()

            out("\n3. reinstall: a new MimiCore logs back in with the stored id")
            async with start() as core:
                core.auth.states.subscribe(lambda state: out(f"   state: {describe(state)}"))
                manager = AnonymousAuthManager(core)
                result = await manager.authenticate_anonymous_user(stored_id)
                out(f"   result: {result!r}")

                out("\n4. the same person's other product created a second anonymous user")
                async with start() as other:
                    second = await other.auth.authenticate(AuthRoute.sign_up_anonymously())
                out("   logging in with its id switches users (log out first, then log in)")
                result = await manager.authenticate_anonymous_user(second.anonymous_id)
                out(f"   result: {result!r}")

                out("\n5. a blank id is skipped: no call, no new state")
                result = await manager.authenticate_anonymous_user("   ")
                out(f"   result: {result!r}")

                out("\n6. an unknown id fails; the previous user was logged out first")
                result = await manager.authenticate_anonymous_user(secrets.token_urlsafe(32))
                match result:
                    case Failure(error=error):
                        out(f"   result: Failure({type(error).__name__}: {error})")
                    case _:
                        out(f"   result: {result!r} (expected a Failure)")

                out("\n7. the person deletes their account: the data goes, and the id with it")
                await core.auth.authenticate(AuthRoute.log_in_anonymously(stored_id))
                await core.auth.delete_account()
                result = await manager.authenticate_anonymous_user(stored_id)
                match result:
                    case Failure(error=error):
                        out(f"   logging in with the old id: Failure({type(error).__name__})")
                    case _:
                        out(f"   result: {result!r} (expected a Failure)")
    out("\ndone")
