"""Small test helpers that wrap real things; nothing here fakes the server."""

from __future__ import annotations

from collections import Counter

from mimi_reactive import (
    AuthBackend,
    BackendCapabilities,
    BackendSession,
    ClientCredentials,
    SessionState,
)
from mimi_reactive._state import Transition


class CountingBackend:
    """Delegates every call to a real backend and counts them by method name."""

    def __init__(self, inner: AuthBackend) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.sessions: list[BackendSession] = []
        """Every session the service returned, tokens included, for tests to look for."""

    @property
    def capabilities(self) -> BackendCapabilities:
        return self.inner.capabilities

    @property
    def total(self) -> int:
        """Calls that reach the identity service (open and close do not)."""
        return sum(self.calls.values())

    async def open(self, client: ClientCredentials) -> None:
        await self.inner.open(client)

    async def close(self) -> None:
        await self.inner.close()

    async def sign_up_anonymously(self) -> BackendSession:
        self.calls["sign_up_anonymously"] += 1
        return self._keep(await self.inner.sign_up_anonymously())

    async def log_in_anonymously(self, anonymous_id: str) -> BackendSession:
        self.calls["log_in_anonymously"] += 1
        return self._keep(await self.inner.log_in_anonymously(anonymous_id))

    async def log_in(self, email: str, password: str) -> BackendSession:
        self.calls["log_in"] += 1
        return self._keep(await self.inner.log_in(email, password))

    async def sign_up(self, email: str, password: str) -> BackendSession:
        self.calls["sign_up"] += 1
        return self._keep(await self.inner.sign_up(email, password))

    async def promote(self, session: BackendSession, email: str, password: str) -> BackendSession:
        self.calls["promote"] += 1
        return self._keep(await self.inner.promote(session, email, password))

    async def refresh(self, session: BackendSession) -> BackendSession:
        self.calls["refresh"] += 1
        return self._keep(await self.inner.refresh(session))

    def _keep(self, session: BackendSession) -> BackendSession:
        self.sessions.append(session)
        return session

    async def log_out(self, session: BackendSession) -> None:
        self.calls["log_out"] += 1
        await self.inner.log_out(session)


def transitions(states: list[SessionState]) -> list[Transition]:
    return [state.transition for state in states]
