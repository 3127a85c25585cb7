"""The reference server's email rule, applied by the guards before any backend is called and
by ScriptedBackend as the server would: a malformed email is InvalidRouteError, never shown."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mimi_reactive import (
    AuthRoute,
    InvalidRouteError,
    MimiConfiguration,
    MimiCore,
    Reason,
)
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer
from mimi_reactive.testing import ScriptedBackend

from .conftest import CLIENT_ID

MALFORMED = [
    "notanemail",
    "ann@localhost",  # the server wants a dot in the domain
    " ann@example.test",
    "ann@example.test\n",
    "ann smith@example.test",
    "ann@example..test",
    "änn@example.test",
    "@example.test",
    "ann@",
    "a" * 243 + "@example.test",  # 256 characters: over 254
]
TAKEN = ["ann+tag@example.test", "O'Brien@Example.Co.Uk", "a" * 241 + "@example.test"]


@pytest.fixture(params=["reference", "scripted"])
async def core(request: pytest.FixtureRequest, client_secret: str) -> AsyncIterator[MimiCore]:
    """A core that may use credentials, on the reference server or the scripted backend."""
    if request.param == "scripted":
        backend: HttpBackend | ScriptedBackend = ScriptedBackend()
        async with MimiCore.start(client_id="app", client_secret="s", backend=backend) as core:
            yield core
        return
    async with (
        IdentityServer(client_id=CLIENT_ID, client_secret=client_secret) as server,
        MimiCore.start(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            backend=HttpBackend(server.url),
            configuration=MimiConfiguration(),
        ) as core,
    ):
        yield core


async def test_a_malformed_email_is_refused_without_showing_it(core: MimiCore) -> None:
    """Sign-up, log-in and promotion with an email the server refuses raise InvalidRouteError
    (EMAIL_MALFORMED) whose message holds no part of it; a promotion keeps the user."""
    anonymous = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    for email in MALFORMED:
        with pytest.raises(InvalidRouteError) as raised:
            await core.auth.authenticate(AuthRoute.promote(email=email, password="long enough"))
        assert raised.value.reason is Reason.EMAIL_MALFORMED
        assert email.strip() not in str(raised.value)
        assert core.auth.current_user == anonymous
    await core.auth.log_out()
    for email in MALFORMED:
        for route in (AuthRoute.sign_up, AuthRoute.log_in):
            with pytest.raises(InvalidRouteError):
                await core.auth.authenticate(route(email=email, password="long enough"))


async def test_an_email_the_client_lets_through_is_one_the_service_takes(core: MimiCore) -> None:
    """Emails at the edges of the rule (a +tag, an apostrophe, capitals, 254 characters) sign up
    and log back in, whatever their case."""
    for email in TAKEN:
        user = await core.auth.authenticate(AuthRoute.sign_up(email=email, password="long enough"))
        assert user.email == email.lower()
        await core.auth.log_out()
        again = await core.auth.authenticate(
            AuthRoute.log_in(email=email.upper(), password="long enough")
        )
        assert again.id == user.id
        await core.auth.log_out()


async def test_a_malformed_email_is_refused_before_any_request() -> None:
    """Against an address where nothing listens, a malformed email is InvalidRouteError, not
    the TransportError a request would end in."""
    backend = HttpBackend("http://127.0.0.1:9")
    async with MimiCore.start(client_id="app", client_secret="secret", backend=backend) as core:
        with pytest.raises(InvalidRouteError):
            await core.auth.authenticate(AuthRoute.sign_up(email="notanemail", password="x"))
