"""A session file records which service and client issued its session: an app configured for
another (staging and production on one path, a changed base URL or client id) never takes it
in, never sends its tokens, and never clears it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mimi_reactive import (
    AuthRoute,
    ClientCredentials,
    FileSessionStorage,
    MimiConfiguration,
    MimiCore,
    NotLoggedInError,
    OriginBackend,
    OtherOriginSessionError,
    Transition,
)
from mimi_reactive._storage import encode_session
from mimi_reactive.backends.firebase import FirebaseBackend
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer
from mimi_reactive.testing import ScriptedBackend

from .conftest import CLIENT_ID
from .helpers import CountingBackend, event_names, library_events, stored_user_id
from .server_helpers import eventually

EMAIL_ONLY = MimiConfiguration()
PASSWORD = "correct horse battery staple"
API_KEY = "AIzaSyA-an-api-key-0123456789"
CLIENT = ClientCredentials("app", "a-client-secret-0123456789")


def moved_aside(path: Path) -> list[Path]:
    """The files of other origins a save moved aside from ``path``, oldest first."""
    prefix = f"{path.name}.other-origin-"
    return sorted(
        (p for p in path.parent.iterdir() if p.name.startswith(prefix)),
        key=lambda p: int(p.name.removeprefix(prefix)),
    )


def start(server: IdentityServer, secret: str, path: Path, client_id: str = CLIENT_ID) -> MimiCore:
    return MimiCore.start(  # type: ignore[return-value]
        client_id=client_id,
        client_secret=secret,
        backend=HttpBackend(server.url),
        storage=FileSessionStorage(path, poll_interval=0.05),
        configuration=EMAIL_ONLY,
    )


async def test_another_servers_session_is_neither_restored_sent_nor_cleared(
    server: IdentityServer, client_secret: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An app on staging sharing production's session path starts logged out (logged), sends
    nothing, and its own sign-up replaces the file without logging production's app out:
    that one keeps its user in memory (its watch notes the other origin's file, at warning)."""
    caplog.set_level(logging.WARNING, logger="mimi_reactive")
    path = tmp_path / "session.json"
    async with (
        IdentityServer(client_id=CLIENT_ID, client_secret=client_secret) as staging,
        start(server, client_secret, path) as production,
    ):
        user = await production.auth.authenticate(
            AuthRoute.sign_up(email="prod@example.com", password=PASSWORD)
        )
        async with start(staging, client_secret, path) as other:
            assert other.auth.state.transition is Transition.INITIAL
            assert "session.other_origin_not_restored" in event_names(caplog)
            with pytest.raises(NotLoggedInError):  # nothing held: nothing sent to staging
                await other.auth.refresh()
            assert stored_user_id(path) == user.id  # left stored
            theirs = await other.auth.authenticate(
                AuthRoute.sign_up(email="staging@example.com", password=PASSWORD)
            )
            assert stored_user_id(path) == theirs.id  # a save replaces it
            assert [stored_user_id(aside) for aside in moved_aside(path)] == [user.id]  # kept

            async def production_saw_it() -> bool:
                return "storage.other_origin_session" in event_names(caplog)

            await eventually(production_saw_it)
            await production.auth.refresh()  # its load finds staging's file too: noted, no error
            assert not [r for r in library_events(caplog) if r.levelno >= logging.ERROR]
            assert [stored_user_id(aside) for aside in moved_aside(path)] == [user.id, theirs.id]
            assert production.auth.current_user == user
            assert other.auth.current_user == theirs
        await production.auth.refresh()  # its own service still renews it
        assert production.auth.current_user == user
        assert stored_user_id(path) == user.id


async def test_a_changed_client_id_does_not_restore_the_old_session(
    server: IdentityServer, client_secret: str, tmp_path: Path
) -> None:
    """A session stored under one client id is not restored under another (nor cleared)."""
    path = tmp_path / "session.json"
    async with start(server, client_secret, path) as first:
        user = await first.auth.authenticate(
            AuthRoute.sign_up(email="a@example.com", password=PASSWORD)
        )
    async with start(server, client_secret, path, client_id="another-app") as changed:
        assert changed.auth.current_user is None
    assert stored_user_id(path) == user.id
    async with start(server, client_secret, path) as again:
        assert again.auth.current_user == user


