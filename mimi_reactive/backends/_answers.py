"""How every HTTP backend talks to its service: ``post_json`` posts a call and reads the
``Answer`` (a bounded JSON body, a ``Retry-After``); the backend maps an error answer to its
own errors."""

from __future__ import annotations

import datetime
import email.utils
import json
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from .._exceptions import BackendError, ConfigurationError, TransportError

__all__ = [
    "LONGEST_ANSWER",
    "LONGEST_RETRY_AFTER",
    "Answer",
    "json_body",
    "post_json",
    "retry_after",
]

LONGEST_ANSWER = 1 << 20
"""Bytes of an answer's body read at most. A real answer is a few kilobytes (tokens, a
user, an error); a longer one (a proxy's page, a hostile server) is not read on, so it
cannot fill memory or carry megabytes into an error."""

LONGEST_RETRY_AFTER = 24 * 3600.0
"""The longest wait a Retry-After is read as: no real limit asks more, and a longer one (a
broken proxy's date decades away, twenty digits) would only mislead the app reading it."""


async def json_body(response: aiohttp.ClientResponse) -> Any:
    """The answer's body as JSON; None if it is not JSON or longer than ``LONGEST_ANSWER``."""
    # Read chunk by chunk to the end; an answer that came whole (the usual) takes one read,
    # without aiohttp's chunk iterator (two reads through its wrappers: about 15k of a call's
    # 500k instructions over loopback).
    content = response.content
    body: bytes | bytearray = await content.read(_CHUNK)
    if not content.at_eof():
        body = bytearray(body)
        while not content.at_eof():
            body += await content.read(_CHUNK)
            if len(body) > LONGEST_ANSWER:
                return None
    try:
        if body[:1] == b"{" and body[1:2] != b"\x00":
            # UTF-8, as json.loads would find it (no BOM, not UTF-16 or 32): decoded here as it
            # would, without its look at the first bytes (5k instructions of an answer's 30k).
            return json.loads(body.decode("utf-8", "surrogatepass"))
        return json.loads(body)
    except (ValueError, RecursionError):  # not JSON (or not UTF-8); nested past the stack
        return None


_CHUNK = 1 << 16
"""Bytes read at most at a time (aiohttp buffers twice that before it stops reading)."""


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


class Answer:
    """A service's answer to a call: its HTTP ``status``, its ``body`` as JSON (None if it is
    not JSON or longer than ``LONGEST_ANSWER``) and the seconds its ``Retry-After`` asks for.

    A plain class: one is made for every call and read once (as a frozen attrs class it cost
    5k instructions to make)."""

    __slots__ = ("body", "retry_after", "status")

    def __init__(self, status: int, body: Any, retry_after: float | None) -> None:
        self.status = status
        self.body = body
        self.retry_after = retry_after

    def json_object(self) -> dict[str, Any]:
        """The body of a success answer; ``BackendError("invalid_response")`` if it is not a
        JSON object."""
        if not isinstance(self.body, dict):
            raise BackendError(
                "invalid_response", "the answer is not a JSON object", status=self.status
            )
        return self.body


async def post_json(
    http: aiohttp.ClientSession | None,
    url: str,
    *,
    service: str,
    json: dict[str, Any] | None = None,
    data: dict[str, str] | None = None,
) -> Answer:
    """POST ``json`` (or the form ``data``) to ``url`` over ``http`` (None: the backend is not
    open, a ``ConfigurationError``) and read the answer, whatever its status. No answer in the
    session's timeout, or none at all, is a ``TransportError`` naming ``service`` (the aiohttp
    error chained, without the request's headers), so ``service`` must hold no secret.

    A redirect is never followed: it would post the body (an anonymous id, a refresh token, a
    password) to wherever the ``Location`` points, a host the app never configured. Any 3xx is
    a ``BackendError`` ``http_{status}``, as another unexpected status with no code, naming
    the status only (a ``Location`` or its query may hold anything)."""
    if http is None:
        raise ConfigurationError(
            f"the backend for {service} is not open: MimiCore.start opens it, and closes it "
            "when the core stops"
        )
    try:
        async with http.post(url, json=json, data=data, allow_redirects=False) as response:
            status = response.status
            if 300 <= status < 400:
                raise BackendError(
                    f"http_{status}",
                    f"{service} answered with a redirect ({status}), which is not followed",
                    status=status,
                )
            wait_header = response.headers.get("Retry-After")
            body = await json_body(response)
    except TimeoutError as error:
        raise TransportError(f"{service} did not answer in time") from error
    except aiohttp.ClientResponseError as error:  # an answer that is not HTTP (a status line)
        kind, cause = type(error).__name__, _without_request_headers(error)
    except aiohttp.ClientError as error:
        raise TransportError(f"could not reach {service} ({type(error).__name__})") from error
    else:
        return Answer(status, body, None if wait_header is None else retry_after(wait_header))
    # Raised out of the except clause: aiohttp's error is not kept as its context either.
    raise TransportError(f"could not reach {service} ({kind})") from cause


def _without_request_headers(error: aiohttp.ClientResponseError) -> aiohttp.ClientResponseError:
    """``error`` without the request's headers, which hold the app's credentials (the API
    key, the client's Basic credentials) and which its repr and ``args`` show: what is
    chained to a ``TransportError`` keeps the URL, the status and aiohttp's message only."""
    request = error.request_info._replace(headers=CIMultiDictProxy(CIMultiDict()))
    return aiohttp.ClientResponseError(
        request, (), status=error.status, message=error.message, headers=error.headers
    )
