"""The server's settings, and the values they are checked against or produce.

Only the standard library, attrs and the client's checks, errors and redaction (``_checks``,
whose primitives the rules here are built on, ``ConfigurationError`` and ``_redaction``) here:
the command line builds its grammar from these defaults without loading the server (aiohttp,
JWT, limits), which ``--help`` would wait for.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from .._checks import LONGEST_LIFETIME, is_count, is_seconds, is_whole, service_url_problem
from .._exceptions import ConfigurationError
from .._redaction import bounded_repr

__all__ = [
    "AT_LEAST_0",
    "AT_LEAST_1",
    "MAX_ACCESS_TOKEN_TTL",
    "MAX_POOL_SIZE",
    "MIN_SWEEP_INTERVAL",
    "NOT_BLANK",
    "PORT",
    "PUBLISH_LEAD",
    "PUBLISH_MARGIN",
    "SECONDS",
    "SECONDS_ABOVE_0",
    "Network",
    "RateLimit",
    "Rule",
    "ServerSettings",
    "quoted_url",
]

PUBLISH_LEAD = 60.0
"""Seconds a rotated-in key is published before it signs: every worker publishes it within
``KEY_READ_THROTTLE`` and a JWKS is cached at most ``JWKS_MAX_AGE``, so a verifier that keeps
the JWKS for its max-age and never refetches on an unknown kid has the key before its first
token (the invariant in ``_tokens``' docstring and docs/security.md); what is left over is room
for clocks that differ a little."""

PUBLISH_MARGIN = 300.0
"""Seconds a retired key stays published past one access-token lifetime after its retirement
(the instant the next key starts signing): room for workers that take the new key up late
(at most ``key_reload_interval`` after that instant, which must not exceed this) and for
clocks that differ a little."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen
class Rule:
    """What a setting's value must be: the one check the API, the config file and the command
    line's flags share (as an attrs validator, or through ``problem``)."""

    holds: Callable[[Any], bool]
    must: str
    """What a refused value is told, after the setting's name: ``must be ...``."""
    read: type[int] | type[float] | type[str]
    """How a flag's text becomes the value (``int``, ``float``, ``str``)."""
    quoted: Callable[[Any], str] = repr
    """How a refused value is quoted after ``not`` (``quoted_url`` for a value that may hold a
    password)."""

    @property
    def types(self) -> tuple[type, ...]:
        """The types a value may have before the rule checks it (a config file's value): what
        ``read`` makes, and an int where that is a float."""
        return (int, float) if self.read is float else (self.read,)

    def problem(self, value: object) -> str | None:
        """Why ``value`` is refused (``must be ..., not ...``), or None if it holds."""
        return None if self.holds(value) else f"{self.must}, not {self.quoted(value)}"

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        problem = self.problem(value)
        if problem is not None:
            raise ConfigurationError(f"{attribute.name} {problem}")


def quoted_url(value: object) -> str:
    """A refused URL or host as a message quotes it: never what may be secret. With an ``@``
    (a user and password come before it), none of it; else without a query or fragment
    (either can hold a token); 80 characters at most."""
    if not isinstance(value, str):
        return repr(value)
    if "@" in value:
        return "a value with '@' (not shown: a user and password come before it)"
    kept = value.partition("?")[0].partition("#")[0]
    cut = "" if kept == value else " with a query or fragment (not shown)"
    return bounded_repr(kept) + cut


def _without_final_slash(value: object) -> object:
    """An issuer as verifiers compare it (``AccessTokenVerifier`` and ``HttpBackend`` drop a
    final ``/``): signed with one, ``iss`` would match no verifier's."""
    return value.rstrip("/") if isinstance(value, str) else value


# Every duration is at most the longest token lifetime the client takes (LONGEST_LIFETIME, a
# century): a server that issued a longer one would hand its own clients sessions they refuse.
_CENTURY = f"{LONGEST_LIFETIME:.0f} (a century)"
SECONDS = Rule(
    lambda v: is_seconds(v) and v <= LONGEST_LIFETIME,
    f"must be from 0 to {_CENTURY} (seconds)",
    float,
)
SECONDS_ABOVE_0 = Rule(
    lambda v: is_seconds(v) and 0 < v <= LONGEST_LIFETIME,
    f"must be more than 0 and at most {_CENTURY} (seconds)",
    float,
)
_DAYS = Rule(
    lambda v: is_seconds(v) and v <= LONGEST_LIFETIME / 86400,
    f"must be from 0 to {LONGEST_LIFETIME / 86400:.0f} (days: a century)",
    float,
)
MAX_ACCESS_TOKEN_TTL = 86400.0
"""The longest access-token lifetime: a day. An access token cannot be revoked before it
expires (a log-out ends its session, not the token), and a retired signing key stays published
one lifetime after rotation, so this bounds both windows. Firebase's ID tokens live one hour,
fixed; Supabase allows at most a week; a client in use renews well within a day."""
_ACCESS_TOKEN_TTL = Rule(
    lambda v: is_seconds(v) and 0 < v <= MAX_ACCESS_TOKEN_TTL,
    f"must be more than 0 and at most {MAX_ACCESS_TOKEN_TTL:.0f} (seconds: a day; an access"
    " token cannot be revoked before it expires)",
    float,
)
MIN_SWEEP_INTERVAL = 0.05
"""The shortest time between two sweeps (0 turns the sweeper off): each sweep queries the whole
database, so a smaller interval (a typo: 1e-9) is a busy loop. Tests and benchmarks that
compress time sweep this often at most."""
_SWEEP_INTERVAL = Rule(
    lambda v: is_seconds(v) and (v == 0 or MIN_SWEEP_INTERVAL <= v <= LONGEST_LIFETIME),
    f"must be 0 (no sweeper) or from {MIN_SWEEP_INTERVAL:g} to {_CENTURY} (seconds; each"
    " sweep queries the whole database)",
    float,
)
AT_LEAST_0 = Rule(lambda v: is_whole(v) and v >= 0, "must be 0 or more (a whole number)", int)
AT_LEAST_1 = Rule(is_count, "must be 1 or more (a whole number)", int)
PORT = Rule(lambda v: is_whole(v) and 0 <= v <= 65535, "must be a port number from 0 to 65535", int)
NOT_BLANK = Rule(lambda v: isinstance(v, str) and bool(v.strip()), "must not be empty", str)
# The iss a verifier is given (AccessTokenVerifier(issuer)) must be exactly this: the URL
# HttpBackend takes.
_ISSUER = Rule(
    lambda v: v is None or (isinstance(v, str) and service_url_problem(v) is None),
    "must be the service's public URL (http:// or https:// and a host; no user, password,"
    " query or fragment)",
    str,
    quoted_url,
)
MAX_POOL_SIZE = 1000
"""The most connections ``database_pool_size`` may ask for: asyncpg sets up every slot of its
pool when it starts, so a huge size would hang the start eating memory (and ignore SIGTERM
meanwhile), and no PostgreSQL server lets one process have that many (100 in all by default)."""
_POOL_SIZE = Rule(
    lambda v: is_count(v) and v <= MAX_POOL_SIZE,
    f"must be from 1 to {MAX_POOL_SIZE} (a whole number; each connection is set up at start,"
    " and PostgreSQL allows 100 in all by default)",
    int,
)
_RELOAD = Rule(
    lambda v: is_seconds(v) and 0 < v <= PUBLISH_MARGIN,
    f"must be more than 0 and at most {PUBLISH_MARGIN:g} (seconds)",
    float,
)


def network(text: str) -> Network:
    """A trusted proxy's address or network (CIDR) as ``ipaddress`` reads it;
    ``ConfigurationError`` if it is neither."""
    try:
        return ipaddress.ip_network(text.strip())
    except ValueError:
        # Quoted as a URL is: an address typed as a proxy's URL may hold its password.
        raise ConfigurationError(
            f"{quoted_url(text)} is not an IP address or network (CIDR)"
        ) from None


def _networks(values: Iterable[str | Network]) -> frozenset[Network]:
    """``trusted_proxies`` as networks: each address or CIDR read by ``network``."""
    if isinstance(values, str):
        raise ConfigurationError(
            "trusted_proxies must be a collection of addresses, not one string"
        )
    networks: set[Network] = set()
    for value in values:
        if isinstance(value, str):
            try:
                value = network(value)
            except ConfigurationError as error:
                raise ConfigurationError(f"trusted_proxies: {error}") from None
        if not isinstance(value, Network):
            raise ConfigurationError(f"trusted_proxies must hold addresses, not {value!r}")
        networks.add(value)
    return frozenset(networks)


@attrs.frozen
class RateLimit:
    """One of the server's rate limits, as ``ServerSettings`` sets it: at most ``count``
    events per ``window`` seconds from one client IP (an IPv6 client's /64); ``count`` 0 turns
    it off. Past it, the server answers 429 with ``Retry-After`` until the window ends."""

    name: str
    """What it counts, and the key it counts under in the rate-limit storage."""
    count: int
    """The events allowed per window (``ServerSettings``' ``max_..._per_hour`` or
    ``..._per_minute``)."""
    window: int
    """The window's length in whole seconds (3600 or 60): fixed windows, aligned to the
    clock."""


@attrs.frozen
class ServerSettings:
    """How the reference server behaves; every limit's 0 turns it off. A value out of its
    range is refused with ``ConfigurationError`` (a ``ValueError``) naming the setting, as by
    the config file and the flags."""

    access_token_ttl: float = attrs.field(default=3600.0, validator=_ACCESS_TOKEN_TTL)
    """Seconds an access token is valid, at most ``MAX_ACCESS_TOKEN_TTL`` (a day)."""
    session_idle_timeout: float = attrs.field(default=30 * 24 * 3600.0, validator=SECONDS_ABOVE_0)
    """Seconds a session may go unused before its refresh token stops working."""
    max_sessions_per_user: int = attrs.field(default=100, validator=AT_LEAST_0)
    """Live sessions one user may have: a log-in past it ends the user's least recently used
    ones (as idle), so a user's rows stay bounded however often it logs in by id."""
    refresh_reuse_interval: float = attrs.field(default=10.0, validator=SECONDS)
    """Seconds a spent refresh token still gets a new pair (the retry after a lost answer)."""
    clock: Callable[[], float] = time.time
    """The server's wall clock (tests move it instead of sleeping)."""
    max_anonymous_sign_ups_per_hour: int = attrs.field(default=100, validator=AT_LEAST_0)
    """Anonymous users one client IP may create per hour."""
    max_credential_sign_ups_per_hour: int = attrs.field(default=100, validator=AT_LEAST_0)
    """Sign-ups with email and password one client IP may ask for per hour (each costs an
    Argon2 hash, and each answer tells whether the email is taken)."""
    max_failed_log_ins_per_minute: int = attrs.field(default=30, validator=AT_LEAST_0)
    """Wrong anonymous ids, passwords and client secrets, and emails already taken at sign-up
    or promotion, one client IP may send per minute."""
    # Hidden from the repr: a storage URL may hold a password.
    rate_limit_storage: str = attrs.field(default="memory://", validator=NOT_BLANK, repr=False)
    """Where the limits count: a ``limits`` storage URL (``redis://...`` to share them)."""
    trusted_proxies: frozenset[Network] = attrs.field(default=frozenset(), converter=_networks)
    """Addresses or networks (CIDR, as strings) of reverse proxies whose ``X-Forwarded-For``
    names the client."""
    password_hash_workers: int = attrs.field(default=1, validator=AT_LEAST_1)
    """Argon2 hashes run at once (each takes a core for about 50 ms)."""
    password_hash_queue: int = attrs.field(default=8, validator=AT_LEAST_0)
    """Argon2 hashes that may wait for a worker; past that, 503 with Retry-After."""
    sweep_interval: float = attrs.field(default=3600.0, validator=_SWEEP_INTERVAL)
    """Seconds between sweeps of dead sessions and old spent tokens (0: no sweeper), at least
    ``MIN_SWEEP_INTERVAL``."""
    spent_token_retention: float = attrs.field(default=24 * 3600.0, validator=SECONDS)
    """Seconds a spent refresh token is kept so its reuse is still detected, and a revoked
    session so that its refresh still says it was ended on purpose, not unknown."""
    anonymous_retention_days: float = attrs.field(default=0, validator=_DAYS)
    """Delete anonymous users unseen for this many days (0: never)."""
    issuer: str | None = attrs.field(
        default=None, converter=_without_final_slash, validator=_ISSUER
    )
    """The ``iss`` of access tokens: the service's public URL (default: the listening URL)."""
    database_pool_size: int = attrs.field(default=10, validator=_POOL_SIZE)
    """PostgreSQL connections one server process keeps at most, up to ``MAX_POOL_SIZE``
    (unused on SQLite)."""
    key_reload_interval: float = attrs.field(default=60.0, validator=_RELOAD)
    """Seconds between a process's reads of the signing keys: a key added by
    ``rotate-signing-key`` signs everywhere within ``PUBLISH_LEAD`` plus this long (at most
    ``PUBLISH_MARGIN``)."""

    storage_timeout: float = attrs.field(default=5.0, validator=SECONDS_ABOVE_0)
    """Seconds the database and the rate-limit storage each have for one call (and for
    ``GET /ready``'s probe): one that stops answering (a network partition) gets 503 with
    Retry-After instead of requests that hang."""

    def __attrs_post_init__(self) -> None:
        if self.spent_token_retention < self.refresh_reuse_interval:
            raise ConfigurationError(
                "spent_token_retention must be at least refresh_reuse_interval"
            )
        # A client in use renews before its access token expires, so it touches its session
        # about once per access_token_ttl: a shorter idle timeout would end every session.
        if self.session_idle_timeout <= self.access_token_ttl:
            raise ConfigurationError(
                "session_idle_timeout must be longer than access_token_ttl, or sessions in use"
                " expire between two renewals"
            )

    @property
    def anonymous_sign_up_limit(self) -> RateLimit:
        """The limit on anonymous sign-ups: ``max_anonymous_sign_ups_per_hour`` per hour."""
        return RateLimit("anonymous_sign_ups", self.max_anonymous_sign_ups_per_hour, 3600)

    @property
    def credential_sign_up_limit(self) -> RateLimit:
        """The limit on sign-ups with email and password: ``max_credential_sign_ups_per_hour``
        per hour."""
        return RateLimit("credential_sign_ups", self.max_credential_sign_ups_per_hour, 3600)

    @property
    def failure_limit(self) -> RateLimit:
        """The limit on failed log-ins (and the other failures
        ``max_failed_log_ins_per_minute`` counts): that many per minute."""
        return RateLimit("failed_log_ins", self.max_failed_log_ins_per_minute, 60)
