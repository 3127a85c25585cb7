"""HttpBackend over real sockets: errors become typed MimiCoreErrors with the cause kept."""

from __future__ import annotations

import asyncio
import codecs
import json
import secrets
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from mimi_reactive import (
    AuthRoute,
    AuthTokens,
    BackendError,
    ClientAuthenticationError,
    ClientCredentials,
    ConfigurationError,
    InvalidCredentialsError,
    MimiConfiguration,
    MimiCore,
    MimiUser,
    Session,
    SessionEndedError,
    SessionRevokedError,
    SessionState,
    Transition,
    TransportError,
)
from mimi_reactive.backends._answers import LONGEST_ANSWER, post_json
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer
from mimi_reactive.verify import AccessTokenVerifier

from .conftest import ANONYMOUS_ONLY, CLIENT_ID
from .helpers import serving_app


@pytest.fixture
async def odd_server() -> AsyncIterator[str]:
    """A real loopback server that hangs on one path, answers HTML on another, a list on a
    third, and a 2 MiB error on a fourth."""

    released = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await released.wait()
        return web.json_response({})

    async def html(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>bad gateway</html>", content_type="text/html")

    async def not_an_object(request: web.Request) -> web.Response:
        return web.json_response([1, 2, 3])

    async def huge(request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": "x" * (2 << 20)}}, status=400)

    app = web.Application()
    app.router.add_post("/v1/anonymous-users", hang)
    app.router.add_post("/v1/sessions/anonymous", html)
    app.router.add_post("/v1/sessions", not_an_object)
    app.router.add_post("/v1/users", huge)
    async with serving_app(app) as url:
        yield url
        released.set()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_wrong_client_secret_is_a_client_authentication_error(
    server: IdentityServer,
) -> None:
    """A rejected client secret raises ClientAuthenticationError with the server's code."""
    async with MimiCore.start(
        client_id=CLIENT_ID,
        client_secret="not-the-secret",
        configuration=ANONYMOUS_ONLY,
        backend=HttpBackend(server.url),
    ) as core:
        with pytest.raises(ClientAuthenticationError) as raised:
            await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        assert raised.value.code == "invalid_client"
        assert raised.value.status == 401
        assert "check the app's client_id and client_secret" in str(raised.value)
        assert "not-the-secret" not in str(raised.value)
        assert core.auth.state.transition is Transition.FAILED


@pytest.mark.parametrize("suffix", ["/v1", "/api", "/v1/"])
async def test_a_base_url_that_points_elsewhere_is_named_as_likely_wrong(
    server: IdentityServer, client_secret: str, suffix: str
) -> None:
    """A base URL past the service's root (its /v1, say) makes every call a 404: the error
    says the base URL may be wrong, naming it, never the client secret."""
    async with MimiCore.start(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        configuration=ANONYMOUS_ONLY,
        backend=HttpBackend(server.url + suffix),
    ) as core:
        with pytest.raises(BackendError) as raised:
            await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    message = str(raised.value)
    assert raised.value.status == 404
    assert f"is {server.url}{suffix.rstrip('/')} the identity service's base URL" in message
    assert client_secret not in message


@pytest.mark.parametrize(
    ("route", "configuration", "code"),
    [
        (
            AuthRoute.log_in_anonymously(secrets.token_urlsafe(32)),
            ANONYMOUS_ONLY,
            "invalid_anonymous_id",
        ),
        (
            AuthRoute.log_in(email="nobody@example.test", password="long enough"),
            MimiConfiguration(allow_anonymous_user_only=False),
            "invalid_credentials",
        ),
    ],
)
async def test_a_wrong_user_credential_is_invalid_credentials(
    server: IdentityServer,
    client_secret: str,
    route: AuthRoute,
    configuration: MimiConfiguration,
    code: str,
) -> None:
    """The server's 400 invalid_grant at log-in (a wrong anonymous id or password) raises
    InvalidCredentialsError with the code every backend gives it, not SessionRevokedError as
    the same answer to a refresh does."""
    async with MimiCore.start(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        configuration=configuration,
        backend=HttpBackend(server.url),
    ) as core:
        with pytest.raises(InvalidCredentialsError) as raised:
            await core.auth.authenticate(route)
        assert (raised.value.code, raised.value.status) == (code, 400)


async def test_unreachable_server_is_a_transport_error_with_cause() -> None:
    """Nothing listening: TransportError, the aiohttp error chained, state FAILED."""
    async with MimiCore.start(
        client_id=CLIENT_ID,
        client_secret="s" * 32,
        configuration=ANONYMOUS_ONLY,
        backend=HttpBackend(f"http://127.0.0.1:{free_port()}"),
    ) as core:
        with pytest.raises(TransportError) as raised:
            await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        assert raised.value.__cause__ is not None
        assert core.auth.state == SessionState(None, None, Transition.FAILED, raised.value)


async def test_timeout_is_a_transport_error(odd_server: str) -> None:
    """A server that does not answer in time gives TransportError, not a hang."""
    backend = HttpBackend(odd_server, timeout=0.2)
    await backend.open(ClientCredentials(CLIENT_ID, "s" * 32))
    try:
        with pytest.raises(TransportError, match="in time"):
            await backend.authenticate(AuthRoute.sign_up_anonymously(), None)
    finally:
        await backend.close()


async def test_non_json_error_and_bad_answers_are_backend_errors(odd_server: str) -> None:
    """An HTML error page or a JSON answer of the wrong shape is a BackendError."""
    backend = HttpBackend(odd_server)
    await backend.open(ClientCredentials(CLIENT_ID, "s" * 32))
    try:
        with pytest.raises(BackendError) as raised:
            await backend.authenticate(AuthRoute.log_in_anonymously("some-anonymous-id-0000"), None)
        assert (raised.value.code, raised.value.status) == ("http_502", 502)
        with pytest.raises(BackendError) as raised:
            await backend.authenticate(
                AuthRoute.log_in(email="a@b.test", password="password1"), None
            )
        assert raised.value.code == "invalid_response"
    finally:
        await backend.close()


async def test_an_answer_past_the_limit_is_not_read_on(odd_server: str) -> None:
    """An error answer longer than any real one (a 2 MiB code) is ``http_{status}``: it is
    not read whole, nor carried into the error."""
    backend = HttpBackend(odd_server)
    await backend.open(ClientCredentials(CLIENT_ID, "s" * 32))
    try:
        with pytest.raises(BackendError) as raised:
            await backend.authenticate(
                AuthRoute.sign_up(email="a@b.test", password="password1"), None
            )
        assert (raised.value.code, raised.value.status) == ("http_400", 400)
    finally:
        await backend.close()


@pytest.mark.parametrize(
    "pad",
    [
        pytest.param(100_000, id="over one read"),
        pytest.param(LONGEST_ANSWER - 200, id="at the limit"),
    ],
)
async def test_an_answer_of_many_reads_within_the_limit_is_read_whole(pad: int) -> None:
    """A success answer longer than one read of its body, up to ``LONGEST_ANSWER`` bytes, is
    read to its end: the session comes from the whole answer, not its first part."""

    async def log_in(request: web.Request) -> web.Response:
        answer = {
            "user": {"id": "user-1", "is_anonymous": True},
            "session": {"access_token": "access-1", "refresh_token": "refresh-1"},
            "pad": "x" * pad,
        }
        return web.Response(body=json.dumps(answer).encode(), content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/sessions/anonymous", log_in)
    async with serving_app(app) as url:
        backend = HttpBackend(url)
        await backend.open(ClientCredentials(CLIENT_ID, "s" * 32))
        try:
            issued = await backend.authenticate(
                AuthRoute.log_in_anonymously("some-anonymous-id-0000"), None
            )
        finally:
            await backend.close()
    assert issued.user == MimiUser("user-1", "some-anonymous-id-0000")
    assert issued.tokens == AuthTokens("access-1", "refresh-1")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"name": "Zoë"}'.encode(), id="UTF-8"),
        pytest.param('{"name": "Zoë"}'.encode("utf-16"), id="UTF-16 with its BOM"),
        pytest.param('{"name": "Zoë"}'.encode("utf-16-le"), id="UTF-16 LE"),
        pytest.param('{"name": "Zoë"}'.encode("utf-32-le"), id="UTF-32 LE"),
        pytest.param(codecs.BOM_UTF8 + b'{"name": 1}', id="UTF-8 with a BOM"),
        pytest.param(b'{"name": "\xed\xa0\x80"}', id="a lone surrogate in UTF-8"),
        pytest.param(b'{"name": "\xff"}', id="not UTF-8"),
        pytest.param(b"{", id="cut short"),
        pytest.param(b"[1, 2]", id="a list"),
    ],
)
async def test_an_answer_is_what_json_loads_makes_of_its_bytes(body: bytes) -> None:
    """Whatever the bytes of an answer, its body is what json.loads makes of them (which
    finds their encoding), or None where json.loads raises."""
    try:
        expected = json.loads(body)
    except ValueError:
        expected = None

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/answer", answer)
    async with serving_app(app) as url, aiohttp.ClientSession() as http:
        answered = await post_json(http, f"{url}/v1/answer", service="the test service")
    assert (answered.status, answered.body) == (200, expected)


