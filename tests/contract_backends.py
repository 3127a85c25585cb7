"""The services the backend contract suite runs on, each behind one small harness.

A harness makes backends that reach its service, can cut the network to it, and can end a
session at the service. A backend added later joins the suite with one harness and one
fixture parameter in ``test_backend_contract.py``.
"""

from __future__ import annotations

import abc
import secrets
import time
from collections.abc import Callable
from typing import Any, cast

import aiohttp

from mimi_reactive import (
    BackendCapabilities,
    ClientCredentials,
    DeletingBackend,
    MimiConfiguration,
    MimiCore,
    RefreshPolicy,
    RetryPolicy,
    Session,
    SessionStorage,
    TransportError,
)
from mimi_reactive.backends.firebase import FirebaseBackend
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer
from mimi_reactive.testing import ScriptedBackend

from .conftest import CLIENT_ID
from .firebase_emulator import API_KEY, AuthEmulator
from .helpers import CountingBackend
from .tcp_gate import TcpGate

FAST_RETRY = RetryPolicy(initial_delay=0.02, max_delay=0.1, max_attempts=1000)
RENEW_AT_ONCE = RefreshPolicy(ahead=0.9999, min_interval=0.05)
"""Renew a one-hour token after about a third of a second, so renewal runs in real time."""


class ObservedBackend(CountingBackend):
    """Delegates to a real backend, counts its calls, and fails them while ``offline``."""

    def __init__(self, inner: DeletingBackend) -> None:
        super().__init__(inner)
        self.inner: DeletingBackend = inner
        self.offline = False

    async def delete(self, session: Session) -> None:
        self._count("delete")
        await self.inner.delete(session)

    def _count(self, name: str) -> None:
        super()._count(name)
        if self.offline:
            raise TransportError("offline (the test cut the network)")


class Harness(abc.ABC):
    """One identity service as the contract suite sees it."""

    name: str
    client_id: str | None = None
    client_secret: str | None = None
    """The app's credentials, for a service that wants them."""

    def __init__(self) -> None:
        self.backends: list[ObservedBackend] = []
        self._cores: list[MimiCore] = []

    @property
    @abc.abstractmethod
    def capabilities(self) -> BackendCapabilities:
        """What the service's backend declares."""

    @abc.abstractmethod
    def _backend(self) -> DeletingBackend:
        """A new backend reaching the service (through the gate, where there is one)."""

    def backend(self) -> ObservedBackend:
        """A new, observed backend for one core."""
        observed = ObservedBackend(self._backend())
        self.backends.append(observed)
        return observed

    async def core(
        self,
        *,
        storage: SessionStorage | None = None,
        anonymous_only: bool = False,
        refresh: RefreshPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> tuple[MimiCore, ObservedBackend]:
        """A started core on a new observed backend (closed when the test ends)."""
        backend = self.backend()
        configuration = MimiConfiguration(
            allow_anonymous_user_only=anonymous_only,
            retry=FAST_RETRY,
            refresh=refresh or RefreshPolicy(),
        )
        core = await MimiCore.start(
            client_id=self.client_id,
            client_secret=self.client_secret,
            backend=backend,
            configuration=configuration,
            storage=storage,
            clock=clock,
        )
        self._cores.append(core)
        return core, backend

    @abc.abstractmethod
    def go_offline(self) -> None:
        """Cut the network between every backend and the service."""

    @abc.abstractmethod
    def go_online(self) -> None:
        """Restore it."""

    @abc.abstractmethod
    async def end_session(self, session: Session) -> None:
        """Have the service end ``session`` (its next refresh is refused)."""

    async def close(self) -> None:
        for core in self._cores:
            await core.close()


def new_email() -> str:
    return f"user-{secrets.token_hex(6)}@example.com"


def new_password() -> str:
    return secrets.token_urlsafe(12)


class GatedHarness(Harness):
    """A real service on loopback, reached through a ``TcpGate`` that can be shut."""

    def __init__(self, gate: TcpGate) -> None:
        super().__init__()
        self.gate = gate

    def go_offline(self) -> None:
        self.gate.shut()

    def go_online(self) -> None:
        self.gate.reopen()

    async def close(self) -> None:
        await super().close()
        await self.gate.close()


class ReferenceHarness(GatedHarness):
    """The reference server (``IdentityServer``) through ``HttpBackend``."""

    name = "reference"

    def __init__(self, server: IdentityServer, client_secret: str, gate: TcpGate) -> None:
        super().__init__(gate)
        self.server = server
        self.client_id, self.client_secret = CLIENT_ID, client_secret

    @property
    def capabilities(self) -> BackendCapabilities:
        return HttpBackend.capabilities

    def _backend(self) -> DeletingBackend:
        # HttpBackend has no delete; its capabilities say so and the core never asks.
        return cast(DeletingBackend, HttpBackend(f"http://{self.gate.host}", timeout=2))

    async def end_session(self, session: Session) -> None:
        backend = HttpBackend(self.server.url)
        await backend.open(ClientCredentials(self.client_id, self.client_secret))
        try:
            await backend.revoke(session)
        finally:
            await backend.close()


class FirebaseHarness(GatedHarness):
    """The Firebase Auth emulator through ``FirebaseBackend``."""

    name = "firebase"

    def __init__(self, emulator: AuthEmulator, gate: TcpGate) -> None:
        super().__init__(gate)
        self.emulator = emulator

    @property
    def capabilities(self) -> BackendCapabilities:
        return FirebaseBackend.capabilities

    def _backend(self) -> DeletingBackend:
        return FirebaseBackend(API_KEY, emulator_host=self.gate.host, timeout=2)

    async def end_session(self, session: Session) -> None:
        await firebase_call(
            self.emulator, "accounts:delete", {"idToken": session.tokens.access_token}
        )


class ScriptedHarness(Harness):
    """The in-process ``ScriptedBackend``: one instance (one user store) for every core."""

    name = "scripted"

    def __init__(self) -> None:
        super().__init__()
        self.scripted = ScriptedBackend()

    @property
    def capabilities(self) -> BackendCapabilities:
        return self.scripted.capabilities

    def _backend(self) -> DeletingBackend:
        return self.scripted

    def go_offline(self) -> None:
        for backend in self.backends:
            backend.offline = True

    def go_online(self) -> None:
        for backend in self.backends:
            backend.offline = False

    async def end_session(self, session: Session) -> None:
        await self.scripted.revoke(session)


async def firebase_call(
    emulator: AuthEmulator,
    method: str,
    body: dict[str, Any],
    *,
    owner: bool = False,
    path: str = "identitytoolkit.googleapis.com/v1",
    http_method: str = "POST",
) -> dict[str, Any]:
    """One raw call to the emulator (as an admin with ``owner``); fails on an error answer."""
    headers = {"Authorization": "Bearer owner"} if owner else {"X-Goog-Api-Key": API_KEY}
    url = f"{emulator.url}/{path}/{method}"
    async with (
        aiohttp.ClientSession() as http,
        http.request(http_method, url, json=body, headers=headers) as response,
    ):
        answer = await response.json()
        assert response.status == 200, answer
        return cast(dict[str, Any], answer)
