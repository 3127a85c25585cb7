"""How values are shown in reprs: every field through its ``repr`` option, secrets never whole."""

from __future__ import annotations

import re

__all__ = [
    "LONGEST_LINE",
    "bounded_repr",
    "mask",
    "mask_email",
    "one_line",
    "shown_url",
]

_VISIBLE = 4
_QUOTED = 80  # characters of a value a message quotes at most


def mask(secret: str | None) -> str:
    """Show a secret's first few characters only, enough to tell two apart in a debugger."""
    if secret is None:
        return "None"
    if len(secret) <= _VISIBLE * 2:
        return "'***'"
    return f"'{secret[:_VISIBLE]}***'"


def bounded_repr(text: str) -> str:
    """``text``'s repr as a message quotes what it was given: its first 80 characters, and
    how long it was if longer, so a huge value never makes a huge message."""
    if len(text) <= _QUOTED:
        return repr(text)
    return f"{text[:_QUOTED]!r}... ({len(text)} characters)"


def mask_email(email: str | None) -> str:
    """Show an email's domain and first letter: it says who the user is."""
    if email is None:
        return "None"
    local, _, domain = email.partition("@")
    return f"'{local[:1]}***@{domain}'"


LONGEST_LINE = 200
"""Characters of another's text (a service's error message) a message shows at most."""

# Control characters (Unicode's Cc), line and paragraph separators, and white space.
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\s]+")


def one_line(text: str, longest: int = LONGEST_LINE) -> str:
    """Text from elsewhere (a service's error code or message) as a message of the library
    may show it: on one line, each run of control characters, line or paragraph separators
    and white space (a newline, a CR, a NUL, the escape that starts a terminal sequence) one
    space, and cut to ``longest`` characters, the last of them ``…``."""
    line = _BREAKS.sub(" ", text).strip()
    return line if len(line) <= longest else line[: longest - 1] + "…"


def shown_url(url: str, kind: str) -> str:
    """A storage or database URL as logs and messages may show it: its scheme, user, hosts and
    path; no password and no query (either can hold one), and ``a KIND URL that cannot be
    parsed`` for text with no ``scheme://``. Several hosts (Sentinel, PostgreSQL fail-over)
    and bracketed IPv6 addresses are kept as written.

    Where ``/``, ``?`` or ``#`` come before the last ``@``, that ``@`` is in a password
    (where URL parsers would end it early, and show the rest) or in a query: either way what
    follows it may be secret, and only the scheme is shown."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return f"a {kind} URL that cannot be parsed"
    user_info, at, location = rest.rpartition("@")
    if any(mark in user_info for mark in "/?#"):
        return f"{scheme}://..."
    user = user_info.partition(":")[0]
    hosts_and_path = location.partition("?")[0].partition("#")[0]
    return f"{scheme}://{user}{at if user else ''}{hosts_and_path}"
