"""Abuse limits per client IP: fixed-window counters in a ``limits`` storage.

An IPv6 client counts by its /64 network, the least one host or home is given (so it cannot
take a fresh budget from each of its 2^64 addresses) (``_limit_key``); ``client_ip`` has
already made an IPv4-mapped IPv6 address the IPv4 address it is.

The storage is chosen by URL (``memory://`` for one process; ``redis://...`` lets several
workers share counts), and windows are numbered by the server's own clock, so tests move time
instead of sleeping and every worker agrees on where a window ends. A storage URL can carry a
password, so it is only ever shown through ``describe_storage``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import math
import re
import urllib.parse
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from coredis.exceptions import (
    AskError,
    AuthenticationError,
    AuthenticationRequiredError,
    AuthorizationError,
    ClusterDownError,
    MovedError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
    UnknownCommandError,
    WrongTypeError,
)
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.errors import ConfigurationError, StorageError
from limits.storage import storage_from_string

from .._redaction import shown_url
from ._settings import RateLimit, ServerSettings

__all__ = [
    "Charge",
    "RateLimit",
    "RateLimitStorageError",
    "RateLimiter",
    "close_storage",
    "describe_storage",
    "limiter_storage",
    "limits_on",
]

_CHECK_TIMEOUT = 10.0
"""Seconds the storage has to answer at start: a host that drops packets would hang it."""
READ_TIMEOUT = 5.0
"""Seconds the storage has for one count while serving, unless told (``storage_timeout``):
a Redis that stops answering (a partition) would hang every limited request."""


MODULE_LIST_FILTER = (r"Unable to determine module support", UserWarning, r"coredis\.")
"""The warning coredis gives as it connects to a database Redis does not have (its message's
start, category and module): ``check``'s refusal says so in one line."""


def _quiet_module_list_warning() -> None:
    """Ignore ``MODULE_LIST_FILTER``'s warning, and only it, process-wide: one filter,
    installed where it is missing (``warnings.catch_warnings`` cannot scope a filter to an
    ``await``: it swaps the process-wide list, and overlapping uses leave theirs for good)."""
    message, category, module = MODULE_LIST_FILTER
    installed = ("ignore", re.compile(message, re.I), category, re.compile(module), 0)
    if installed not in warnings.filters:
        warnings.filterwarnings("ignore", message, category, module)


# Redis's error codes (an error reply's first word) by the class coredis raises for them,
# having taken the code off the reply; "ERR" is taken off too, but raised as a plain
# ResponseError only for the few errors it has no class of its own for.
_CODES: dict[type[ResponseError], str] = {
    AskError: "ASK",
    AuthorizationError: "NOPERM",
    ClusterDownError: "CLUSTERDOWN",
    MovedError: "MOVED",
    ReadOnlyError: "READONLY",
    TryAgainError: "TRYAGAIN",
    UnknownCommandError: "ERR",
    WrongTypeError: "WRONGTYPE",
}
# Redis's error codes coredis leaves at the start of a plain ResponseError's words.
_KEPT_CODES = frozenset({"BUSY", "MASTERDOWN", "MISCONF", "NOREPLICAS", "OOM", "UNKILLABLE"})


def _error_code(error: ResponseError) -> str | None:
    """The Redis error code of ``error``, if it is one Redis gives (never other words of its
    message: those can quote the URL's values)."""
    code = _CODES.get(type(error))
    if code is None:
        first = str(error).partition(" ")[0]
        code = first if first in _KEPT_CODES else None
    return code


def _refusal(error: Exception) -> str:
    """What the start check says of a storage whose client raised ``error`` (the limits
    library's ``StorageError`` holds it): which of the URL's values Redis refused where it
    answered, or the error code of another refusal, never the values themselves nor Redis's
    words; else that it does not answer."""
    if isinstance(error, AuthenticationRequiredError):
        return (
            "needs a user and password: give them in its URL (redis://USER:PASSWORD@HOST:PORT/DB)"
        )
    if isinstance(error, AuthenticationError):
        return "refused the user and password of its URL (not shown)"
    if isinstance(error, ResponseError):
        if "DB index is out of range" in str(error):
            return (
                "has no database of its URL's number (Redis has 16 by default, numbered 0"
                " to 15: see its databases setting)"
            )
        # Only Redis's error code: its words can quote the URL's values (an ACL refusal
        # names the user; a proxy between may echo a command's arguments).
        code = _error_code(error)
        said = f"Redis error {code}" if code is not None else "a Redis error"
        return f"refused the start check with {said} (its message not shown)"
    return "does not answer"


