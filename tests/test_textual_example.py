"""examples/textual_session.py, driven headless with Textual's pilot: each key's transition
shows on the screen, from the stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Log, Static

from examples.textual_session import (
    CLIENT_ID,
    QUIT_GRACE_PERIOD,
    SessionApp,
    main,
    reference_server,
    session_app,
)
from mimi_reactive import BackendSession, ConfigurationError, Session, TransportError
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.testing import ScriptedBackend

SIZE = (100, 30)


def shown(app: SessionApp, widget: str) -> str:
    """The text a Static of the session panel shows now."""
    return str(app.query_one(f"#{widget}", Static).content)


async def until(pilot: Pilot[Any], condition: Callable[[], bool], what: str) -> None:
    """Let the app run until the screen shows ``what``, for at most 10 seconds."""
    try:
        async with asyncio.timeout(10):
            while not condition():
                await pilot.pause()
    except TimeoutError:
        app = pilot.app
        assert isinstance(app, SessionApp)
        panel = {name: shown(app, name) for name in ("user", "transition", "token", "status")}
        raise AssertionError(f"the screen never showed {what}; it shows {panel}") from None


async def until_transition(pilot: Pilot[Any], app: SessionApp, transition: str) -> None:
    """Wait until the panel shows ``transition`` as the last one."""
    await until(
        pilot, lambda: shown(app, "transition").startswith(f"transition: {transition}"), transition
    )


async def test_every_key_shows_its_transition_against_the_reference_server() -> None:
    """Sign up, log out, log in by stored id, refresh, switch and delete each show on screen."""
    async with reference_server() as (url, client_secret):
        app = session_app(url, client_secret)
        async with app.run_test(size=SIZE) as pilot:
            await until_transition(pilot, app, "initial")
            assert shown(app, "user") == "user: nobody"
            assert shown(app, "token") == "access token: none"

            await pilot.press("l")
            await until(pilot, lambda: "no stored anonymous id" in shown(app, "status"), "skip")
            assert shown(app, "transition") == "transition: initial"

            await pilot.press("a")
            await until_transition(pilot, app, "anonymous_created")
            first_user = shown(app, "user")
            assert "(anonymous), anonymous id" in first_user
            await until(pilot, lambda: "expires" in shown(app, "token"), "a token's expiry")
            assert "(in 60 min)" in shown(app, "token")

            await pilot.press("o")
            await until_transition(pilot, app, "logged_out")
            assert shown(app, "user") == "user: nobody"
            await until(pilot, lambda: shown(app, "token") == "access token: none", "no token")

            await pilot.press("l")
            await until_transition(pilot, app, "logged_in")
            assert shown(app, "user") == first_user

            token = shown(app, "token")
            await pilot.press("r")
            await until(
                pilot,
                lambda: shown(app, "token") not in (token, "access token: none"),
                "a new token",
            )

            await pilot.click("#switch")
            await until_transition(pilot, app, "switched_user")
            assert shown(app, "user") not in (first_user, "user: nobody")
            history = app.query_one("#history", Log).lines
            assert [line.split()[0] for line in history] == [
                "initial",
                "anonymous_created",
                "logged_out",
                "logged_in",
                "logged_out",
                "switched_user",
            ]

            switched_user = shown(app, "user")
            await pilot.press("d")
            if HttpBackend.capabilities.delete:
                await until_transition(pilot, app, "deleted")
                assert shown(app, "user") == "user: nobody"
            else:  # the reference server's client cannot delete yet: refused before any call
                await until(
                    pilot, lambda: "UnsupportedRouteError" in shown(app, "status"), "a refusal"
                )
                assert shown(app, "user") == switched_user


class FlakyNetwork(ScriptedBackend):
    """A scripted service whose renewals fail as a lost network would while ``offline``."""

    offline = False

    async def refresh(self, session: Session) -> BackendSession:
        if self.offline:
            raise TransportError("offline")
        return await super().refresh(session)


async def test_degraded_recovered_and_deleted_show_on_screen() -> None:
    """A renewal lost to the network shows degraded until one succeeds; delete shows deleted."""
    backend = FlakyNetwork()
    app = SessionApp(client_id=CLIENT_ID, client_secret="s", backend=lambda: backend)
    async with app.run_test(size=SIZE) as pilot:
        await until_transition(pilot, app, "initial")
        await pilot.press("a")
        await until_transition(pilot, app, "anonymous_created")
        assert "(in 60 min)" in shown(app, "token")  # the scripted service's hour

        backend.offline = True
        await pilot.press("r")
        await until_transition(pilot, app, "degraded")
        assert shown(app, "degraded") == "degraded: yes, retrying"
        assert "offline" in shown(app, "transition")
        assert shown(app, "user") != "user: nobody"  # network trouble never logs anyone out

        backend.offline = False
        # The Refresh button (or wait: the core retries on its own, with backoff).
        await pilot.click("#refresh")
        await until_transition(pilot, app, "recovered")
        assert shown(app, "degraded") == "degraded: no"

        await pilot.press("d")
        await until_transition(pilot, app, "deleted")
        assert shown(app, "user") == "user: nobody"
        await until(pilot, lambda: shown(app, "token") == "access token: none", "no token")


async def test_the_screenshot_command_writes_an_svg(tmp_path: Path) -> None:
    """`--screenshot PATH` saves an SVG of the app after a switch, as the docs show."""
    svg = tmp_path / "session.svg"
    await main(["--screenshot", str(svg)])
    text = svg.read_text()
    assert text.startswith("<svg")
    assert "switched_user" in text


async def test_a_running_service_without_its_secret_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Against a URL without MIMI_CLIENT_SECRET, the example exits before its UI starts, with
    one line naming the variable and the client (not a ConfigurationError in a traceback)."""
    monkeypatch.delenv("MIMI_CLIENT_SECRET", raising=False)
    with pytest.raises(SystemExit) as exited:
        await main(["http://127.0.0.1:1", "--client-id", "other-app"])
    message = str(exited.value.code)
    assert "MIMI_CLIENT_SECRET" in message
    assert "'other-app'" in message
    assert "\n" not in message


