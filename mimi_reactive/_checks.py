"""The checks the public values run on their arguments, as attrs validators.

A wrong type raises ``TypeError``, a wrong setting ``ConfigurationError`` (a ``ValueError``)
and a wrong value of a session (a user, tokens, what a backend builds from a service's
answer) a plain ``ValueError``, which the core reports as the backend's bug, not the app's
configuration. Each names the argument and never shows a value that may be a secret (a URL
only without its user, password, query and fragment).
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any, TypeGuard

import attrs

from ._exceptions import ConfigurationError
from ._redaction import bounded_repr, shown_url

__all__ = [
    "LATEST_INSTANT",
    "LONGEST_LIFETIME",
    "canonical_url",
    "check_host_and_port",
    "check_seconds",
    "check_service_url",
    "check_timeout",
    "check_trimmed",
    "core_of_the_other_kind",
    "count",
    "flag",
    "has_surrounding_whitespace",
    "host_and_port_problem",
    "instance_of",
    "instant",
    "is_count",
    "is_number",
    "is_seconds",
    "is_whole",
    "lifetime",
    "optional_text",
    "seconds",
    "service_url_problem",
    "share",
    "text",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}


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


# The shortest floor between the keeper's background refreshes. 0 (or a hair above it) lets
# a service handing out zero-length lifetimes make the keeper refresh in a tight loop
# (thousands a second, each a call to the service and a save); 10 ms caps that at 100 a
# second while still letting a test renew at once.
SHORTEST_REFRESH_INTERVAL = 0.01


def refresh_interval(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """The argument is the keeper's floor between refreshes: a finite number of seconds,
    ``SHORTEST_REFRESH_INTERVAL`` or more."""
    check_seconds(attribute.name, value)
    if is_number(value) and value < SHORTEST_REFRESH_INTERVAL:  # a number: checked above
        raise ConfigurationError(
            f"{attribute.name} must be {SHORTEST_REFRESH_INTERVAL:g} seconds or more "
            "(0 would let the keeper refresh in a tight loop)"
        )


def share(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """The argument is a share of a whole: a number from 0 up to, not including, 1."""
    if not is_number(value):
        raise TypeError(f"{attribute.name} must be a number, not {type(value).__name__}")
    if not 0 <= value < 1:  # NaN fails both comparisons
        raise ConfigurationError(f"{attribute.name} must be from 0 up to, not including, 1")


def count(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """The argument is a whole number, 1 or more."""
    if not is_whole(value):
        raise TypeError(f"{attribute.name} must be an int, not {type(value).__name__}")
    if not is_count(value):
        raise ConfigurationError(f"{attribute.name} must be 1 or more, got {value}")


# Bounds no real session reaches: a token lifetime over a century, a time after the year 5000.
# The values refuse beyond them, so a stored session never holds what a load would refuse.
LONGEST_LIFETIME = 100 * 365.25 * 24 * 3600
LATEST_INSTANT = 95_617_584_000.0


def lifetime(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """The argument is None (never expires) or a token's lifetime: a number of seconds from
    0 to a century (``ValueError`` beyond: no service issues such tokens)."""
    if value is None:
        return
    if not is_number(value):
        raise TypeError(
            f"{attribute.name} must be a number of seconds or None, not {type(value).__name__}"
        )
    if not 0 <= value <= LONGEST_LIFETIME:  # NaN fails both; no float() of a huge int
        raise ValueError(f"{attribute.name} must be from 0 seconds to a century")


def instant(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """The argument is a time on the local clock, in seconds since the epoch, from 0 up to
    the year 5000 (``ValueError`` beyond: no clock reads that)."""
    if not is_number(value):
        raise TypeError(f"{attribute.name} must be a number of seconds, not {type(value).__name__}")
    if not 0 <= value <= LATEST_INSTANT:
        raise ValueError(f"{attribute.name} must be a time from 0 up to the year 5000")


def check_clock(clock: Callable[[], object]) -> None:
    """Read ``clock`` once and refuse it (``ConfigurationError``, naming the clock) unless it
    gives a time as ``instant`` takes one."""
    checked_clock(clock)()


def checked_clock(clock: Callable[[], object]) -> Callable[[], float]:
    """``clock``, each reading checked as ``check_clock`` checks the first: one that goes
    wrong after the start (raises, gives NaN) raises ``ConfigurationError`` naming the clock,
    never an error blamed on the backend or a time stamped on a session."""

    def now() -> float:
        try:
            value = clock()
        except Exception as error:
            raise ConfigurationError(f"the clock raised {type(error).__name__}") from error
        if type(value) is float and 0.0 <= value <= LATEST_INSTANT:  # inline: every command
            return value
        if not is_number(value) or not 0 <= value <= LATEST_INSTANT:
            shown = type(value).__name__ if not is_number(value) else repr(value)
            raise ConfigurationError(
                f"the clock must give seconds since the epoch, like time.time(); it gave {shown}"
            )
        return value  # an int (or another real) in bounds

    return now


def check_seconds(name: str, value: object) -> None:
    """Refuse ``value`` unless it is a finite number of seconds, 0 or more."""
    if not is_number(value):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not is_seconds(value):
        raise ConfigurationError(f"{name} must be a finite number of seconds, 0 or more")


def check_timeout(name: str, value: object) -> None:
    """Refuse ``value`` unless it is a finite number of seconds above 0: aiohttp reads a
    timeout of 0 as no timeout at all, so a service that never answers would hang the call."""
    check_seconds(name, value)
    if value == 0:
        raise ConfigurationError(f"{name} must be above 0 seconds (0 would mean no timeout)")


# The rules themselves, as predicates: the validators above and the reference server's
# settings (_server/_settings.py, which raise ValueError in the server's words) share them.


def is_number(value: object) -> TypeGuard[int | float]:
    """An int or a float; a bool is no number of anything here."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_whole(value: object) -> TypeGuard[int]:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_seconds(value: object) -> bool:
    """A duration: a finite number of seconds, 0 or more."""
    return is_number(value) and math.isfinite(value) and value >= 0


