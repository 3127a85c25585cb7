"""A terminal UI that shows the live session from the stream and drives it with keys.

It needs Textual (``./scripts/test`` installs it with the test extra; else
``.venv/bin/pip install textual``). Run it against an in-process reference server (a fresh one,
in memory)::

    .venv/bin/python examples/textual_session.py

or against a running service (``serve --client-id my-app``, as the README starts it), its
client secret in ``MIMI_CLIENT_SECRET`` (never on the command line, where other users of the
machine can read it); ``--client-id`` names another client (default ``my-app``)::

    MIMI_CLIENT_SECRET=... .venv/bin/python examples/textual_session.py http://127.0.0.1:8080

Keys: ``a`` sign up anonymously, ``l`` log in with the stored anonymous id, ``s`` switch to
another anonymous user (one the same person made in another product), ``r`` refresh the tokens,
``o`` log out, ``d`` delete the account, ``q`` quit. The buttons do the same.

``MimiCore`` runs on asyncio, and so does Textual: the app starts the core on its own event
loop, so subscribers are called on the app's thread and update widgets directly (no
``call_from_thread``). Commands run in Textual workers, so a slow service never freezes the
screen: the screen shows what the stream says, and a command's own result only when it
published nothing (a refusal, a skip). Nor does quitting: the core closes with a short grace
period (``QUIT_GRACE_PERIOD``), cancelling a command a service leaves unanswered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime
from typing import Any, ClassVar

import reactivex
import structlog
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.pilot import Pilot
from textual.widgets import Button, Footer, Header, Log, Static

from mimi_reactive import (
    AnonymousAuthManager,
    AuthBackend,
    AuthRoute,
    ConfigurationError,
    Failure,
    MimiConfiguration,
    MimiCore,
    MimiCoreError,
    MimiUser,
    SessionState,
    Skipped,
)
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer

CLIENT_ID = "my-app"
"""The client id the README's ``serve --client-id my-app`` registers (``--client-id``: another)."""

# Logging in by anonymous id is allowed only to a core that never makes non-anonymous users.
ANONYMOUS_ONLY = MimiConfiguration(allow_anonymous_user_only=True)

QUIT_GRACE_PERIOD = 1.0
"""Seconds a quit waits for the command in flight (and a log-out's revocation) before the core
cancels it: a healthy service answers in milliseconds, and an unresponsive one must not hold
the screen for the core's default 10 seconds."""


def describe_user(user: MimiUser | None) -> str:
    """Who is logged in, with the anonymous id (a credential) cut to its first characters."""
    if user is None:
        return "nobody"
    kind = "anonymous" if user.is_anonymous else "registered"
    line = f"{user.id[:8]} ({kind})"
    if user.anonymous_id is not None:
        line += f", anonymous id {user.anonymous_id[:4]}…"
    return line


def describe_token(token: str | None, expires_at: float | None, now: float) -> str:
    """A fingerprint of an access token (never the token: it is a credential) and when it
    expires, as the core counts it (``core.auth.access_token_expires_at``)."""
    if token is None:
        return "none"
    line = f"#{hashlib.sha256(token.encode()).hexdigest()[:6]}"
    if expires_at is None:
        return f"{line}, no expiry"
    minutes = round((expires_at - now) / 60)
    return f"{line}, expires {datetime.fromtimestamp(expires_at):%H:%M:%S} (in {minutes} min)"


