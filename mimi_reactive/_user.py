"""The user a session belongs to."""

from __future__ import annotations

import attrs

from ._redaction import mask, mask_email, value_repr

__all__ = ["MimiUser"]


@attrs.frozen
class MimiUser:
    """A user as the identity service knows them.

    ``anonymous_id`` is a log-in credential: keep it like a password. The repr shows only
    its first characters, and masks the email.
    """

    __repr__ = value_repr

    id: str
    anonymous_id: str | None = attrs.field(default=None, repr=mask)
    is_anonymous: bool = True
    email: str | None = attrs.field(default=None, repr=mask_email)