def check_trimmed(name: str, value: str) -> None:
    """Refuse an id or key with whitespace around it, which a service would take as part of
    it (a newline read with it from a file, a space pasted with it)."""
    if has_surrounding_whitespace(value):
        raise ConfigurationError(
            f"{name} has whitespace around it (a newline read with it from a file?)"
        )


def has_surrounding_whitespace(text: str) -> bool:
    """Whether ``text`` has whitespace before or after it: a newline read with it from a
    file, a space pasted with it. No service issues an id or key like that."""
    return text != text.strip()


def is_count(value: object) -> bool:
    """A whole number, 1 or more."""
    return is_whole(value) and value >= 1


def _address(text: str) -> urllib.parse.SplitResult | None:
    """``text`` split as a URL, or None if it cannot be one: white space in it, a port
    that is not a number from 1 to 65535 (``urlsplit`` refuses above that; 0 reaches
    nothing), a user or password, or no host."""
    if any(character.isspace() for character in text):
        return None
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port  # reading it refuses a port that is not a number in range
    except ValueError:
        return None
    if "@" in parts.netloc or not parts.hostname or port == 0:
        return None
    return parts


def service_url_problem(text: str) -> str | None:
    """Why ``text`` is not a service's base URL (None if it is): an http:// or https:// URL
    with a host, and neither credentials, a query nor a fragment (a path appended to it would
    land in them). What it says never quotes the text, which may hold a password."""
    parts = _address(text)
    if parts is None and "@" in text.partition("://")[2].partition("/")[0]:
        return "must not hold credentials"
    if parts is None or parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL with a host"
    if parts.query or parts.fragment:
        return "must not have a query or a fragment"
    return None


def canonical_url(text: str) -> str:
    """``text``, a service's base URL (``service_url_problem`` None), spelt one way: scheme
    and host lower-case, no default port (80 for http, 443 for https), no final slash, so
    one service is one origin however the app wrote its URL. The host is not resolved:
    ``127.0.0.1`` and ``localhost`` stay two."""
    parts = urllib.parse.urlsplit(text)
    host = parts.hostname or ""  # lower-case, an IPv6 address without its brackets
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS[parts.scheme] else f"{host}:{port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def host_and_port_problem(text: str) -> str | None:
    """Why ``text`` is not ``host:port`` (``[::1]:9099`` for IPv6) and nothing else (None if
    it is): a missing port would send requests to port 80."""
    parts = _address(f"//{text}")
    if parts is None or parts.port is None or parts.path or parts.query or parts.fragment:
        return "must be host:port"
    return None


def check_service_url(name: str, value: object) -> None:
    """Refuse ``value`` unless it is a service's base URL (``service_url_problem``); the
    message shows no user, password, query or fragment of it (see ``_shown``)."""
    _check_text(name, value, service_url_problem)


def check_host_and_port(name: str, value: object) -> None:
    """Refuse ``value`` unless it is ``host:port`` (``host_and_port_problem``)."""
    _check_text(name, value, host_and_port_problem)


def _check_text(name: str, value: object, problem_of: Callable[[str], str | None]) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    problem = problem_of(value)
    if problem is not None:
        raise ConfigurationError(f"{name} {problem}{_shown(value)}")


def _shown(text: str) -> str:
    """``, got ...`` for a message: ``text`` through ``shown_url`` (no password, query or
    fragment, any of which may hold a secret, as may a user name: with an ``@``, nothing)."""
    if "@" in text:
        return ""
    # shown_url needs a scheme to find the host; one is lent to text that has none.
    lent = "" if "://" in text else "-://"
    return f", got {bounded_repr(shown_url(lent + text, 'service').removeprefix(lent))}"


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
    it), and without whitespace around it, which the service would take as part of the id."""
    client_credential(instance, attribute, value)
    if isinstance(value, str) and ":" in value:
        raise ConfigurationError(
            f"{attribute.name} must not hold ':' (HTTP Basic authentication ends the id there)"
        )
    if isinstance(value, str):
        check_trimmed(attribute.name, value)


def str_set(name: str, value: object, example: str) -> frozenset[str]:
    """``value``, a collection of str, as a frozenset; ``TypeError`` (``example`` shows one) for
    a bare str, whose ``in`` would test substrings, and for anything else not a collection of
    str."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(
            f"{name} must be a collection of str, such as {example}, not {type(value).__name__}"
        )
    chosen = frozenset(value)
    if not all(isinstance(item, str) for item in chosen):
        raise TypeError(f"{name} must hold str values")
    return chosen


def core_of_the_other_kind(core: object, expected: type, other: type, counterpart: str) -> str:
    """Why a class that takes an ``expected`` core refuses ``core``; given the ``other`` kind
    (a ``BlockingMimiCore`` for a ``MimiCore``, or back), it names ``counterpart``, the class
    that takes that kind."""
    message = f"core must be a {expected.__name__}, not {type(core).__name__}"
    if isinstance(core, other):
        message += f": for a {other.__name__}, use {counterpart}"
    return message
