"""``FailingStorage``: a session storage whose writes fail on demand, for tests."""

from __future__ import annotations

import errno

from ._session import Session
from ._storage import MemorySessionStorage

__all__ = ["FailingStorage"]


class FailingStorage(MemorySessionStorage):
    """A ``MemorySessionStorage`` whose saves and clears fail while ``failing`` is true, as a
    full disk's (``save`` raises ``OSError`` ``ENOSPC``) or a read-only one's (``clear``:
    ``EROFS``); loads never fail.

    The core takes these as it would a real disk's failures (docs/sessions.md, "When the
    storage fails"): the command and the published state carry a ``SessionStorageError``,
    and a user signed in meanwhile stays logged in with ``degraded=True`` until the session
    is kept once ``failing`` is false again (``RECOVERED``).
    """

    def __init__(self, *, failing: bool = False) -> None:
        super().__init__()
        self.failing = failing
        """Whether saves and clears fail now; set it at any time."""

    async def save(self, session: Session) -> None:
        """Keep ``session``, or raise ``OSError`` (``ENOSPC``) while ``failing``."""
        if self.failing:
            raise OSError(errno.ENOSPC, "No space left on device")
        await super().save(session)

    async def clear(self) -> None:
        """Forget the session, or raise ``OSError`` (``EROFS``) while ``failing``."""
        if self.failing:
            raise OSError(errno.EROFS, "Read-only file system")
        await super().clear()

    def __repr__(self) -> str:
        return f"FailingStorage(failing={self.failing})"