class RateLimitStorageError(Exception):
    """The rate-limit storage failed while serving (Redis gone, say), or did not answer in
    time (``timed_out``); names it, no password."""

    def __init__(self, storage: str, *, timed_out: bool = False) -> None:
        super().__init__(f"the rate-limit storage {storage} failed")
        self.storage = storage
        self.timed_out = timed_out


def limits_on(settings: ServerSettings) -> bool:
    """Whether any rate limit counts (0 turns one off): only then is the storage used."""
    return any(
        limit.count > 0
        for limit in (
            settings.anonymous_sign_up_limit,
            settings.credential_sign_up_limit,
            settings.failure_limit,
        )
    )


def _limit_key(ip: str) -> str:
    """What the limits count ``ip`` (a client address from ``client_ip``, IPv4-mapped ones
    already IPv4) under: an IPv6 address's /64 network, an IPv4 address itself, and anything
    that is no address (``unknown``: no peer) as it is."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv4Address):
        return ip
    return str(ipaddress.ip_network(f"{address}/64", strict=False))


def describe_storage(url: str) -> str:
    """The storage URL as it may be shown: ``shown_url``'s scheme, user, hosts and path."""
    return shown_url(url, "rate-limit storage")


# A URL's scheme (RFC 3986).
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def limiter_storage(url: str) -> Storage:
    """The async ``limits`` storage a URL names (``memory://``, ``redis://host:port``, ...).

    ``?key_prefix=NAME`` keeps one deployment's counters apart from another's in a shared
    Redis (``limits`` takes it as an option, not from the URL).
    """
    full = url if url.startswith("async+") else f"async+{url}"
    try:
        parts = urllib.parse.urlsplit(full)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        options = {name: value for name, value in query if name == "key_prefix"}
        kept = [(name, value) for name, value in query if name != "key_prefix"]
        full = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(kept)))
        # Wrapped, the storage's own errors (a lost Redis) are one type: StorageError.
        storage = storage_from_string(full, wrap_exceptions=True, **options)
    except (ConfigurationError, ValueError) as error:
        # Our own words: the limits library's message repeats the URL, password and all.
        scheme = full.partition(":")[0].removeprefix("async+")  # a URL's scheme ends at a colon
        why = (
            # Named only if it reads as a scheme: a URL typed without its colon would show
            # all of itself, a password in its query included.
            f"unknown scheme {scheme!r}"
            if str(error).startswith("unknown storage scheme") and _SCHEME.fullmatch(scheme)
            else "its scheme, hosts, port or options cannot be read"
        )
        shown = describe_storage(url)
        raise ValueError(f"unusable rate-limit storage URL {shown}: {why}") from None
    if not isinstance(storage, Storage):
        raise ValueError("the rate-limit storage must have an async implementation")
    return storage


async def close_storage(storage: Storage) -> None:
    """Release what ``storage`` holds open; idempotent, and never touches the network."""
    if isinstance(storage, MemoryStorage):
        timer = storage.timer
        if timer is not None and not timer.done():
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
    elif isinstance(storage, RedisStorage):
        # The bridge holds the client (coredis by default, or redis-py / valkey), and for a
        # Sentinel setup a second client for the replicas.
        clients = {id(c): c for c in _attributes(storage.bridge, "storage", "storage_replica")}
        for client in clients.values():
            await _close_redis_client(client)


def _attributes(owner: object, *names: str) -> list[Any]:
    return [value for name in names if (value := getattr(owner, name, None)) is not None]


async def _close_redis_client(client: Any) -> None:
    if callable(getattr(client, "aclose", None)):  # redis-py 5+, valkey
        await client.aclose()
        return
    pool = getattr(client, "connection_pool", None)  # coredis: disconnect() closes every socket
    if pool is not None:
        done = pool.disconnect()
        if inspect.isawaitable(done):
            await done


