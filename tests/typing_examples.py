"""Public usage that mypy --strict must accept as written (not collected by pytest).

Each function is what an app would write; a change to the public types that breaks one of
them breaks users too. ``./scripts/test`` type-checks this file with the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import assert_type

import reactivex
from aiohttp import web

from mimi_reactive import (
    AnonymousAuthManager,
    AnonymousLogInResult,
    AuthBackend,
    AuthController,
    AuthObserver,
    AuthRoute,
    AuthTokens,
    BackendCapabilities,
    BackendSession,
    BlockingAnonymousAuthManager,
    BlockingAuthController,
    BlockingMimiCore,
    ClientCredentials,
    CommandFuture,
    DeletingBackend,
    Failure,
    FileSessionStorage,
    LogOut,
    MimiConfiguration,
    MimiCore,
    MimiCoreError,
    MimiUser,
    OriginBackend,
    Outcome,
    Reason,
    RefreshPolicy,
    Session,
    SessionState,
    SessionStorage,
    SharedSessionStorage,
    SignUpAnonymously,
    Skipped,
    StartingCore,
    Success,
    Transition,
    TransportError,
)
from mimi_reactive.backends.firebase import FirebaseBackend
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import (
    ClientConfig,
    IdentityServer,
    ServerSettings,
    ServerStartError,
    SweepCounts,
)
from mimi_reactive.testing import (
    BlockingStateRecorder,
    FailingStorage,
    Reply,
    ScriptedBackend,
    StateRecorder,
)
from mimi_reactive.verify import (
    AccessTokenVerifier,
    InvalidTokenError,
    VerifiedToken,
    requires_user,
    verified_token,
)


async def start_and_restore(secret: str, stored_id: str | None) -> MimiUser | None:
    """The README's launch flow, with every result case handled."""
    async with MimiCore.start(
        client_id="my-app",
        client_secret=secret,
        configuration=MimiConfiguration(
            allow_anonymous_user_only=True, refresh=RefreshPolicy(ahead=0.3)
        ),
        backend=HttpBackend("https://identity.example"),
        storage=FileSessionStorage("~/.config/my-app/session.json"),
        close_grace_period=2.0,
    ) as core:
        match await AnonymousAuthManager(core).authenticate_anonymous_user(stored_id):
            case Success(anonymous_id=anonymous_id):
                print(len(anonymous_id))
            case Skipped(reason=reason):
                assert reason is Reason.BLANK_ANONYMOUS_ID
                return await core.auth.authenticate(AuthRoute.sign_up_anonymously())
            case Failure(error=error):
                error_type: type[MimiCoreError] = type(error)
                print(error_type.__name__)
        return core.auth.current_user


async def subscribe_every_way(core: MimiCore, render: Callable[[SessionState], None]) -> None:
    """The stream, the user stream, async iteration and observers."""
    states: reactivex.Observable[SessionState] = core.auth.states
    states.subscribe(render)
    users: reactivex.Observable[MimiUser | None] = core.auth.mimi_user
    users.subscribe(lambda user: print(user is None))
    async with contextlib.aclosing(core.auth.updates()) as updates:
        async for state in updates:
            if state.transition is Transition.LOGGED_OUT:
                break

    class Observer:
        def auth_controller_did_update(
            self,
            controller: object,
            current_user: MimiUser | None,
            old_user: MimiUser | None,
            error: Exception | None,
        ) -> None:
            print(current_user, old_user, error)

    core.auth.add_observer(Observer()).remove()

    class LoggingOut:
        """An observer typed with the controller it is given, which it calls back."""

        def auth_controller_did_update(
            self,
            controller: AuthController,
            current_user: MimiUser | None,
            old_user: MimiUser | None,
            error: Exception | None,
        ) -> None:
            if error is not None:
                controller.dispatch(LogOut())

    typed: AuthObserver = LoggingOut()  # bare: an observer of MimiCore's controller
    core.auth.add_observer(typed).remove()


async def commands(core: MimiCore) -> str:
    """Outcomes, dispatch from anywhere, tokens and log-out."""
    outcome: Outcome = await core.auth.run(AuthRoute.log_in_anonymously(None))
    if outcome.skipped:
        assert outcome.reason is Reason.BLANK_ANONYMOUS_ID
    future: CommandFuture = core.auth.dispatch(AuthRoute.sign_up_anonymously())
    dispatched: Outcome = await future
    from_a_thread: Outcome = await asyncio.to_thread(future.result, 5.0)
    assert dispatched.state == from_a_thread.state
    token: str = await core.auth.access_token()
    expires_at: float | None = core.auth.access_token_expires_at
    assert expires_at is None or expires_at > 0
    await core.auth.refresh()
    await core.auth.log_out()
    return token


