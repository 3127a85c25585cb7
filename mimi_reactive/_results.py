"""The sealed result of logging in an anonymous user: ``Success | Failure | Skipped``."""

from __future__ import annotations

import attrs

from ._redaction import mask

__all__ = ["AnonymousLoginResult", "Failure", "Skipped", "Success"]


@attrs.frozen
class Success:
    """The anonymous id is logged in (just now, or it already was)."""

    anonymous_id: str = attrs.field(repr=mask)


@attrs.frozen
class Failure:
    """Logging in failed or was refused; ``exception`` says why (a ``MimiCoreError``)."""

    exception: Exception


@attrs.frozen
class Skipped:
    """Nothing was done: there was no anonymous id to log in."""


AnonymousLoginResult = Success | Failure | Skipped