async def test_backend_repr_hides_the_client_secret(server: IdentityServer) -> None:
    """Neither the backend nor the client credentials show the secret."""
    secret = "very-secret-client-secret"
    assert secret not in repr(ClientCredentials(CLIENT_ID, secret))
    assert repr(HttpBackend(server.url)) == f"HttpBackend({server.url!r})"


@pytest.mark.parametrize(
    "url",
    ["127.0.0.1:8080", "identity.example", "ftp://identity.example", "http://", ""],
)
def test_a_url_without_scheme_or_host_is_refused_at_construction(url: str) -> None:
    """A URL the backend could never reach fails at once, naming what was given."""
    with pytest.raises(ValueError, match="http:// or https://"):
        HttpBackend(url)


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("https://identity.example?tenant=1", "query"),
        ("https://identity.example/#top", "fragment"),
        ("https://identity.example:70000", "http:// or https://"),
        ("https://identity.example:0", "http:// or https://"),
        (" https://identity.example", "http:// or https://"),
        ("https://identity.example/a b", "http:// or https://"),
    ],
)
def test_a_url_a_path_cannot_be_appended_to_is_refused(url: str, named: str) -> None:
    """The base URL is the issuer's rule: a query or fragment (the API's paths would land in
    them), a port out of range or white space fail at construction."""
    with pytest.raises(ConfigurationError, match=named):
        HttpBackend(url)


