"""The user a session belongs to."""

from __future__ import annotations

import attrs

from ._checks import flag, optional_text, text
from ._redaction import mask, mask_email
from ._values import value_eq, value_hash, value_repr

__all__ = ["MimiUser"]


@attrs.frozen
class MimiUser:
    """A user as the identity service knows them.

    ``anonymous_id`` is a log-in credential: keep it like a password. The repr shows only
    its first characters, and masks the email. A wrong type (an ``is_anonymous`` of
    ``"false"`` copied from JSON as it came) raises ``TypeError``, naming the field only.
    """

    __repr__, __eq__, __hash__ = value_repr, value_eq, value_hash

    id: str = attrs.field(validator=text)
    anonymous_id: str | None = attrs.field(default=None, repr=mask, validator=optional_text)
    is_anonymous: bool = attrs.field(default=True, validator=flag)
    email: str | None = attrs.field(default=None, repr=mask_email, validator=optional_text)
