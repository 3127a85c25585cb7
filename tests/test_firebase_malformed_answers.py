"""A malformed success answer on any of FirebaseBackend's routes (an ID token, a refresh
token, a lifetime or a user id missing, empty or of the wrong kind) is BackendError
invalid_response: nothing stored, nobody logged out. The emulator's answers are changed by a
rewriting proxy in front of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from mimi_reactive import AuthRoute, BackendError, FileSessionStorage, MimiCore, Session, Transition
from mimi_reactive.backends.firebase import FirebaseBackend

from .contract_backends import firebase_call, new_email, new_password
from .firebase_emulator import API_KEY, AuthEmulator
from .rewriting_proxy import RewritingProxy

_MISSING = object()
"""The field left out of the answer."""


@attrs.frozen
class Route:
    """A route as the test drives it: how to reach it, the endpoint answering it, and the
    Secure Token API's names for the fields where they differ."""

    name: str
    endpoint: str
    renews: bool
    names: dict[str, str] = attrs.field(factory=dict)

    def field(self, name: str) -> str:
        return self.names.get(name, name)


_TOKEN_NAMES = {
    "idToken": "id_token",
    "refreshToken": "refresh_token",
    "expiresIn": "expires_in",
    "localId": "user_id",
}
ROUTES = [
    Route("sign_up_anonymously", "accounts:signUp", renews=False),
    Route("log_in", "accounts:signInWithPassword", renews=False),
    Route("sign_up", "accounts:signUp", renews=False),
    Route("promote", "accounts:update", renews=True),
    Route("refresh", "/token", renews=True, names=_TOKEN_NAMES),
]

# Each field, and what is malformed about it. A refresh token left out of a renewal keeps the
# session's (tests/test_firebase_sessions.py), and a user_id left out of a refresh answer is
# the ID token's: not malformed there.
MALFORMED: list[tuple[str, object]] = [
    ("idToken", _MISSING),
    ("idToken", ""),
    ("idToken", 42),
    ("idToken", "not-a-jwt"),
    ("refreshToken", _MISSING),
    ("refreshToken", ""),
    ("refreshToken", 42),
    ("refreshToken", None),
    ("expiresIn", "0"),
    ("expiresIn", "-5"),
    ("expiresIn", "1e400"),
    ("expiresIn", "soon"),
    ("localId", _MISSING),
    ("localId", ""),
    ("localId", 42),
    ("localId", "someone-else"),
]


def _shown(value: object) -> str:
    """A case's value in its id, the same in every pytest-xdist worker."""
    return "missing" if value is _MISSING else repr(value)


CASES = [
    pytest.param(route, field, value, id=f"{route.name}-{field}-{_shown(value)}")
    for route in ROUTES
    for field, value in MALFORMED
    if not (value is _MISSING and route.renews and field == "refreshToken")
    and not (value is _MISSING and route.name == "refresh" and field == "localId")
]


@pytest.fixture
async def proxy(firebase_emulator: AuthEmulator) -> AsyncIterator[RewritingProxy]:
    """A rewriting proxy in front of the emulator (answers as they are until told)."""
    async with RewritingProxy(firebase_emulator.url) as proxy:
        yield proxy


async def _stored(path: Path) -> Session | None:
    return await FileSessionStorage(path).load()


def _malform(route: Route, field: str, value: object) -> Callable[..., tuple[int, Any]]:
    """A rewrite giving ``route``'s success answer with ``field`` set to ``value``."""
    name = route.field(field)

    def rewrite(path: str, status: int, body: dict[str, Any]) -> tuple[int, Any]:
        if status != 200 or not path.endswith(route.endpoint):
            return status, body
        body = {key: each for key, each in body.items() if key != name}
        if value is not _MISSING:
            body[name] = value
        return status, body

    return rewrite


@pytest.mark.parametrize(("route", "field", "value"), CASES)
async def test_a_malformed_answer_is_an_invalid_response_and_changes_nothing(
    firebase_emulator: AuthEmulator,
    proxy: RewritingProxy,
    tmp_path: Path,
    route: Route,
    field: str,
    value: object,
) -> None:
    """Each route's answer malformed in one field raises BackendError invalid_response; the
    session stored and the user logged in (nobody, or the one before) stay as they were."""
    path = tmp_path / "session.json"
    backend = FirebaseBackend(API_KEY, emulator_host=proxy.host)
    async with MimiCore.start(backend=backend, storage=FileSessionStorage(path)) as core:
        email, password = new_email(), new_password()
        act: Callable[[], Awaitable[object]]
        if route.name == "sign_up_anonymously":
            act = lambda: core.auth.authenticate(AuthRoute.sign_up_anonymously())  # noqa: E731
        elif route.name == "sign_up":
            act = lambda: core.auth.authenticate(AuthRoute.sign_up(email=email, password=password))  # noqa: E731
        elif route.name == "log_in":
            credentials = {"email": email, "password": password, "returnSecureToken": True}
            await firebase_call(firebase_emulator, "accounts:signUp", credentials)
            act = lambda: core.auth.authenticate(AuthRoute.log_in(email=email, password=password))  # noqa: E731
        else:
            await core.auth.authenticate(AuthRoute.sign_up_anonymously())
            if route.name == "promote":
                act = lambda: core.auth.authenticate(  # noqa: E731
                    AuthRoute.promote(email=email, password=password)
                )
            else:
                act = core.auth.refresh
        user, stored = core.auth.current_user, await _stored(path)
        proxy.rewrite = _malform(route, field, value)
        with pytest.raises(BackendError) as refused:
            await act()
        assert (type(refused.value), refused.value.code) == (BackendError, "invalid_response")
        assert core.auth.current_user == user
        assert await _stored(path) == stored
        state = core.auth.state
        if route.name == "refresh":
            assert (state.transition, state.degraded) == (Transition.DEGRADED, True)
        else:
            assert (state.transition, state.degraded) == (Transition.FAILED, False)
