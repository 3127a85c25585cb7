"""FirebaseBackend on the Auth emulator: how it is reached, its refusals, its failures, and
that no secret leaks from it."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from mimi_reactive import (
    AuthRoute,
    ClientCredentials,
    ConfigurationError,
    FileSessionStorage,
    InvalidCredentialsError,
    MimiConfiguration,
    MimiCore,
    Reason,
    SessionRevokedError,
    Transition,
    TransportError,
    UnsupportedRouteError,
)
from mimi_reactive.backends.firebase import EMULATOR_HOST_VARIABLE, FirebaseBackend
from mimi_reactive.backends.http import HttpBackend

from .contract_backends import firebase_call
from .firebase_emulator import API_KEY, PROJECT, AuthEmulator
from .tcp_gate import TcpGate

PASSWORD = "a password nobody may read"
EMAIL = "secret.person@example.test"
SECRET_KEY = "AIzaSy-an-api-key-nobody-may-read"


async def test_the_environment_variable_targets_the_emulator(
    firebase_emulator: AuthEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FIREBASE_AUTH_EMULATOR_HOST points the backend at the emulator, as Firebase's SDKs."""
    monkeypatch.setenv(EMULATOR_HOST_VARIABLE, firebase_emulator.host)
    async with MimiCore.start(backend=FirebaseBackend(API_KEY)) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    assert user.is_anonymous
    assert user.anonymous_id is None  # Firebase has no anonymous credential to hand out


@pytest.mark.parametrize("anonymous_only", [True, False], ids=["anonymous-only", "any"])
async def test_log_in_by_anonymous_id_is_refused_before_any_call(anonymous_only: bool) -> None:
    """With no service at all, log-in by anonymous id is refused by the guards as a route
    Firebase cannot do, in any configuration."""
    backend = FirebaseBackend(API_KEY, emulator_host="127.0.0.1:9")  # nothing listens there
    configuration = MimiConfiguration(allow_anonymous_user_only=anonymous_only)
    async with MimiCore.start(backend=backend, configuration=configuration) as core:
        outcome = await core.auth.run(AuthRoute.log_in_anonymously("an-anonymous-id"))
    assert isinstance(outcome.error, UnsupportedRouteError)
    assert outcome.reason is Reason.BACKEND_CANNOT


async def test_an_unreachable_emulator_is_network_trouble() -> None:
    """A refused connection raises TransportError naming the emulator, not the key."""
    backend = FirebaseBackend(SECRET_KEY, emulator_host="127.0.0.1:9")
    async with MimiCore.start(backend=backend) as core:
        with pytest.raises(TransportError) as trouble:
            await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    assert "127.0.0.1:9" in str(trouble.value)
    assert SECRET_KEY not in str(trouble.value)


async def test_a_silent_service_times_out_as_network_trouble() -> None:
    """A service that accepts but never answers raises TransportError after the timeout."""
    accepted = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # until the client gives up and closes
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    host = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        backend = FirebaseBackend(API_KEY, emulator_host=host, timeout=0.2)
        async with MimiCore.start(backend=backend) as core:
            with pytest.raises(TransportError, match="did not answer in time"):
                await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        assert accepted.is_set()
    finally:
        server.close()
        await server.wait_closed()


async def test_a_dropped_connection_is_network_trouble(firebase_emulator: AuthEmulator) -> None:
    """A connection cut mid-way raises TransportError and leaves nobody logged in."""
    gate = TcpGate("127.0.0.1", firebase_emulator.port)
    await gate.start()
    gate.shut()
    try:
        backend = FirebaseBackend(API_KEY, emulator_host=gate.host)
        async with MimiCore.start(backend=backend) as core:
            with pytest.raises(TransportError):
                await core.auth.authenticate(AuthRoute.sign_up_anonymously())
            assert core.auth.current_user is None
    finally:
        await gate.close()


