"""What a service takes as a user's credentials: an anonymous id, an email, a password.

The reference server's request models (_server/_models.py) are built from these rules, the
guards refuse by them what no service would take (before any call could log anyone out), and
ScriptedBackend applies them as the server does, so the three agree by construction.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from ._checks import has_surrounding_whitespace, optional_text
from ._exceptions import InvalidRouteError
from ._reasons import Reason

__all__ = [
    "ANONYMOUS_ID_CHARACTERS",
    "ANONYMOUS_ID_MAX_LENGTH",
    "EMAIL_LOCAL_PART_MAX_LENGTH",
    "EMAIL_MAX_LENGTH",
    "EMAIL_PATTERN",
    "MIN_PASSWORD_LENGTH",
    "PASSWORD_MAX_LENGTH",
    "anonymous_id_problem",
    "check_email",
    "credentials_problem",
    "is_blank_anonymous_id",
    "possible_anonymous_id",
]

ANONYMOUS_ID_MAX_LENGTH = 2048
ANONYMOUS_ID_CHARACTERS = "A-Za-z0-9_.-"
# What every backend issues: the reference server takes 1 to 2048 of these (its _models.py
# builds its rule from these two), and it and the scripted backend issue
# secrets.token_urlsafe; Firebase issues none.
_ANONYMOUS_ID = re.compile(f"[{ANONYMOUS_ID_CHARACTERS}]+")


def is_blank_anonymous_id(anonymous_id: str | None) -> bool:
    """Whether an anonymous id is missing: None, empty or only whitespace."""
    return anonymous_id is None or not anonymous_id.strip()


def anonymous_id_problem(anonymous_id: str) -> Reason | None:
    """Why ``anonymous_id`` (not blank) cannot be one a service issued; None if it can be."""
    if has_surrounding_whitespace(anonymous_id):
        return Reason.ANONYMOUS_ID_SURROUNDED_BY_WHITESPACE
    if len(anonymous_id) > ANONYMOUS_ID_MAX_LENGTH:
        return Reason.ANONYMOUS_ID_TOO_LONG
    if _ANONYMOUS_ID.fullmatch(anonymous_id) is None:
        return Reason.ANONYMOUS_ID_MALFORMED
    return None


def possible_anonymous_id(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """The argument is None, blank (the guards skip it) or an id a service could have issued;
    a malformed one raises ``InvalidRouteError`` before any call could log anyone out."""
    if (
        type(value) is str
        and len(value) <= ANONYMOUS_ID_MAX_LENGTH
        and _ANONYMOUS_ID.fullmatch(value) is not None
    ):
        return  # the usual, in one match: a well-formed id has no white space and is not blank
    optional_text(instance, attribute, value)
    if isinstance(value, str) and not is_blank_anonymous_id(value):
        problem = anonymous_id_problem(value)
        if problem is not None:
            raise InvalidRouteError(problem)


# The reference server's rules for emails and passwords: its request models (_server/_models.py)
# are built from these, the guards refuse credentials no service takes by them
# (credentials_problem), and ScriptedBackend applies them as the server does.
EMAIL_MAX_LENGTH = 254
EMAIL_LOCAL_PART_MAX_LENGTH = 64  # RFC 5321, in octets: the pattern's local part is ASCII
EMAIL_PATTERN = (
    rf"[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]{{1,{EMAIL_LOCAL_PART_MAX_LENGTH}}}"
    r"@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+"
)
"""An email's shape, without anchors: a dot-atom local part of 64 characters at most and a
domain with a dot in it (the server's models and the guards share it, so agree)."""
MIN_PASSWORD_LENGTH = 8
"""The fewest characters of a new password (sign-up, promotion): shorter is ``weak_password``."""
PASSWORD_MAX_LENGTH = 1024
_EMAIL = re.compile(EMAIL_PATTERN)


def credentials_problem(email: str, password: str) -> Reason | None:
    """Why no service would take ``email`` and ``password`` (None if one may): an email the
    reference server refuses (whitespace around it, no dot in its domain, a local part over
    64 characters, over 254 in all), or an empty password."""
    if not _is_email(email):
        return Reason.EMAIL_MALFORMED
    if not password:
        return Reason.PASSWORD_EMPTY
    return None


def check_email(email: str) -> None:
    """Refuse an email the reference server would refuse with ``InvalidRouteError`` (whose
    message never shows the email)."""
    if not _is_email(email):
        raise InvalidRouteError(Reason.EMAIL_MALFORMED)


def _is_email(email: str) -> bool:
    return len(email) <= EMAIL_MAX_LENGTH and _EMAIL.fullmatch(email) is not None