def blocking(secret: str, render: Callable[[SessionState], None]) -> str:
    """The blocking core, from code that is not async."""
    with BlockingMimiCore.start(
        client_id="my-app", client_secret=secret, backend=ScriptedBackend()
    ) as core:
        core.auth.states.subscribe(render)
        tokens: reactivex.Observable[str | None] = core.auth.access_tokens
        tokens.subscribe(print)
        user: MimiUser = core.auth.authenticate(AuthRoute.sign_up_anonymously())
        result = BlockingAnonymousAuthManager(core).authenticate_anonymous_user(user.anonymous_id)
        assert isinstance(result, Success)
        expires_at: float | None = core.auth.access_token_expires_at
        assert expires_at is None or expires_at > 0

        class Observer:
            """A blocking core's observer is given its BlockingAuthController."""

            def auth_controller_did_update(
                self,
                controller: BlockingAuthController,
                current_user: MimiUser | None,
                old_user: MimiUser | None,
                error: Exception | None,
            ) -> None:
                if current_user is None:
                    controller.dispatch(AuthRoute.sign_up_anonymously())

        observer: AuthObserver[BlockingAuthController] = Observer()
        core.auth.add_observer(observer).remove()
        return core.auth.access_token()


async def an_apps_own_test() -> list[Transition]:
    """The testing kit, as an app's own tests use it."""
    backend = ScriptedBackend()
    async with MimiCore.start(client_id="app", client_secret="s", backend=backend) as core:
        recorder = StateRecorder(core)
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        await recorder.wait_for(Transition.ANONYMOUS_CREATED)
        return recorder.transitions


def an_apps_own_blocking_test() -> list[MimiUser | None]:
    """The testing kit, as the tests of an app that is not async use it."""
    with (
        BlockingMimiCore.start(
            client_id="app", client_secret="s", backend=ScriptedBackend()
        ) as core,
        BlockingStateRecorder(core) as recorder,
    ):
        core.auth.dispatch(AuthRoute.sign_up_anonymously())
        created: SessionState = recorder.wait_for(Transition.ANONYMOUS_CREATED, timeout=5)
        assert created in recorder.states
        assert recorder.transitions[0] is Transition.INITIAL
        assert not recorder.completed
        assert not recorder.stopped
        return recorder.users


class KeyringStorage:
    """An app's own storage: any class with these three methods is a SessionStorage."""

    def __init__(self) -> None:
        self._kept: Session | None = None

    async def load(self) -> Session | None:
        return self._kept

    async def save(self, session: Session) -> None:
        self._kept = session

    async def clear(self) -> None:
        self._kept = None


class RedisStorage(KeyringStorage):
    """An app's own storage shared by several processes: a lock and a change feed more."""

    @contextlib.asynccontextmanager
    async def lock(self) -> AsyncIterator[None]:
        yield

    async def changes(self) -> AsyncIterator[None]:
        yield


class MyServiceBackend:
    """An app's own backend for another identity service (anonymous sign-up only here)."""

    capabilities = BackendCapabilities(routes=frozenset({SignUpAnonymously}), delete=True)

    async def open(self, client: ClientCredentials) -> None:
        print(client.client_id)

    async def close(self) -> None:
        pass

    async def authenticate(self, route: AuthRoute, session: Session | None) -> BackendSession:
        user = MimiUser("u1", anonymous_id="an-issued-id", is_anonymous=True)
        return BackendSession(user, AuthTokens("access", "refresh", expires_in=3600.0))

    async def refresh(self, session: Session) -> BackendSession:
        return BackendSession(session.user, AuthTokens("access", "refresh", 3600.0))

    async def revoke(self, session: Session, *, everywhere: bool = False) -> None:
        pass

    async def delete(self, session: Session) -> None:
        pass

    def origin(self, client: ClientCredentials) -> str:
        return f"my-service client={client.client_id}"


