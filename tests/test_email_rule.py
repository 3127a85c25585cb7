"""The reference server's email rule, applied by the guards before any backend is called and
by ScriptedBackend as the server would: a malformed email is InvalidRouteError, never shown."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pydantic
import pytest
from hypothesis import given

from mimi_reactive import (
    AuthRoute,
    InvalidRouteError,
    MimiConfiguration,
    MimiCore,
    Reason,
)
from mimi_reactive._credential_rules import (
    EMAIL_LOCAL_PART_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    credentials_problem,
)
from mimi_reactive._server._models import LogIn
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer
from mimi_reactive.testing import ScriptedBackend

from .conftest import CLIENT_ID
from .server_helpers import Caller
from .strategies import edge_emails

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
    "a" * 65 + "@example.test",  # a local part over RFC 5321's 64 octets
    "a" * 65 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 55 + ".test",  # 254, local 65
]
TAKEN = [
    "ann+tag@example.test",
    "O'Brien@Example.Co.Uk",
    "a" * 64 + "@example.test",  # the longest local part
    "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 56 + ".test",  # 254 characters
]


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


def test_the_malformed_email_message_states_both_bounds_of_the_rule() -> None:
    """EMAIL_MALFORMED's message gives the rule's bounds: the whole address's length and the
    local part's (before the @), so an app can tell its user which one was crossed."""
    message = Reason.EMAIL_MALFORMED.describe()
    assert f"at most {EMAIL_MAX_LENGTH} characters" in message
    assert f"at most {EMAIL_LOCAL_PART_MAX_LENGTH} before the @" in message


async def test_an_email_the_client_lets_through_is_one_the_service_takes(core: MimiCore) -> None:
    """Emails at the edges of the rule (a +tag, an apostrophe, capitals, a local part of 64
    characters, 254 in all) sign up and log back in, whatever their case."""
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


def the_server_takes(email: str) -> bool:
    """Whether the server's request validation takes ``email`` (its log-in body's model)."""
    try:
        LogIn.model_validate({"email": email, "password": "long enough"})
    except pydantic.ValidationError:
        return False
    return True


@given(edge_emails)
def test_the_client_and_the_server_agree_on_any_email(email: str) -> None:
    """For emails around every edge of the rule (a local part of 0 to 80 characters, odd
    characters, long domains), the guard lets through exactly what the server's request
    models take."""
    assert (credentials_problem(email, "long enough") is None) is the_server_takes(email)


@pytest.mark.parametrize(
    ("email", "taken"), [*((e, False) for e in MALFORMED), *((e, True) for e in TAKEN)]
)
async def test_the_running_server_and_the_client_agree(
    server: IdentityServer, client_secret: str, email: str, taken: bool
) -> None:
    """A sign-up sent past the guard, straight to a running server: it answers 400
    invalid_request for each email the client refuses, and 201 for each it lets through."""
    assert (credentials_problem(email, "long enough") is None) is taken
    async with aiohttp.ClientSession() as http:
        caller = Caller(http, server.url, CLIENT_ID, client_secret)
        status, answer, _ = await caller.post(
            "/v1/users", {"email": email, "password": "long enough"}
        )
    assert status == (201 if taken else 400), answer
    if not taken:
        assert answer["error"]["code"] == "invalid_request"