def test_construction_refuses_a_blank_api_key() -> None:
    """A blank API key is refused at once."""
    with pytest.raises(ValueError, match="API key"):
        FirebaseBackend("  ")


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"tenant_id": 123}, TypeError),
        ({"tenant_id": b"tenant"}, TypeError),
        ({"tenant_id": ""}, ValueError),
        ({"tenant_id": "  tenant-1  "}, ValueError),
        ({"tenant_id": "tenant\n1"}, ValueError),
        ({"tenant_id": "a" * 100_000}, ValueError),
        ({"emulator_host": ""}, ValueError),
        ({"emulator_host": 9099}, TypeError),
    ],
    ids=[
        "tenant-int",
        "tenant-bytes",
        "tenant-empty",
        "tenant-spaced",
        "tenant-newline",
        "tenant-100000",
        "host-empty",
        "host-int",
    ],
)
def test_construction_refuses_a_bad_tenant_or_host(
    arguments: dict[str, object], error: type[Exception]
) -> None:
    """A tenant id is a non-empty str or None, an emulator host a host:port str: anything
    else is refused at construction, not sent to Firebase."""
    with pytest.raises(error):
        FirebaseBackend(API_KEY, **arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "key",
    [SECRET_KEY + "\x00", "AIzaSy\rsecret", "AIzaSy\x7fsecret", "AIza Sy-secret", "ключ-secret"],
    ids=["nul", "carriage-return", "delete", "space", "cyrillic"],
)
def test_construction_refuses_an_api_key_with_odd_characters_without_showing_it(key: str) -> None:
    """A key with a control character, a space or a non-ASCII letter (which would fail every
    call as the backend's bug) is refused at construction; the message never holds it."""
    with pytest.raises(ConfigurationError, match="api_key") as refused:
        FirebaseBackend(key)
    assert "secret" not in str(refused.value)


def test_a_bad_emulator_host_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A FIREBASE_AUTH_EMULATOR_HOST that is not host:port is refused, naming the variable."""
    monkeypatch.setenv(EMULATOR_HOST_VARIABLE, "http://localhost:9099")
    with pytest.raises(ConfigurationError, match=EMULATOR_HOST_VARIABLE):
        FirebaseBackend(API_KEY)


@pytest.mark.parametrize(
    "host",
    [
        "http://127.0.0.1:9099",
        "localhost",  # no port: requests would go to port 80
        "localhost:",
        "localhost:0",
        "localhost:70000",
        "localhost:9o99",
        "127.0.0.1:9099/",
        "127.0.0.1:9099?x",
        "user@127.0.0.1:9099",
        " 127.0.0.1:9099",
        ":9099",
        "[::1]",
    ],
)
def test_construction_refuses_an_emulator_host_that_is_not_host_and_port(host: str) -> None:
    """An emulator host must be host:port with a port in range and nothing else."""
    with pytest.raises(ValueError, match="host:port"):
        FirebaseBackend(API_KEY, emulator_host=host)


def test_a_refused_emulator_host_is_shown_without_its_query() -> None:
    """An emulator host refused for a query is named without it: it may hold a key."""
    with pytest.raises(ValueError, match="host:port") as raised:
        FirebaseBackend(API_KEY, emulator_host="127.0.0.1:9099?key=hunter2-secret")
    assert "hunter2-secret" not in str(raised.value)
    assert str(raised.value).endswith(", got '127.0.0.1:9099'")


@pytest.mark.parametrize("host", ["127.0.0.1:9099", "localhost:9099", "[::1]:9099"])
def test_construction_takes_an_emulator_host_and_port(host: str) -> None:
    """Names, IPv4 and bracketed IPv6 addresses with a port are taken as they are."""
    assert host in repr(FirebaseBackend(API_KEY, emulator_host=host))


async def test_http_backend_refuses_a_missing_client() -> None:
    """HttpBackend needs client_id and client_secret: without them open() says so."""
    backend = HttpBackend("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="client_id and client_secret"):
        await backend.open(ClientCredentials())
    with pytest.raises(ValueError, match="client_id and client_secret"):
        await MimiCore.start(backend=HttpBackend("http://127.0.0.1:9"))


async def test_no_secret_in_logs_reprs_or_errors(
    firebase_emulator: AuthEmulator, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Every route and failure at DEBUG: no key, token, password or email leaks anywhere."""
    caplog.set_level(logging.DEBUG)
    backend = FirebaseBackend(SECRET_KEY, emulator_host=firebase_emulator.host)
    storage = FileSessionStorage(tmp_path / "session.json")
    seen: list[str] = [repr(backend)]
    async with MimiCore.start(backend=backend, storage=storage) as core:
        core.auth.states.subscribe(lambda state: seen.append(repr(state)))
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        for route in (
            AuthRoute.promote(email=EMAIL, password="12345"),  # weak
            AuthRoute.promote(email=EMAIL, password=PASSWORD),
            AuthRoute.sign_up(email=EMAIL, password=PASSWORD),  # taken
            AuthRoute.log_in(email=EMAIL, password=PASSWORD + "!"),  # wrong
        ):
            seen.append(repr(route))
            outcome = await core.auth.run(route)
            if outcome.error is not None:
                seen += [str(outcome.error), repr(outcome.error)]
        assert isinstance(core.auth.state.error, InvalidCredentialsError)
        await core.auth.authenticate(AuthRoute.log_in(email=EMAIL, password=PASSWORD))
        await core.auth.refresh()
        session = await storage.load()
        assert session is not None
        seen += [repr(session), repr(session.tokens), repr(session.user)]
        await core.auth.delete_account()
    assert any("WeakPasswordError" in each for each in seen)
    assert any("ConflictError" in each for each in seen)
    # The Firebase uid is shown like any user id: it is no credential (no log-in by uid).
    leaks = [SECRET_KEY, PASSWORD, EMAIL, session.tokens.access_token]
    leaks.append(session.tokens.refresh_token or "no refresh token")
    text = "\n".join(seen + [record.getMessage() for record in caplog.records])
    text += "\n".join(str(record.__dict__) for record in caplog.records)
    for leak in leaks:
        assert leak not in text


