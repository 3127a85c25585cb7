"""How every backend reads a service's answer: a bounded JSON body, a ``Retry-After``."""

from __future__ import annotations

import datetime
import email.utils
import json
from typing import Any

import aiohttp

__all__ = ["LONGEST_ANSWER", "LONGEST_RETRY_AFTER", "json_body", "retry_after"]

LONGEST_ANSWER = 1 << 20
"""Bytes of an answer's body read at most. A real answer is a few kilobytes (tokens, a
user, an error); a longer one (a proxy's page, a hostile server) is not read on, so it
cannot fill memory or carry megabytes into an error."""

LONGEST_RETRY_AFTER = 24 * 3600.0
"""The longest wait a Retry-After is read as: no real limit asks more, and a longer one (a
broken proxy's date decades away, twenty digits) would only mislead the app reading it."""


async def json_body(response: aiohttp.ClientResponse) -> Any:
    """The answer's body as JSON; None if it is not JSON or longer than ``LONGEST_ANSWER``."""
    body = bytearray()
    async for chunk in response.content.iter_chunked(1 << 16):
        body += chunk
        if len(body) > LONGEST_ANSWER:
            return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # not JSON (or not UTF-8); nested past the stack
        return None


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