def test_a_url_with_credentials_is_refused_without_echoing_them() -> None:
    """Credentials in the URL are refused, and the message does not repeat them."""
    with pytest.raises(ValueError, match="must not hold credentials") as raised:
        HttpBackend("https://app:hunter2-secret@identity.example")
    assert "hunter2-secret" not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://identity.example/?key=hunter2-secret", "'http://identity.example/'"),
        ("https://identity.example#hunter2-secret", "'https://identity.example'"),
        ("https://identity.example/v1?a=1&token=hunter2-secret#x", "'https://identity.example/v1'"),
        ("ftp://identity.example/?key=hunter2-secret", "'ftp://identity.example/'"),
        ("identity.example?key=hunter2-secret", "'identity.example'"),
        ("https://hunter2-secret@identity.example", None),
        ("https://app:hunter2-secret@identity.example/?q=1", None),
        ("https://identity.example/?next=a@hunter2-secret", None),
    ],
)
def test_a_refused_url_is_shown_without_query_fragment_or_user(url: str, shown: str | None) -> None:
    """A refused base URL is named without its query, fragment, user or password (any may be
    a secret); with an ``@`` in it, not at all."""
    with pytest.raises(ConfigurationError) as raised:
        HttpBackend(url)
    message = str(raised.value)
    assert "hunter2-secret" not in message
    if shown is None:
        assert "got" not in message
    else:
        assert message.endswith(f", got {shown}")


