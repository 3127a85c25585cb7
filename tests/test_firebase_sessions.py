"""FirebaseBackend keeps a session whole on the Auth emulator: a promotion made elsewhere is
never overwritten, and odd renewal answers (no refresh token, another user, codes only
production sends) never lose or switch the user, and a call sends only what Firebase's API
documents. Answers the emulator never gives come through a rewriting proxy in front of it,
which also records what is sent."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mimi_reactive import (
    AccessTokenRefusedError,
    AuthRoute,
    BackendError,
    ConflictError,
    FileSessionStorage,
    MimiCore,
    SessionRevokedError,
    Transition,
    WeakPasswordError,
)
from mimi_reactive.backends.firebase import FirebaseBackend

from .contract_backends import firebase_call, new_email, new_password
from .firebase_emulator import API_KEY, PROJECT, AuthEmulator
from .rewriting_proxy import RewritingProxy

Start = Callable[[Path], Awaitable[MimiCore]]


@pytest.fixture
async def proxy(firebase_emulator: AuthEmulator) -> AsyncIterator[RewritingProxy]:
    """A rewriting proxy in front of the emulator (answers as they are until told)."""
    async with RewritingProxy(firebase_emulator.url) as proxy:
        yield proxy


@pytest.fixture
async def start(proxy: RewritingProxy) -> AsyncIterator[Start]:
    """Start cores on FirebaseBackend through the proxy, each on the session file given."""
    cores: list[MimiCore] = []

    async def start(path: Path) -> MimiCore:
        backend = FirebaseBackend(API_KEY, emulator_host=proxy.host)
        core = await MimiCore.start(backend=backend, storage=FileSessionStorage(path))
        cores.append(core)
        return core

    yield start
    for core in cores:
        await core.close()


async def stored_refresh_token(path: Path) -> str | None:
    session = await FileSessionStorage(path).load()
    assert session is not None
    return session.tokens.refresh_token


async def test_a_second_promotion_of_a_user_promoted_elsewhere_is_refused(
    firebase_emulator: AuthEmulator, start: Start, tmp_path: Path
) -> None:
    """Two devices hold one anonymous user; after the first promotes it, the second (not yet
    renewed) is refused with ConflictError not_anonymous, as by the reference server,
    instead of overwriting the first's email and password; its next refresh is PROMOTED."""
    one_file, two_file = tmp_path / "one.json", tmp_path / "two.json"
    first = await start(one_file)
    user = await first.auth.authenticate(AuthRoute.sign_up_anonymously())
    shutil.copy(one_file, two_file)  # a restored backup, a synced folder
    second = await start(two_file)
    email, password = new_email(), new_password()
    await first.auth.authenticate(AuthRoute.promote(email=email, password=password))
    # Setting a password revokes the user's tokens issued before that second: reset, so the
    # second device's tokens stay good, as when both fall in one second (else it is ended).
    path = f"identitytoolkit.googleapis.com/v1/projects/{PROJECT}"
    reset = {"localId": user.id, "validSince": "0"}
    await firebase_call(firebase_emulator, "accounts:update", reset, owner=True, path=path)
    with pytest.raises(ConflictError) as refused:
        await second.auth.authenticate(AuthRoute.promote(email=new_email(), password="other1"))
    assert refused.value.code == "not_anonymous"
    assert second.auth.current_user == user  # the same user, anonymous until it renews
    found = await firebase_call(
        firebase_emulator, "accounts:lookup", {"localId": [user.id]}, owner=True, path=path
    )
    assert found["users"][0]["email"] == email
    credentials = {"email": email, "password": password, "returnSecureToken": True}
    await firebase_call(firebase_emulator, "accounts:signInWithPassword", credentials)
    await second.auth.refresh()
    promoted = second.auth.state
    assert promoted.transition is Transition.PROMOTED
    assert promoted.user is not None
    assert (promoted.user.id, promoted.user.email) == (user.id, email)


def _without_refresh_token(path: str, status: int, body: dict[str, Any]) -> tuple[int, Any]:
    if status == 200:
        body = {k: v for k, v in body.items() if k not in ("refresh_token", "refreshToken")}
    return status, body


@pytest.mark.parametrize("renewal", ["refresh", "promotion"])
async def test_an_answer_without_a_refresh_token_keeps_the_session_s(
    proxy: RewritingProxy, start: Start, tmp_path: Path, renewal: str
) -> None:
    """A refresh or promotion answered without a refresh token keeps the session's (Firebase's
    do not rotate), so the next refresh still works instead of ending the session."""
    path = tmp_path / "session.json"
    core = await start(path)
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    before = await stored_refresh_token(path)
    assert before is not None
    proxy.rewrite = _without_refresh_token
    if renewal == "refresh":
        await core.auth.refresh()
    else:
        await core.auth.authenticate(AuthRoute.promote(email=new_email(), password="secret123"))
    assert await stored_refresh_token(path) == before
    proxy.rewrite = lambda path, status, body: (status, body)
    await core.auth.refresh()
    state = core.auth.state
    assert state.user is not None
    assert (state.user.id, state.degraded, state.error) == (user.id, False, None)


