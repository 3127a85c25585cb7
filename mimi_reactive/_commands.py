"""Commands the store runs besides the auth routes: renewing and syncing the session."""

from __future__ import annotations

import attrs

from ._routes import AuthRoute, LogOut

__all__ = ["Command", "RefreshSession", "SyncSession"]


@attrs.frozen
class RefreshSession:
    """Renew the session's tokens if they are due (or now, with ``force``)."""

    force: bool = False


@attrs.frozen
class SyncSession:
    """Read the shared storage and adopt the session another process stored there."""


Command = AuthRoute | LogOut | RefreshSession | SyncSession
