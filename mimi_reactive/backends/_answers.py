"""How every backend reads a service's answer: its ``Retry-After``."""

from __future__ import annotations

import datetime
import email.utils

__all__ = ["LONGEST_RETRY_AFTER", "retry_after"]

LONGEST_RETRY_AFTER = 24 * 3600.0
"""The longest wait a Retry-After is read as: no real limit asks more, and a longer one (a
broken proxy's date decades away, twenty digits) would only mislead the app reading it."""


def retry_after(header: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delay-seconds or an HTTP date (RFC 9110), at
    most ``LONGEST_RETRY_AFTER``; a date past is 0; None if absent or not either form."""
    if header is None:
        return None
    text = header.strip()
    if text.isascii() and text.isdigit():  # str.isdigit alone takes "²", which float refuses
        return min(float(text), LONGEST_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    seconds = (when - datetime.datetime.now(datetime.UTC)).total_seconds()
    return min(max(0.0, seconds), LONGEST_RETRY_AFTER)
