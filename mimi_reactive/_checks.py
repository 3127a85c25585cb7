"""The checks the public values run on their arguments, as attrs validators.

A wrong type raises ``TypeError``, a wrong value ``ConfigurationError`` (a ``ValueError``);
each names the argument and never shows its value, which may be a secret.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

import attrs

from ._exceptions import ConfigurationError, InvalidRouteError
from ._reasons import Reason

__all__ = [
    "ANONYMOUS_ID_CHARACTERS",
    "ANONYMOUS_ID_MAX_LENGTH",
    "anonymous_id_problem",
    "check_seconds",
    "count",
    "flag",
    "instance_of",
    "is_blank_anonymous_id",
    "optional_text",
    "possible_anonymous_id",
    "seconds",
    "share",
    "text",
]

ANONYMOUS_ID_MAX_LENGTH = 2048
ANONYMOUS_ID_CHARACTERS = "A-Za-z0-9_.-"
# What every backend issues: the reference server takes 1 to 2048 of these (its _models.py
# builds its rule from these two), and it and the scripted backend issue
# secrets.token_urlsafe; Firebase issues none.
_ANONYMOUS_ID = re.compile(f"[{ANONYMOUS_ID_CHARACTERS}]+")


def text(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """The argument is a ``str``."""
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a str, not {type(value).__name__}")


def optional_text(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """The argument is a ``str`` or None."""
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a str or None, not {type(value).__name__}")


def flag(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """The argument is a ``bool`` (a truthy string such as ``"no"`` is refused)."""
    if not isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be True or False, not {type(value).__name__}")


def instance_of(kind: type) -> Callable[[object, attrs.Attribute[Any], object], None]:
    """A validator: the argument is a ``kind``."""

    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, kind):
            raise TypeError(
                f"{attribute.name} must be a {kind.__name__}, not {type(value).__name__}"
            )

    return check


def seconds(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """The argument is a duration: a finite number of seconds, 0 or more."""
    check_seconds(attribute.name, value)


def share(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """The argument is a share of a whole: a number from 0 up to, not including, 1."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{attribute.name} must be a number, not {type(value).__name__}")
    if not 0 <= value < 1:  # NaN fails both comparisons
        raise ConfigurationError(f"{attribute.name} must be from 0 up to, not including, 1")


def count(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """The argument is a whole number, 1 or more."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{attribute.name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ConfigurationError(f"{attribute.name} must be 1 or more, got {value}")


def check_seconds(name: str, value: object) -> None:
    """Refuse ``value`` unless it is a finite number of seconds, 0 or more."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ConfigurationError(f"{name} must be a finite number of seconds, 0 or more")


def is_blank_anonymous_id(anonymous_id: str | None) -> bool:
    """Whether an anonymous id is missing: None, empty or only whitespace."""
    return anonymous_id is None or not anonymous_id.strip()


def anonymous_id_problem(anonymous_id: str) -> Reason | None:
    """Why ``anonymous_id`` (not blank) cannot be one a service issued; None if it can be."""
    if anonymous_id != anonymous_id.strip():
        return Reason.ANONYMOUS_ID_SURROUNDED_BY_WHITESPACE
    if len(anonymous_id) > ANONYMOUS_ID_MAX_LENGTH:
        return Reason.ANONYMOUS_ID_TOO_LONG
    if _ANONYMOUS_ID.fullmatch(anonymous_id) is None:
        return Reason.ANONYMOUS_ID_MALFORMED
    return None


def possible_anonymous_id(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """The argument is None, blank (the guards skip it) or an id a service could have issued;
    a malformed one raises ``InvalidRouteError`` before any call could log anyone out."""
    optional_text(instance, attribute, value)
    if isinstance(value, str) and not is_blank_anonymous_id(value):
        problem = anonymous_id_problem(value)
        if problem is not None:
            raise InvalidRouteError(problem)


# The reference server's rules for emails and passwords: its request models (_server/_models.py)
# are built from these, and HttpBackend and ScriptedBackend apply them too.
EMAIL_MAX_LENGTH = 254
EMAIL_PATTERN = r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+"
"""An email's shape, without anchors: a dot-atom local part and a domain with a dot in it."""
MIN_PASSWORD_LENGTH = 8
"""The fewest characters of a new password (sign-up, promotion): shorter is ``weak_password``."""
PASSWORD_MAX_LENGTH = 1024
_EMAIL = re.compile(EMAIL_PATTERN)


def check_email(email: str) -> None:
    """Refuse an email the reference server would refuse, before it is sent, with
    ``InvalidRouteError`` (whose message never shows the email)."""
    if len(email) > EMAIL_MAX_LENGTH or _EMAIL.fullmatch(email) is None:
        raise InvalidRouteError(Reason.EMAIL_MALFORMED)


def client_credential(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """The argument is None (a service that needs no client credentials) or a str that is not
    blank: an empty one would fail only at the service, as a failed log-in."""
    optional_text(instance, attribute, value)
    if isinstance(value, str) and not value.strip():
        raise ConfigurationError(
            f"{attribute.name} is blank: pass the app's credentials, or None for a service "
            "that needs none"
        )


def basic_auth_id(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """A ``client_credential`` without ``:``, which HTTP Basic authentication (RFC 7617) takes for
    the end of the id, so the service would read another one (the reference server refuses
    it)."""
    client_credential(instance, attribute, value)
    if isinstance(value, str) and ":" in value:
        raise ConfigurationError(
            f"{attribute.name} must not hold ':' (HTTP Basic authentication ends the id there)"
        )


def check_service_url(name: str, value: object) -> None:
    """Refuse ``value`` unless it is a service's base URL: http:// or https:// with a host,
    without credentials, query or fragment; the message quotes it only when it cannot hold a
    password (no ``@`` in it)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port  # reading it refuses a port that is not a number up to 65535
    except ValueError:
        parts, port = None, None
    shown = "" if "@" in value else f", got {value!r}"
    if "@" in value.partition("://")[2].partition("/")[0]:
        raise ConfigurationError(f"{name} must not hold credentials")
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or port == 0
        or any(character.isspace() for character in value)
    ):
        raise ConfigurationError(f"{name} must be an http:// or https:// URL with a host{shown}")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{name} must not have a query or a fragment{shown}")
