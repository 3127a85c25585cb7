"""The sealed result of logging in an anonymous user: ``Success | Failure | Skipped``."""

from __future__ import annotations

import attrs

from ._exceptions import MimiCoreError, SessionStorageError
from ._messages import Skipped
from ._redaction import mask
from ._values import value_eq, value_hash, value_repr

__all__ = ["AnonymousLogInResult", "Failure", "Skipped", "Success"]


@attrs.frozen
class Success:
    """The anonymous id is logged in (just now, or it already was).

    ``storage_error`` is set when the storage could not keep the session: the user is logged
    in all the same (the state is ``degraded``, and the session is saved once a renewal can
    be kept), but a restart now would not restore it.
    """

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    anonymous_id: str = attrs.field(repr=mask)
    storage_error: SessionStorageError | None = None


@attrs.frozen
class Failure:
    """Logging in failed or was refused; ``error`` says why."""

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    error: MimiCoreError


AnonymousLogInResult = Success | Failure | Skipped
"""What ``AnonymousAuthManager.authenticate_anonymous_user`` returns, never raising: ``Success``
(the id is logged in), ``Failure`` (refused or failed, with the error) or ``Skipped`` (a blank
id: nothing to log in with, no call made). Match on it with ``case Success(anonymous_id=...)``,
``case Skipped()`` and ``case Failure(error=...)``, as the README's first example does.
"""