async def test_the_other_origin_warning_names_the_file_and_both_origins(
    server: IdentityServer, client_secret: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An app whose base URL changed (127.0.0.1 to localhost) starts logged out; the warning
    says which file, which origin stored it and which one the app is, so its developer can
    tell why."""
    caplog.set_level(logging.WARNING, logger="mimi_reactive")
    path = tmp_path / "session.json"
    async with start(server, client_secret, path) as first:
        await first.auth.authenticate(AuthRoute.sign_up_anonymously())
    renamed = server.url.replace("127.0.0.1", "localhost")
    async with MimiCore.start(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        backend=HttpBackend(renamed),
        storage=FileSessionStorage(path),
        configuration=EMAIL_ONLY,
    ) as changed:
        assert changed.auth.current_user is None
    (noted,) = [
        r
        for r in library_events(caplog)
        if getattr(r, "event", None) == "storage.other_origin_session"
    ]
    fields = {key: getattr(noted, key, None) for key in ("path", "stored", "expected")}
    assert fields == {
        "path": str(path),
        "stored": repr(f"{server.url} client={CLIENT_ID}"),
        "expected": repr(f"{renamed} client={CLIENT_ID}"),
    }


async def test_a_file_that_names_no_origin_is_restored(
    server: IdentityServer, client_secret: str, tmp_path: Path
) -> None:
    """A file written before files named their origin is restored as this app's, and the
    next save names the origin."""
    path = tmp_path / "session.json"
    async with start(server, client_secret, path) as first:
        user = await first.auth.authenticate(
            AuthRoute.sign_up(email="old@example.com", password=PASSWORD)
        )
    document = json.loads(path.read_text())
    del document["origin"]  # as an older version wrote it
    path.write_text(json.dumps(document))
    async with start(server, client_secret, path) as restored:
        assert restored.auth.current_user == user
        await restored.auth.refresh()
    assert json.loads(path.read_text())["origin"] == f"{server.url} client={CLIENT_ID}"


async def test_another_origins_file_makes_load_raise(tmp_path: Path) -> None:
    """The storage's load raises OtherOriginSessionError (an OSError) for a file another
    origin wrote, a stored log-out included: the file is left as it is."""
    path = tmp_path / "session.json"
    path.write_text(json.dumps(encode_session(None, "http://elsewhere client=x")))
    storage = FileSessionStorage(path)
    storage.origin = "http://here client=x"
    with pytest.raises(OtherOriginSessionError):
        await storage.load()
    assert isinstance(OtherOriginSessionError(), OSError)
    assert json.loads(path.read_text())["origin"] == "http://elsewhere client=x"


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (HttpBackend("http://127.0.0.1:1"), HttpBackend("http://127.0.0.1:2")),
        (FirebaseBackend(API_KEY), FirebaseBackend(API_KEY + "x")),
        (FirebaseBackend(API_KEY), FirebaseBackend(API_KEY, tenant_id="t")),
        (FirebaseBackend(API_KEY), FirebaseBackend(API_KEY, emulator_host="127.0.0.1:9099")),
        (ScriptedBackend(), HttpBackend("http://127.0.0.1:1")),
    ],
)
def test_origins_tell_services_apart(one: OriginBackend, other: OriginBackend) -> None:
    """Two services (or Firebase projects, tenants, the emulator) have two origins."""
    client = ClientCredentials("app", "a-client-secret-0123456789")
    assert one.origin(client) != other.origin(client)
    assert one.origin(client) == one.origin(ClientCredentials("app", "another-secret-0123456"))


def test_origins_tell_clients_apart_and_hold_no_secret() -> None:
    """An origin names the client id, never the client secret nor a Firebase API key."""
    secret = "a-client-secret-0123456789"
    http = HttpBackend("http://127.0.0.1:1")
    a, b = ClientCredentials("app-a", secret), ClientCredentials("app-b", secret)
    assert http.origin(a) != http.origin(b)
    for origin in (http.origin(a), FirebaseBackend(API_KEY).origin(a)):
        assert secret not in origin
        assert API_KEY not in origin


async def test_a_backend_without_origin_keeps_the_one_the_app_set(tmp_path: Path) -> None:
    """A backend that names no origin leaves the one the app set on the storage: saves name
    it, and a file of another origin is still not restored."""
    path = tmp_path / "session.json"
    storage = FileSessionStorage(path)
    storage.origin = "my-service client=app"
    async with MimiCore.start(backend=CountingBackend(ScriptedBackend()), storage=storage) as core:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    assert json.loads(path.read_text())["origin"] == "my-service client=app"
    elsewhere = FileSessionStorage(path)
    elsewhere.origin = "another-service client=app"
    async with MimiCore.start(
        backend=CountingBackend(ScriptedBackend()), storage=elsewhere
    ) as core:
        assert core.auth.current_user is None


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("http://127.0.0.1:18432", "http://127.0.0.1:18432/"),
        ("http://localhost:18432", "HTTP://LocalHost:18432//"),
        ("http://id.example.com", "http://id.example.com:80"),
        ("https://id.example.com/", "https://ID.example.com:443"),
        ("https://id.example.com/api", "https://id.example.com/api/"),
        ("http://[::1]:8000/", "http://[::1]:8000"),
    ],
)
def test_one_service_spelt_two_ways_is_one_origin(one: str, other: str) -> None:
    """A final slash, a host's case, the scheme's default port: one service, one origin."""
    assert HttpBackend(one).origin(CLIENT) == HttpBackend(other).origin(CLIENT)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("http://127.0.0.1:18432", "http://localhost:18432"),
        ("http://id.example.com:443", "https://id.example.com"),
        ("https://id.example.com:8443", "https://id.example.com"),
        ("https://id.example.com/API", "https://id.example.com/api"),
        ("http://[::1]:8000", "http://[0:0::1]:8000"),
    ],
)
def test_two_services_are_two_origins(one: str, other: str) -> None:
    """Another host (names and addresses are not resolved), scheme, port or path is another
    origin."""
    assert HttpBackend(one).origin(CLIENT) != HttpBackend(other).origin(CLIENT)


def test_the_emulators_host_is_one_origin_in_any_case() -> None:
    """The Firebase emulator's host in upper or lower case is one origin."""
    lower = FirebaseBackend(API_KEY, emulator_host="localhost:9099").origin(CLIENT)
    assert FirebaseBackend(API_KEY, emulator_host="LocalHost:9099").origin(CLIENT) == lower


def anonymous_core(path: Path, origin: str) -> MimiCore:
    """A core on a scripted service whose file is ``origin``'s (the app names it)."""
    storage = FileSessionStorage(path, poll_interval=0.05)
    storage.origin = origin
    return MimiCore.start(backend=CountingBackend(ScriptedBackend()), storage=storage)  # type: ignore[return-value]


async def test_a_save_over_another_origins_session_moves_it_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An anonymous-first app whose base URL changed starts logged out; its sign-up moves the
    old file aside (0600, logged once) instead of losing the old anonymous id for good."""
    caplog.set_level(logging.WARNING, logger="mimi_reactive")
    path = tmp_path / "session.json"
    async with anonymous_core(path, "http://old client=app") as old:
        first = await old.auth.authenticate(AuthRoute.sign_up_anonymously())
    path.chmod(0o644)  # as a user's umask or a copy may have left it
    async with anonymous_core(path, "http://new client=app") as new:
        assert new.auth.current_user is None
        second = await new.auth.authenticate(AuthRoute.sign_up_anonymously())
        await new.auth.log_out()  # a write over its own origin's file moves nothing
    (aside,) = moved_aside(path)
    assert aside.stat().st_mode & 0o777 == 0o600
    kept = json.loads(aside.read_text())
    assert kept["origin"] == "http://old client=app"
    assert kept["session"]["user"]["anonymous_id"] == first.anonymous_id
    assert json.loads(path.read_text())["origin"] == "http://new client=app"
    assert second.anonymous_id != first.anonymous_id
    assert event_names(caplog).count("storage.other_origin_session_moved_aside") == 1


async def test_a_save_over_another_origins_log_out_moves_nothing(tmp_path: Path) -> None:
    """A stored log-out of another origin holds no credential: it is written over."""
    path = tmp_path / "session.json"
    path.write_text(json.dumps(encode_session(None, "http://old client=app")))
    async with anonymous_core(path, "http://new client=app") as new:
        await new.auth.authenticate(AuthRoute.sign_up_anonymously())
    assert moved_aside(path) == []
    assert json.loads(path.read_text())["origin"] == "http://new client=app"


async def test_another_origins_file_is_noted_once_until_it_is_ours_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Loads that keep finding another origin's file log storage.other_origin_session once,
    at warning; once the file is this origin's again, the next takeover is noted again."""
    caplog.set_level(logging.DEBUG, logger="mimi_reactive")
    path = tmp_path / "session.json"
    storage = FileSessionStorage(path)
    storage.origin = "http://here client=x"
    path.write_text(json.dumps(encode_session(None, "http://elsewhere client=x")))
    for _ in range(3):
        with pytest.raises(OtherOriginSessionError):
            await storage.load()
    noted = [
        r
        for r in library_events(caplog)
        if getattr(r, "event", None) == "storage.other_origin_session"
    ]
    assert [r.levelno for r in noted] == [logging.WARNING]
    await storage.clear()
    assert await storage.load() is None
    path.write_text(json.dumps(encode_session(None, "http://elsewhere client=x")))
    with pytest.raises(OtherOriginSessionError):
        await storage.load()
    assert event_names(caplog).count("storage.other_origin_session") == 2