class SessionApp(App[None]):
    """The session of one app, live: who is logged in, the last transition, degraded or not,
    and when the access token expires; keys and buttons run the routes."""

    TITLE = "mimi_reactive session"
    CSS = """
    #session { height: auto; border: round $accent; padding: 0 1; }
    #session Static { height: 1; }
    #status { color: $warning; }
    #buttons { height: auto; }
    #buttons Button { width: auto; min-width: 0; margin: 0 1 0 0; }
    Log { border: round $panel; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "sign_up", "Sign up"),
        Binding("l", "log_in", "Log in stored id"),
        Binding("s", "switch", "Switch"),
        Binding("r", "refresh", "Refresh"),
        Binding("o", "log_out", "Log out"),
        Binding("d", "delete", "Delete"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str | None,
        backend: Callable[[], AuthBackend],
    ) -> None:
        super().__init__()
        self._client_id = client_id
        self._client_secret = client_secret
        self._backend = backend
        self.core: MimiCore | None = None
        self.stored_id: str | None = None
        """The anonymous id the app stores beside its own account (here, in memory)."""
        self._subscriptions: list[reactivex.abc.DisposableBase] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="session"):
            yield Static("user: …", id="user")
            yield Static("transition: starting", id="transition")
            yield Static("degraded: no", id="degraded")
            yield Static("access token: none", id="token")
            yield Static("", id="status")
        with Horizontal(id="buttons"):
            for action, label in (
                ("sign_up", "Sign up"),
                ("log_in", "Log in"),
                ("switch", "Switch"),
                ("refresh", "Refresh"),
                ("log_out", "Log out"),
                ("delete", "Delete"),
            ):
                yield Button(label, id=action, compact=True)
        yield Log(id="history")
        yield Footer()

    async def on_mount(self) -> None:
        """Start the core on Textual's own loop and subscribe to its streams."""
        self.core = await MimiCore.start(
            client_id=self._client_id,
            client_secret=self._client_secret,
            configuration=ANONYMOUS_ONLY,
            backend=self._backend(),
        )
        auth = self.core.auth
        self._subscriptions = [
            auth.states.subscribe(self.show_state),
            auth.mimi_user.subscribe(self.keep_anonymous_id),
            auth.access_tokens.subscribe(self.show_token),
        ]

    async def on_unmount(self) -> None:
        """Stop listening before the widgets go, then close the core (it revokes a log-out),
        giving a command in flight ``QUIT_GRACE_PERIOD`` seconds to finish."""
        for subscription in self._subscriptions:
            subscription.dispose()
        if self.core is not None:
            await self.core.close(grace_period=QUIT_GRACE_PERIOD)

    # What the streams say: called on this app's thread, since the core runs on its loop.

    def show_state(self, state: SessionState) -> None:
        """Render one published state and add it to the history."""
        self.query_one("#user", Static).update(f"user: {describe_user(state.user)}")
        transition = f"transition: {state.transition.value}"
        if state.error is not None:
            transition += f" ({type(state.error).__name__}: {state.error})"
        self.query_one("#transition", Static).update(transition)
        self.query_one("#degraded", Static).update(
            f"degraded: {'yes, retrying' if state.degraded else 'no'}"
        )
        self.query_one("#history", Log).write_line(
            f"{state.transition.value:<17} {describe_user(state.user)}"
        )

    def keep_anonymous_id(self, user: MimiUser | None) -> None:
        """Store each new user's anonymous id: it is the only way back to that user."""
        if user is not None and user.anonymous_id is not None:
            self.stored_id = user.anonymous_id

    def show_token(self, token: str | None) -> None:
        """Render when the current access token expires."""
        expires_at = None if self.core is None else self.core.auth.access_token_expires_at
        self.query_one("#token", Static).update(
            f"access token: {describe_token(token, expires_at, time.time())}"
        )

    def show_status(self, text: str) -> None:
        """A command's own result, when the stream had nothing to say about it."""
        self.query_one("#status", Static).update(text)

    # The routes: each runs in a worker; the core queues them in the order they were asked.

    def _command(self, work: Callable[[MimiCore], Coroutine[Any, Any, str]]) -> None:
        core = self.core
        if core is None:
            self.show_status("still starting")
            return
        self.show_status("")

        async def run() -> None:
            try:
                status = await work(core)
            except MimiCoreError as error:
                status = f"{type(error).__name__}: {error}"
            self.show_status(status)

        self.run_worker(run(), group="commands")

    def action_sign_up(self) -> None:
        """Create a new anonymous user (logging out whoever is logged in)."""

        async def sign_up(core: MimiCore) -> str:
            await core.auth.log_out()  # else a sign-up keeps the anonymous user logged in
            await core.auth.authenticate(AuthRoute.sign_up_anonymously())
            return ""

        self._command(sign_up)

    def action_log_in(self) -> None:
        """Log back in with the stored anonymous id, as the app does at launch."""
        stored_id = self.stored_id

        async def log_in(core: MimiCore) -> str:
            match await AnonymousAuthManager(core).authenticate_anonymous_user(stored_id):
                case Skipped():
                    return "no stored anonymous id yet: sign up first"
                case Failure(error=error):
                    return f"{type(error).__name__}: {error}"
                case _:
                    return ""

        self._command(log_in)

    def action_switch(self) -> None:
        """Log in as another anonymous user, one the same person made in another product."""

        async def switch(core: MimiCore) -> str:
            async with MimiCore.start(
                client_id=self._client_id,
                client_secret=self._client_secret,
                configuration=ANONYMOUS_ONLY,
                backend=self._backend(),
            ) as other_product:
                other = await other_product.auth.authenticate(AuthRoute.sign_up_anonymously())
            await core.auth.authenticate(AuthRoute.log_in_anonymously(other.anonymous_id))
            return ""

        self._command(switch)

    def action_refresh(self) -> None:
        """Refresh the tokens now: the token stream emits the new access token."""

        async def refresh(core: MimiCore) -> str:
            await core.auth.refresh()
            return ""

        self._command(refresh)

    def action_log_out(self) -> None:
        """Log out: at once, even offline (the service is told in the background)."""

        async def log_out(core: MimiCore) -> str:
            await core.auth.log_out()
            return ""

        self._command(log_out)

    def action_delete(self) -> None:
        """Delete the logged-in user's account at the service."""

        async def delete(core: MimiCore) -> str:
            await core.auth.delete_account()
            return ""

        self._command(delete)

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        """A button runs the action of the same name as its key."""
        if event.button.id is not None:
            await self.run_action(event.button.id)