@pytest.mark.parametrize("swapped", ["tokens", "user_id"])
async def test_a_refresh_naming_another_user_is_refused(
    firebase_emulator: AuthEmulator,
    proxy: RewritingProxy,
    start: Start,
    tmp_path: Path,
    swapped: str,
) -> None:
    """A refresh answer whose ID token, or whose user_id, names another user is refused as
    invalid_response: the session's user stays (degraded, retried), never switched."""
    other = await firebase_call(firebase_emulator, "accounts:signUp", {"returnSecureToken": True})
    path = tmp_path / "session.json"
    core = await start(path)
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    seen: list[str | None] = []
    core.auth.states.subscribe(lambda state: seen.append(state.user.id if state.user else None))

    def another_user(path: str, status: int, body: dict[str, Any]) -> tuple[int, Any]:
        if "securetoken" in path and status == 200:
            body = {**body, "user_id": other["localId"]}
            if swapped == "tokens":
                body.update(id_token=other["idToken"], access_token=other["idToken"])
                body.update(refresh_token=other["refreshToken"])
        return status, body

    proxy.rewrite = another_user
    with pytest.raises(BackendError) as refused:
        await core.auth.refresh()
    assert (type(refused.value), refused.value.code) == (BackendError, "invalid_response")
    assert set(seen) == {user.id}
    assert core.auth.state.degraded
    stored = await FileSessionStorage(path).load()
    assert stored is not None
    assert stored.user.id == user.id


@pytest.mark.parametrize(
    "code",
    [
        "PROJECT_NUMBER_MISMATCH",
        "TENANT_ID_MISMATCH",
        "MISSING_REFRESH_TOKEN",
        "INVALID_GRANT_TYPE",
        "MISSING_GRANT_TYPE",
    ],
)
async def test_a_refresh_firebase_can_never_take_ends_the_session(
    proxy: RewritingProxy, start: Start, tmp_path: Path, code: str
) -> None:
    """Codes that no retry changes (a session of another project, a refresh request Firebase
    cannot take) end the session (SESSION_EXPIRED) instead of leaving it degraded for good."""
    path = tmp_path / "session.json"
    core = await start(path)
    await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    proxy.refusing = {"/token": code}
    with pytest.raises(SessionRevokedError) as ended:
        await core.auth.refresh()
    assert ended.value.code == code
    state = core.auth.state
    assert (state.transition, state.user, state.degraded) == (
        Transition.SESSION_EXPIRED,
        None,
        False,
    )
    assert await FileSessionStorage(path).load() is None


async def test_a_deletion_too_long_after_the_sign_in_fails_alone(
    proxy: RewritingProxy, start: Start, tmp_path: Path
) -> None:
    """CREDENTIAL_TOO_OLD_LOGIN_AGAIN on a deletion is AccessTokenRefusedError: the core
    renews and asks once more, then the call fails and the user stays logged in."""
    core = await start(tmp_path / "session.json")
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    proxy.refusing = {"accounts:delete": "CREDENTIAL_TOO_OLD_LOGIN_AGAIN"}
    proxy.paths.clear()
    with pytest.raises(AccessTokenRefusedError) as refused:
        await core.auth.delete_account()
    assert refused.value.code == "CREDENTIAL_TOO_OLD_LOGIN_AGAIN"
    assert core.auth.current_user == user
    assert [each.rsplit("/", 1)[-1] for each in proxy.paths] == [
        "accounts:delete",
        "token",
        "accounts:delete",
    ]


_POLICY = (
    "PASSWORD_DOES_NOT_MEET_REQUIREMENTS : Missing password requirements: "
    "[Password must contain a non-alphanumeric character]"
)
"""Production's answer when a project's password policy refuses a password."""


@pytest.mark.parametrize(
    ("route", "method"),
    [
        (AuthRoute.promote, "accounts:update"),
        (AuthRoute.sign_up, "accounts:signUp"),
        (AuthRoute.log_in, "accounts:signInWithPassword"),
    ],
    ids=["promotion", "sign-up", "log-in"],
)
async def test_a_password_the_project_s_policy_refuses_is_weak(
    proxy: RewritingProxy,
    start: Start,
    tmp_path: Path,
    route: Callable[..., AuthRoute],
    method: str,
) -> None:
    """PASSWORD_DOES_NOT_MEET_REQUIREMENTS (an Identity Platform password policy, which the
    emulator does not enforce) is WeakPasswordError without Firebase's text, as WEAK_PASSWORD
    is; a promotion it refuses keeps the anonymous user."""
    core = await start(tmp_path / "session.json")
    before = None
    if method == "accounts:update":
        before = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    proxy.refusing = {method: _POLICY}
    with pytest.raises(WeakPasswordError) as refused:
        await core.auth.authenticate(route(email=new_email(), password=new_password()))
    assert refused.value.code == "PASSWORD_DOES_NOT_MEET_REQUIREMENTS"
    assert "non-alphanumeric" not in str(refused.value)
    assert core.auth.current_user == before


async def test_a_deletion_sends_only_the_id_token(
    proxy: RewritingProxy, start: Start, tmp_path: Path
) -> None:
    """accounts:delete gets only the ID token, as Firebase's SDKs send it: no
    returnSecureToken, a field its request does not document (the emulator takes any, but
    Google's APIs may refuse a JSON name their request does not have)."""
    path = tmp_path / "session.json"
    core = await start(path)
    await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    session = await FileSessionStorage(path).load()
    assert session is not None
    proxy.paths.clear()
    proxy.bodies.clear()
    await core.auth.delete_account()
    assert [each.rsplit("/", 1)[-1] for each in proxy.paths] == ["accounts:delete"]
    assert json.loads(proxy.bodies[0]) == {"idToken": session.tokens.access_token}