@pytest.fixture
async def unresponsive() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A loopback service that reads a request and never answers: (its URL, an event set once
    a request reached it)."""
    reached, released = asyncio.Event(), asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        reached.set()
        await released.wait()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", reached
    finally:
        released.set()
        server.close()
        await server.wait_closed()


async def test_quitting_while_a_command_waits_on_an_unresponsive_service_is_prompt(
    unresponsive: tuple[str, asyncio.Event],
) -> None:
    """Quit with a sign-up waiting on a service that never answers: the app ends within about
    QUIT_GRACE_PERIOD, not the core's default 10 s grace period (or the backend's timeout)."""
    url, reached = unresponsive
    app = session_app(url, "s" * 43)
    async with app.run_test(size=SIZE) as pilot:
        await until_transition(pilot, app, "initial")
        await pilot.press("a")
        async with asyncio.timeout(10):
            await reached.wait()
        started = time.monotonic()
        await pilot.press("q")
    assert time.monotonic() - started < QUIT_GRACE_PERIOD + 3


BAD_URLS = ["127.0.0.1:8080", "localhost", "ftp://127.0.0.1:8080", "http://user:pw-secret@h:1"]


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("secret", [None, "s" * 43], ids=["no secret", "a secret"])
async def test_a_url_that_is_no_service_s_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, url: str, secret: str | None
) -> None:
    """A URL without a scheme (or of another scheme, or holding credentials) exits before the
    UI starts with one line saying what is wrong, the URL checked before the secret, and never
    shows a password the URL holds."""
    if secret is None:
        monkeypatch.delenv("MIMI_CLIENT_SECRET", raising=False)
    else:
        monkeypatch.setenv("MIMI_CLIENT_SECRET", secret)
    with pytest.raises(SystemExit) as exited:
        await main([url])
    message = str(exited.value.code)
    assert "base_url must" in message
    assert "\n" not in message
    assert "pw-secret" not in message


@pytest.mark.parametrize("url", BAD_URLS)
def test_the_app_for_a_url_that_is_no_service_s_is_refused_before_it_runs(url: str) -> None:
    """``session_app`` refuses such a URL with a ConfigurationError before any UI exists."""
    with pytest.raises(ConfigurationError, match="base_url must"):
        session_app(url, "s" * 43)


def test_the_client_id_is_the_one_the_readme_serves() -> None:
    """The example's default client id is the README's `serve --client-id my-app`, so the
    documented command works against the documented server as written."""
    assert CLIENT_ID == "my-app"
    assert "--client-id my-app" in (Path(__file__).parent.parent / "README.md").read_text()