async def _link_phone(emulator: AuthEmulator, id_token: str) -> None:
    """The user links a phone number, as the app on another device would: a code sent by
    SMS (the emulator keeps it to read back), then signInWithPhoneNumber with the ID token."""
    phone = "+1555555" + str(secrets.randbelow(10_000)).zfill(4)
    sent = await firebase_call(
        emulator, "accounts:sendVerificationCode", {"phoneNumber": phone, "recaptchaToken": "x"}
    )
    url = f"{emulator.url}/emulator/v1/projects/{PROJECT}/verificationCodes"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        codes = await response.json()
    code = next(
        each["code"]
        for each in codes["verificationCodes"]
        if each["sessionInfo"] == sent["sessionInfo"]
    )
    linked = {"sessionInfo": sent["sessionInfo"], "code": code, "idToken": id_token}
    await firebase_call(emulator, "accounts:signInWithPhoneNumber", linked)


async def _link_federated(emulator: AuthEmulator, id_token: str) -> None:
    """The user links a Google account that shares no email (the emulator takes an
    unsigned IdP token)."""
    claims = {"sub": secrets.token_hex(8), "iss": "https://accounts.google.com"}
    parts = [json.dumps(part).encode() for part in ({"alg": "none"}, claims)]
    google = ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in parts) + "."
    body = {
        "idToken": id_token,
        "postBody": f"id_token={google}&providerId=google.com",
        "requestUri": "http://localhost",
        "returnSecureToken": True,
    }
    await firebase_call(emulator, "accounts:signInWithIdp", body)


@pytest.mark.parametrize("link", [_link_phone, _link_federated], ids=["phone", "google"])
@pytest.mark.parametrize("anonymous_only", [False, True], ids=["any", "anonymous-only"])
async def test_a_user_linked_elsewhere_without_email_is_no_longer_anonymous(
    firebase_emulator: AuthEmulator,
    tmp_path: Path,
    link: Callable[[AuthEmulator, str], Awaitable[None]],
    anonymous_only: bool,
) -> None:
    """A user who linked a phone or an IdP with no email elsewhere (their ID token still
    says sign_in_provider "anonymous") is PROMOTED at the next refresh, or dropped
    (not_anonymous) by an anonymous-only core."""
    backend = FirebaseBackend(API_KEY, emulator_host=firebase_emulator.host)
    configuration = MimiConfiguration(allow_anonymous_user_only=anonymous_only)
    storage = FileSessionStorage(tmp_path / "session.json")
    async with MimiCore.start(
        backend=backend, storage=storage, configuration=configuration
    ) as core:
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        await link(firebase_emulator, await core.auth.access_token())
        if anonymous_only:
            with pytest.raises(SessionRevokedError) as dropped:
                await core.auth.refresh()
            assert dropped.value.code == "not_anonymous"
        else:
            await core.auth.refresh()
        state = core.auth.state
    if anonymous_only:
        assert (state.transition, state.user) == (Transition.SESSION_EXPIRED, None)
    else:
        assert state.transition is Transition.PROMOTED
        assert state.user is not None
        assert (state.user.id, state.user.is_anonymous) == (user.id, False)
