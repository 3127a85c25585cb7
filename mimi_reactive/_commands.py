"""Commands the store runs besides the auth routes: renewing and syncing the session."""

from __future__ import annotations

import attrs

from ._routes import AuthRoute, LogOut
from ._storage import StoredSession

__all__ = ["Command", "RefreshSession", "SyncSession"]


@attrs.frozen
class RefreshSession:
    """Renew the session's tokens if they are due (or now, with ``force``)."""

    force: bool = False


@attrs.frozen
class SyncSession:
    """Adopt the session another process stored (None: it logged out)."""

    stored: StoredSession | None


Command = AuthRoute | LogOut | RefreshSession | SyncSession