async def test_transport_errors_name_the_service_url(client_secret: str) -> None:
    """An unreachable service's error says which URL was tried."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    backend = HttpBackend(url, timeout=5)
    await backend.open(ClientCredentials(CLIENT_ID, client_secret))
    try:
        with pytest.raises(TransportError, match=url) as raised:
            await backend.authenticate(AuthRoute.sign_up_anonymously(), None)
        assert client_secret not in str(raised.value)
    finally:
        await backend.close()


async def test_promotion_hands_out_the_new_access_token_and_keeps_the_session(
    server: IdentityServer, client_secret: str
) -> None:
    """After a promotion the core hands out the server's new access token, which says the user
    is not anonymous, and renews the same session with the refresh token it had."""
    async with MimiCore.start(
        client_id=CLIENT_ID, client_secret=client_secret, backend=HttpBackend(server.url)
    ) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        anonymous_token = await core.auth.access_token()
        await core.auth.authenticate(
            AuthRoute.promote(email="kept@example.test", password="long enough")
        )
        promoted_token = await core.auth.access_token()
        assert promoted_token != anonymous_token
        async with AccessTokenVerifier(server.url) as verifier:
            promoted = await verifier.verify(promoted_token)
            assert promoted.is_anonymous is False
            assert promoted.session_id == (await verifier.verify(anonymous_token)).session_id
            await core.auth.refresh()
            renewed = await verifier.verify(await core.auth.access_token())
        assert (renewed.session_id, renewed.is_anonymous) == (promoted.session_id, False)


@pytest.mark.parametrize(
    ("reason", "ended_on_purpose"),
    [("revoked", True), ("reused", False), ("idle", False), ("unknown", False), (None, False)],
)
async def test_a_refused_refresh_is_told_apart_by_class_and_code(
    reason: str | None, ended_on_purpose: bool
) -> None:
    """The server's 400 invalid_grant to a refresh, whatever its reason field, raises a
    SessionRevokedError with code invalid_grant; only reason revoked (ended on purpose) is a
    SessionEndedError. Reuse is not: the core logs its anonymous user back in by id. The error
    has no reason attribute: an app tells the cases apart by class and code (docs/sessions.md)."""

    async def refused(request: web.Request) -> web.Response:
        error = {"code": "invalid_grant", "message": "refused"}
        if reason is not None:
            error["reason"] = reason
        return web.json_response({"error": error}, status=400)

    app = web.Application()
    app.router.add_post("/v1/token", refused)
    session = Session(MimiUser("u", "an-anonymous-id-0000"), AuthTokens("a", "r", 60.0), 1.0)
    async with serving_app(app) as url:
        backend = HttpBackend(url)
        await backend.open(ClientCredentials(CLIENT_ID, "s" * 32))
        try:
            with pytest.raises(SessionRevokedError) as raised:
                await backend.refresh(session)
        finally:
            await backend.close()
    assert (raised.value.code, raised.value.status) == ("invalid_grant", 400)
    assert isinstance(raised.value, SessionEndedError) is ended_on_purpose
    assert not hasattr(raised.value, "reason")


@pytest.mark.parametrize(
    "expires_in",
    [1e10, 10**400, -5, float("nan"), float("inf"), "3600", True],
    ids=["past-a-century", "400-digits", "negative", "nan", "infinite", "text", "bool"],
)
async def test_a_session_lifetime_out_of_range_is_a_malformed_answer(expires_in: object) -> None:
    """A sign-up answered with an ``expires_in`` no service issues (past a century, negative,
    NaN, not a number) is a BackendError ``invalid_response``, not a bare ValueError."""

    async def sign_up(request: web.Request) -> web.Response:
        user = {"id": "u1", "is_anonymous": True, "anonymous_id": secrets.token_urlsafe(32)}
        session = {"access_token": "a", "refresh_token": "r", "expires_in": expires_in}
        # allow_nan: the JSON module writes NaN and Infinity, which a broken service may send.
        body = json.dumps({"user": user, "session": session}, allow_nan=True)
        return web.Response(status=201, text=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/anonymous-users", sign_up)
    async with serving_app(app) as url:
        backend = HttpBackend(url)
        await backend.open(ClientCredentials(CLIENT_ID, "s" * 32))
        try:
            with pytest.raises(BackendError) as raised:
                await backend.authenticate(AuthRoute.sign_up_anonymously(), None)
        finally:
            await backend.close()
    assert raised.value.code == "invalid_response"