class RateLimiter:
    """Counts events per limit and client IP (by its ``_limit_key``) in fixed windows of the
    server clock; a failing storage raises ``RateLimitStorageError``."""

    def __init__(
        self,
        storage: Storage,
        clock: Callable[[], float],
        *,
        shown: str = "memory://",
        timeout: float = READ_TIMEOUT,
    ) -> None:
        self._storage = storage
        self._clock = clock
        # Counts in this process's memory cannot hang: no timer for them on the hot path.
        self._timeout = None if isinstance(storage, MemoryStorage) else timeout
        if isinstance(storage, RedisStorage):
            _quiet_module_list_warning()
        self.shown = shown
        """The storage's URL as ``describe_storage`` shows it."""

    def __repr__(self) -> str:
        return f"RateLimiter({type(self._storage).__name__})"

    @classmethod
    def from_url(
        cls, url: str, clock: Callable[[], float], *, timeout: float = READ_TIMEOUT
    ) -> RateLimiter:
        """A limiter on the storage ``url`` names, whose counts each have ``timeout`` seconds
        (``ValueError`` for a URL it cannot use)."""
        return cls(limiter_storage(url), clock, shown=describe_storage(url), timeout=timeout)

    async def check(self) -> None:
        """At start: ``ValueError`` naming the storage unless it answers a read within 10 s,
        saying what it refused where it answered (``_refusal``); a cancellation while it is
        asked (a Ctrl-C) is raised, never taken for no answer."""
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        problem: str | None = None
        try:
            async with asyncio.timeout(_CHECK_TIMEOUT):
                await self._storage.get("mimi:ready")
        except StorageError as error:
            problem = _refusal(error.storage_error)
        except OSError:  # TimeoutError included; coredis lets the OS's own errors through
            problem = "does not answer"
        except Exception as error:
            # Not a storage error: the client refused what it was made with (an option of
            # the URL it does not take, a value it cannot use). Its words are not shown: they
            # may quote the URL's query, which can hold a password.
            problem = (
                f"cannot be used as its URL says ({type(error).__name__}): an option in its"
                " query (not shown) its client does not take, or a value it refuses"
            )
        # A CancelledError of a Ctrl-C some client code took for a failure: a cancellation of
        # this task still pending (the timeout has already taken back its own) is raised
        # again, as it was meant.
        if task.cancelling() > cancelling:
            raise asyncio.CancelledError
        if problem is not None:
            raise ValueError(f"the rate-limit storage {self.shown} {problem}")

    async def close(self) -> None:
        """Release the storage's connections (at server shutdown)."""
        await close_storage(self._storage)

    async def _bounded(self, call: Awaitable[int]) -> int:
        """``call``'s answer; ``RateLimitStorageError`` if the storage fails or does not
        answer within the timeout."""
        try:
            async with asyncio.timeout(self._timeout):
                return await call
        except TimeoutError:  # first: an OSError too
            raise RateLimitStorageError(self.shown, timed_out=True) from None
        except (StorageError, OSError):
            # coredis lets the OS's own errors through unwrapped (a connection reset while a
            # command is on its way): the storage's failure all the same, not the database's.
            raise RateLimitStorageError(self.shown) from None

    async def ready(self) -> None:
        """For ``GET /ready``: one write, as a count is (a key of its own, kept a second),
        bounded as a count is; ``RateLimitStorageError`` if the storage fails, refuses writes
        (a read-only replica after a failover, a full Redis under ``noeviction``) or does not
        answer in time. A read would pass where every count fails."""
        await self._bounded(self._storage.incr("mimi:ready", 1))

    async def charge(self, limit: RateLimit, ip: str) -> Charge:
        """Count one event in ``ip``'s current window of ``limit``: what to answer (past the
        limit or not) and, to ``refund`` it, which window it went to."""
        if limit.count <= 0:
            return Charge(limit, None, None)
        now = self._clock()
        index = math.floor(now / limit.window)
        name = f"mimi:{limit.name}:{_limit_key(ip)}:{index}"
        # A count cut short by the timeout may still land once the storage answers again: one
        # event counted that the caller was not answered for, as with a lost answer.
        events = await self._bounded(self._storage.incr(name, limit.window))
        retry_after = (index + 1) * limit.window - now
        return Charge(limit, name, retry_after if events > limit.count else None)

    async def refund(self, charge: Charge) -> None:
        """Take back the event ``charge`` counted, in the window it went to (the storage's own
        increment, by -1: one round trip, and a window already ended is a key no count reads
        again)."""
        if charge.name is not None:
            await self._bounded(self._storage.incr(charge.name, charge.limit.window, amount=-1))

    async def hit(self, limit: RateLimit, ip: str) -> float | None:
        """Count one event; the seconds until the window ends if it was past the limit."""
        return (await self.charge(limit, ip)).retry_after


@attrs.frozen
class Charge:
    """One event ``RateLimiter.charge`` counted: its ``limit``, the storage key of its window
    (None while the limit is off: nothing was counted) and, if that was past the limit, the
    seconds until the window ends."""

    limit: RateLimit
    name: str | None
    retry_after: float | None