async def an_apps_own_parts(api_key: str) -> None:
    """An app's own storages and backend, and the Firebase backend, as start takes them."""
    storage: SessionStorage = KeyringStorage()
    shared: SharedSessionStorage = RedisStorage()
    backend: AuthBackend = MyServiceBackend()
    deleting: DeletingBackend = MyServiceBackend()
    named: OriginBackend = MyServiceBackend()
    assert_type(named.origin(ClientCredentials("my-app")), str)
    starting = MimiCore.start(backend=backend, storage=storage)
    assert_type(starting, StartingCore)
    async with starting as core, MimiCore.start(backend=deleting, storage=shared) as other:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        await other.auth.delete_account()
    firebase = FirebaseBackend(api_key, emulator_host="127.0.0.1:9099", timeout=5.0)
    async with MimiCore.start(backend=firebase) as core:
        result = await AnonymousAuthManager(core).authenticate_anonymous_user(None)
        assert_type(result, AnonymousLogInResult)


async def scripted_replies(core: MimiCore, backend: ScriptedBackend) -> None:
    """Scripted replies, and a storage whose writes fail."""
    backend.script(
        Reply.succeed(delay=0.1),
        Reply.fail(TransportError("offline"), only_for=("refresh",)),
        Reply.never(only_for=["log_in"]),
    )
    calls: list[str] = backend.calls
    print(calls)
    storage = FailingStorage(failing=True)
    storage.failing = False
    await MimiCore.start(backend=backend, storage=storage)


async def verify_in_an_api(token: str) -> str | None:
    """An app's own API checking an access token offline, and an aiohttp handler behind it."""
    async with AccessTokenVerifier("https://identity.example", clients={"my-app"}) as verifier:
        try:
            claims: VerifiedToken = await verifier.verify(token)
        except InvalidTokenError as error:
            reason: str = error.reason
            return reason

        @requires_user(verifier)
        async def me(request: web.Request) -> web.Response:
            caller = verified_token(request)
            assert_type(caller, VerifiedToken)
            return web.json_response({"user": caller.user_id, "anonymous": caller.is_anonymous})

        app = web.Application()
        app.router.add_get("/me", me)
        return claims.session_id


async def run_a_server(secret: str, other_secret: str) -> str:
    """The reference server in-process, with settings, several clients and its maintenance."""
    settings = ServerSettings(access_token_ttl=600, session_idle_timeout=86_400)
    clients = [
        ClientConfig("my-app", secret, anonymous_only=True),
        ClientConfig("web", other_secret),
    ]
    try:
        async with IdentityServer(
            clients=clients, database="ids.sqlite3", settings=settings
        ) as server:
            counts: SweepCounts = await server.sweep()
            print(counts.sessions, counts.refresh_tokens, counts.users, counts.signing_keys)
            url: str = server.url
    except ServerStartError as error:
        refused: bool = error.refused
        return f"{error} {refused}"
    found, now = await IdentityServer.migrate_database("ids.sqlite3")
    assert_type(found, int)
    kid: str = await IdentityServer.rotate_signing_key("ids.sqlite3")
    await IdentityServer.sweep_database("ids.sqlite3", settings, delete_retired_keys=True)
    return f"{url} {now} {kid}"


class HalfAStorage:
    """Not a storage: it cannot clear."""

    async def load(self) -> Session | None:
        return None

    async def save(self, session: Session) -> None:
        pass


async def refused_by_the_types(core: MimiCore) -> None:
    """What mypy must go on refusing: each ignore is reported unused if the API loosens."""
    Reply.fail(None)  # type: ignore[arg-type]
    await core.auth.authenticate(LogOut())  # type: ignore[arg-type]
    BackendCapabilities(routes={SignUpAnonymously})  # type: ignore[arg-type]
    MimiCore.start(backend=HttpBackend)  # type: ignore[arg-type]
    MimiCore.start(backend=ScriptedBackend(), storage=HalfAStorage())  # type: ignore[arg-type]
    FirebaseBackend(api_key=None)  # type: ignore[arg-type]
    IdentityServer(client_id="my-app", port="8080")  # type: ignore[arg-type]
    not_awaited = MimiCore.start(client_id="a", client_secret="s", backend=ScriptedBackend())
    print(not_awaited.auth)  # type: ignore[attr-defined]  # a forgotten await
    user: MimiUser = await core.auth.run(AuthRoute.sign_up_anonymously())  # type: ignore[assignment]
    print(user)
