"""Firebase's error codes, each provoked on the Auth emulator, map to our typed errors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mimi_reactive import (
    AccountDisabledError,
    AuthRoute,
    BackendError,
    ClientCredentials,
    ConflictError,
    FileSessionStorage,
    InvalidCredentialsError,
    MimiConfiguration,
    MimiCore,
    RateLimitedError,
    SessionRevokedError,
    SignInMethodDisabledError,
    Transition,
    WeakPasswordError,
)
from mimi_reactive.backends._firebase_errors import error_from
from mimi_reactive.backends.firebase import FirebaseBackend

from .contract_backends import firebase_call, new_email, new_password
from .firebase_emulator import API_KEY, PROJECT, AuthEmulator


@pytest.fixture
async def start(firebase_emulator: AuthEmulator, tmp_path: Path) -> AsyncIterator[Any]:
    """Start cores on FirebaseBackend against the emulator (with a file storage each)."""
    cores: list[MimiCore] = []

    async def start(tenant_id: str | None = None) -> MimiCore:
        backend = FirebaseBackend(
            API_KEY, emulator_host=firebase_emulator.host, tenant_id=tenant_id
        )
        core = await MimiCore.start(
            backend=backend,
            storage=FileSessionStorage(tmp_path / f"session-{len(cores)}.json"),
            configuration=MimiConfiguration(),
        )
        cores.append(core)
        return core

    yield start
    for core in cores:
        await core.close()


async def admin_update(emulator: AuthEmulator, body: dict[str, Any]) -> None:
    """Change an account as the project's owner would (disable it, revoke its tokens)."""
    await firebase_call(emulator, "accounts:update", body, owner=True)


async def set_email_privacy(emulator: AuthEmulator, enabled: bool) -> None:
    """Turn Firebase's email enumeration protection on or off for the project."""
    body = {"emailPrivacyConfig": {"enableImprovedEmailPrivacy": enabled}}
    path = f"identitytoolkit.googleapis.com/v2/projects/{PROJECT}"
    await firebase_call(emulator, "config", body, owner=True, path=path, http_method="PATCH")


async def test_email_exists_is_a_conflict_and_keeps_the_anonymous_session(start: Any) -> None:
    """EMAIL_EXISTS (sign-up, promotion) raises ConflictError; the anonymous user stays."""
    email = new_email()
    owner: MimiCore = await start()
    await owner.auth.authenticate(AuthRoute.sign_up(email=email, password=new_password()))
    with pytest.raises(ConflictError) as taken:
        await owner.auth.authenticate(AuthRoute.sign_up(email=email, password=new_password()))
    assert taken.value.code == "EMAIL_EXISTS"
    core: MimiCore = await start()
    anonymous = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    with pytest.raises(ConflictError) as promoted:
        await core.auth.authenticate(AuthRoute.promote(email=email, password=new_password()))
    assert promoted.value.code == "EMAIL_EXISTS"
    assert core.auth.current_user == anonymous


async def test_wrong_password_and_unknown_email_are_invalid_credentials(start: Any) -> None:
    """INVALID_PASSWORD and EMAIL_NOT_FOUND raise InvalidCredentialsError."""
    core: MimiCore = await start()
    email = new_email()
    await core.auth.authenticate(AuthRoute.sign_up(email=email, password=new_password()))
    await core.auth.log_out()
    with pytest.raises(InvalidCredentialsError) as wrong:
        await core.auth.authenticate(AuthRoute.log_in(email=email, password=new_password()))
    assert wrong.value.code == "INVALID_PASSWORD"
    with pytest.raises(InvalidCredentialsError) as unknown:
        await core.auth.authenticate(AuthRoute.log_in(email=new_email(), password="whatever1"))
    assert unknown.value.code == "EMAIL_NOT_FOUND"


async def test_with_email_privacy_bad_credentials_are_invalid_credentials(
    start: Any, firebase_emulator: AuthEmulator
) -> None:
    """INVALID_LOGIN_CREDENTIALS (email enumeration protection on) is InvalidCredentialsError."""
    core: MimiCore = await start()
    email = new_email()
    await core.auth.authenticate(AuthRoute.sign_up(email=email, password=new_password()))
    await core.auth.log_out()
    await set_email_privacy(firebase_emulator, True)
    try:
        for route in (
            AuthRoute.log_in(email=email, password=new_password()),
            AuthRoute.log_in(email=new_email(), password=new_password()),
        ):
            with pytest.raises(InvalidCredentialsError) as refused:
                await core.auth.authenticate(route)
            assert refused.value.code == "INVALID_LOGIN_CREDENTIALS"
    finally:
        await set_email_privacy(firebase_emulator, False)


async def test_a_deleted_user_s_refresh_ends_the_session(
    start: Any, firebase_emulator: AuthEmulator
) -> None:
    """INVALID_REFRESH_TOKEN (the user was deleted elsewhere) ends it: SESSION_EXPIRED."""
    core: MimiCore = await start()
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    await firebase_call(firebase_emulator, "accounts:delete", {"localId": user.id}, owner=True)
    with pytest.raises(SessionRevokedError) as ended:
        await core.auth.refresh()
    assert ended.value.code == "INVALID_REFRESH_TOKEN"
    assert core.auth.state.transition is Transition.SESSION_EXPIRED
    assert core.auth.current_user is None