@contextlib.asynccontextmanager
async def reference_server() -> AsyncIterator[tuple[str, str]]:
    """An in-process reference server in memory on a free loopback port: (url, client secret).

    Its log is dropped: printed lines would land in the middle of the terminal UI.
    """
    client_secret = secrets.token_urlsafe(32)
    async with IdentityServer(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        logger=structlog.wrap_logger(structlog.ReturnLogger()),
    ) as server:
        yield server.url, client_secret


def session_app(url: str, client_secret: str | None, client_id: str = CLIENT_ID) -> SessionApp:
    """The app against the identity service at ``url``; ``ConfigurationError`` (one line) at
    once if ``url`` is not a service's base URL, rather than from inside the running UI."""
    HttpBackend(url)  # refuses a bad URL here; each core gets its own backend when it starts
    return SessionApp(
        client_id=client_id, client_secret=client_secret, backend=lambda: HttpBackend(url)
    )


async def wait_until(pilot: Pilot[Any], condition: Callable[[], bool]) -> None:
    """Let the app run until ``condition`` holds; TimeoutError after 10 seconds."""
    async with asyncio.timeout(10.0):
        while not condition():
            await pilot.pause()


async def save_screenshot(path: str) -> None:
    """Run the app headless on a fresh server, sign up, switch users, and save an SVG of it."""
    async with reference_server() as (url, client_secret):
        app = session_app(url, client_secret)
        async with app.run_test(size=(90, 26)) as pilot:

            def showing(text: str) -> Callable[[], bool]:
                return lambda: text in str(app.query_one("#transition", Static).content)

            await wait_until(pilot, showing("initial"))
            await pilot.press("a")
            await wait_until(pilot, showing("anonymous_created"))
            await pilot.press("s")
            await wait_until(pilot, showing("switched_user"))
            await pilot.pause()
            app.save_screenshot(os.path.basename(path), os.path.dirname(path) or ".")


async def main(arguments: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", help="the identity service (default: one in-process)")
    parser.add_argument(
        "--client-id",
        default=CLIENT_ID,
        help="the app's client id at URL, its secret in MIMI_CLIENT_SECRET (default: %(default)s)",
    )
    parser.add_argument("--screenshot", metavar="SVG", help="save a screenshot and exit")
    options = parser.parse_args(arguments)
    if options.screenshot is not None:
        await save_screenshot(options.screenshot)
    elif options.url is None:
        async with reference_server() as (url, client_secret):
            await session_app(url, client_secret).run_async()
    else:
        # Each refusal is one line before the UI starts, not an error in a Textual traceback.
        # The URL first: its refusal shows no credentials it holds, which the next line would.
        try:
            HttpBackend(options.url)
        except ConfigurationError as error:
            raise SystemExit(f"{parser.prog}: {error}") from None
        secret = os.environ.get("MIMI_CLIENT_SECRET")
        if not secret:
            raise SystemExit(
                f"{parser.prog}: set MIMI_CLIENT_SECRET to the secret of client"
                f" {options.client_id!r} at {options.url}"
            )
        await session_app(options.url, secret, options.client_id).run_async()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