async def test_a_deleted_user_s_promotion_ends_the_session(
    start: Any, firebase_emulator: AuthEmulator
) -> None:
    """USER_NOT_FOUND (promoting a user deleted elsewhere) ends it: SESSION_EXPIRED."""
    core: MimiCore = await start()
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    await firebase_call(firebase_emulator, "accounts:delete", {"localId": user.id}, owner=True)
    with pytest.raises(SessionRevokedError) as ended:
        await core.auth.authenticate(AuthRoute.promote(email=new_email(), password="secret12"))
    assert ended.value.code == "USER_NOT_FOUND"
    assert core.auth.state.transition is Transition.SESSION_EXPIRED
    assert core.auth.current_user is None


async def test_revoked_tokens_end_the_session(start: Any, firebase_emulator: AuthEmulator) -> None:
    """TOKEN_EXPIRED (tokens revoked by the owner) ends the session: SESSION_EXPIRED."""
    core: MimiCore = await start()
    user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    # What the Admin SDK's revokeRefreshTokens does: tokens issued before now are invalid.
    valid_since = str(int(time.time()) + 2)
    await admin_update(firebase_emulator, {"localId": user.id, "validSince": valid_since})
    with pytest.raises(SessionRevokedError) as ended:
        await core.auth.delete_account()
    assert ended.value.code == "TOKEN_EXPIRED"
    assert core.auth.state.transition is Transition.SESSION_EXPIRED


async def test_a_disabled_account_ends_the_session_and_cannot_log_in(
    start: Any, firebase_emulator: AuthEmulator
) -> None:
    """USER_DISABLED raises AccountDisabledError: the session ends, log-in is refused."""
    core: MimiCore = await start()
    email, password = new_email(), new_password()
    user = await core.auth.authenticate(AuthRoute.sign_up(email=email, password=password))
    await admin_update(firebase_emulator, {"localId": user.id, "disableUser": True})
    with pytest.raises(AccountDisabledError) as ended:
        await core.auth.refresh()
    assert ended.value.code == "USER_DISABLED"
    assert core.auth.state.transition is Transition.SESSION_EXPIRED
    with pytest.raises(AccountDisabledError):
        await core.auth.authenticate(AuthRoute.log_in(email=email, password=password))


async def test_a_weak_password_is_refused_and_keeps_the_anonymous_session(start: Any) -> None:
    """WEAK_PASSWORD raises WeakPasswordError, on sign-up and promotion alike."""
    core: MimiCore = await start()
    with pytest.raises(WeakPasswordError) as weak:
        await core.auth.authenticate(AuthRoute.sign_up(email=new_email(), password="12345"))
    assert weak.value.code == "WEAK_PASSWORD"
    anonymous = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    with pytest.raises(WeakPasswordError):
        await core.auth.authenticate(AuthRoute.promote(email=new_email(), password="12345"))
    assert core.auth.current_user == anonymous


async def test_turned_off_sign_in_methods_are_refused(
    start: Any, firebase_emulator: AuthEmulator
) -> None:
    """Email/password (sign-up and log-in) or anonymous sign-in turned off raises
    SignInMethodDisabledError."""
    path = f"identitytoolkit.googleapis.com/v2/projects/{PROJECT}"
    closed = {"displayName": "closed", "allowPasswordSignup": False, "enableAnonymousUser": False}
    tenant = await firebase_call(firebase_emulator, "tenants", closed, owner=True, path=path)
    core: MimiCore = await start(tenant_id=tenant["tenantId"])
    with pytest.raises(SignInMethodDisabledError) as password_off:
        await core.auth.authenticate(AuthRoute.sign_up(email=new_email(), password="secret12"))
    assert password_off.value.code == "OPERATION_NOT_ALLOWED"
    with pytest.raises(SignInMethodDisabledError) as log_in_off:
        await core.auth.authenticate(AuthRoute.log_in(email=new_email(), password="secret12"))
    assert log_in_off.value.code == "PASSWORD_LOGIN_DISABLED"
    with pytest.raises(SignInMethodDisabledError) as anonymous_off:
        await core.auth.authenticate(AuthRoute.sign_up_anonymously())
    assert anonymous_off.value.code == "ADMIN_ONLY_OPERATION"


async def test_other_codes_keep_firebase_s_code(firebase_emulator: AuthEmulator) -> None:
    """A code without a type of its own (INVALID_EMAIL: the backend called without the guards,
    which skip such an email) is a BackendError keeping it."""
    backend = FirebaseBackend(API_KEY, emulator_host=firebase_emulator.host)
    await backend.open(ClientCredentials())
    route = AuthRoute.sign_up(email="not-an-email", password="secret12")
    try:
        with pytest.raises(BackendError) as other:
            await backend.authenticate(route, None)
    finally:
        await backend.close()
    assert type(other.value) is BackendError
    assert (other.value.code, other.value.status) == ("INVALID_EMAIL", 400)


def test_too_many_attempts_is_rate_limited() -> None:
    """TOO_MANY_ATTEMPTS_TRY_LATER is RateLimitedError (the emulator never sends it)."""
    answer = {
        "error": {
            "code": 400,
            "message": "TOO_MANY_ATTEMPTS_TRY_LATER : Too many unsuccessful login attempts.",
            "errors": [{"message": "TOO_MANY_ATTEMPTS_TRY_LATER", "reason": "invalid"}],
        }
    }
    error = error_from(400, answer)
    assert isinstance(error, RateLimitedError)
    assert error.code == "TOO_MANY_ATTEMPTS_TRY_LATER"
    assert "login attempts" not in str(error)  # Firebase's own text is not passed on
