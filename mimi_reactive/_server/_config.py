"""The server's clients and settings: one ``ClientConfig`` per app, and the ``--config`` file.

A client's secret never comes from the file: the file names the environment variable that
holds it (``secret_env``, and ``previous_secret_env`` for the one being rolled over from), so
the file can be shared and versioned.
"""

from __future__ import annotations

import collections
import hmac
import math
import os
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from .._checks import has_surrounding_whitespace, is_count
from .._exceptions import ConfigurationError
from ._settings import NOT_BLANK, PORT, Rule, ServerSettings, quoted_url

__all__ = [
    "COMMAND_LINE_DEFAULTS",
    "COMMAND_LINE_RULES",
    "DEFAULTS",
    "LOG_FORMATS",
    "MAX_CLIENT_SECRETS",
    "MAX_CONFIG_BYTES",
    "MAX_WORKERS",
    "MIN_SECRET_BITS",
    "SERVER_KEYS",
    "ClientConfig",
    "ConfigFile",
    "check_clients",
    "estimated_bits",
    "load_config_file",
]

MAX_CONFIG_BYTES = 1 << 20
"""The largest ``--config`` file read: a real one is a few hundred bytes."""
MIN_SECRET_BITS = 128
MAX_CLIENT_SECRETS = 2
"""The secrets one client may have at once: its secret, and the previous one during a roll-over."""
LOG_FORMATS = ("console", "json")

# The server options that are not settings of the server, with their defaults and rules; every
# other option is a ServerSettings field, with that field's default and rule (one source for the
# command line, the config file and the API).
COMMAND_LINE_DEFAULTS: dict[str, object] = {
    "host": "127.0.0.1",
    "port": 8080,
    "workers": 1,
    "database": "mimi-identity.sqlite3",
    "log_format": "console",
}
_BREAK = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
"""White space or a control character: no host name or address holds one."""
MAX_WORKERS = 256
"""The most server processes ``serve --workers`` runs: each is a process with its own database
pool (``database_pool_size`` connections to a PostgreSQL that allows 100 in all by default)
and rate-limit connections, and a machine has far fewer cores than this to run them on."""
_HOST = Rule(
    lambda v: (
        isinstance(v, str)
        and bool(v.strip())
        and not any(mark in v for mark in "[]/@")
        and not _BREAK.search(v)
    ),
    "must be an IP address or a host name, as is: no brackets, scheme, user, path or spaces"
    " (::1, not [::1]; 127.0.0.1, not http://127.0.0.1)",
    str,
    quoted_url,
)
"""What ``--host`` takes: what the resolver does. A URL's form of an address (brackets, a
scheme, a user) or a space or control character in it (``--host "a b"``) would fail there
with "name or service not known", which hides the mistake; a user's ``@`` may follow a
password, so that value is not quoted."""
COMMAND_LINE_RULES: dict[str, Rule] = {
    "host": _HOST,
    "port": PORT,
    "workers": Rule(
        lambda v: is_count(v) and v <= MAX_WORKERS,
        f"must be from 1 to {MAX_WORKERS} (a whole number; each worker is a process with its"
        " own database connections)",
        int,
    ),
    "database": NOT_BLANK,
    "log_format": Rule(lambda v: v in LOG_FORMATS, "must be " + " or ".join(LOG_FORMATS), str),
}
_SETTINGS_FIELDS = attrs.fields_dict(ServerSettings)
# What the [server] table may hold: each option and the types its value may have, as its rule
# reads them (the rule checks the value itself where the command uses it).
SERVER_KEYS: dict[str, tuple[type, ...]] = {
    name: rule.types for name, rule in COMMAND_LINE_RULES.items()
} | {
    name: field.validator.types
    for name, field in _SETTINGS_FIELDS.items()
    if isinstance(field.validator, Rule)
}
SERVER_KEYS["trusted_proxies"] = (list,)  # no rule: its converter reads each address
# Each server option and its default.
DEFAULTS: dict[str, object] = {
    name: COMMAND_LINE_DEFAULTS[name]
    if name in COMMAND_LINE_DEFAULTS
    else _SETTINGS_FIELDS[name].default
    for name in SERVER_KEYS
}


@attrs.frozen
class ClientConfig:
    """One app allowed to call the server, and what it may do; ``ConfigurationError`` as it
    is made for what ``check`` refuses."""

    id: str
    secret: str = attrs.field(repr=False)
    anonymous_only: bool = False
    """Refused credential sign-up, credential log-in and promotion (403 route_not_allowed)."""
    previous_secret: str | None = attrs.field(default=None, repr=False, kw_only=True)
    """The secret being rolled over from, accepted beside ``secret`` until it is removed: a
    client has two secrets at most."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secrets the server accepts from this client: one, or two during a roll-over."""
        return (
            (self.secret,) if self.previous_secret is None else (self.secret, self.previous_secret)
        )

    def __attrs_post_init__(self) -> None:
        # Refused as it is made, where the app's mistake is, not when a server starts.
        self.check()

    def check(self) -> None:
        """Refuse a blank id, one with whitespace around it or a colon, or a guessable secret
        (``ConfigurationError``)."""
        if not self.id.strip():
            raise ConfigurationError("a client id must not be empty")
        if has_surrounding_whitespace(self.id):
            # HttpBackend refuses such an id (check_trimmed): no client could use it.
            raise ConfigurationError(
                f"client id {self.id!r} has whitespace around it (a newline read with it from"
                " a file?)"
            )
        if ":" in self.id:
            # HTTP Basic (RFC 7617) ends the user id at the first colon: no client could
            # authenticate as this one.
            raise ConfigurationError(f"client id {self.id!r} must not contain ':' (HTTP Basic)")
        _check_strength(f"the secret of client {self.id!r}", self.secret)
        previous = self.previous_secret
        if previous is None:
            return
        name = f"the previous secret of client {self.id!r}"
        if not isinstance(previous, str):
            # Never the value: a list given here may hold secrets.
            raise ConfigurationError(
                f"{name} must be a string or None, not {type(previous).__name__} (a client has"
                f" {MAX_CLIENT_SECRETS} secrets at most: secret and previous_secret)"
            )
        if not previous:
            raise ConfigurationError(f"{name} is empty: give None when there is none")
        if hmac.compare_digest(previous.encode(), self.secret.encode()):
            raise ConfigurationError(
                f"{name} is its secret too: a roll-over needs a new secret beside the old"
            )
        _check_strength(name, previous)


def _check_strength(name: str, secret: str) -> None:
    """Refuse (``ConfigurationError``) a secret under ``MIN_SECRET_BITS``; ``name`` says whose."""
    bits = estimated_bits(secret)
    if bits < MIN_SECRET_BITS:
        raise ConfigurationError(
            f"{name} is too weak (about {bits:.0f} bits of entropy; at least"
            f" {MIN_SECRET_BITS} needed): generate one with"
            " python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )


def estimated_bits(secret: str) -> float:
    """A conservative estimate of a secret's entropy in bits.

    The smaller of two: its length times the log of the alphabet its character classes span,
    and its length times the per-character Shannon entropy of its own characters (which
    catches repetition such as ``"s" * 40``). 32 bytes from ``secrets.token_urlsafe`` score
    about 200; a 20-letter word scores under 90.
    """
    if not secret:
        return 0.0
    alphabet = 0
    for present, size in (
        (any(c.islower() for c in secret), 26),
        (any(c.isupper() for c in secret), 26),
        (any(c.isdigit() for c in secret), 10),
        (any(not c.isalnum() for c in secret), 33),
    ):
        alphabet += size if present else 0
    by_classes = len(secret) * math.log2(max(alphabet, 2))
    counts = collections.Counter(secret)
    shannon = -sum((n / len(secret)) * math.log2(n / len(secret)) for n in counts.values())
    # max: one repeated character sums to -0.0, which would print as "-0 bits".
    return max(0.0, min(by_classes, len(secret) * shannon))


def check_clients(configs: Sequence[ClientConfig]) -> None:
    """Refuse (``ConfigurationError``) no client at all, or one id given twice (each client
    was checked as it was made)."""
    if not configs:
        raise ConfigurationError("no client: give client_id and client_secret, or clients")
    seen: set[str] = set()
    for config in configs:
        if config.id in seen:
            raise ConfigurationError(f"client {config.id!r} is given twice")
        seen.add(config.id)


_FLAGS_ONLY: dict[str, str] = {
    "log_level": "--log-level is a flag only, not a file setting (it applies before the file"
    " is read)",
    "client_id": "clients go in [[clients]] tables (id, secret_env, previous_secret_env,"
    " anonymous_only)",
    "client_secret": "secrets never go in the file: name an environment variable with"
    " secret_env in [[clients]]",
    "previous_client_secret": "secrets never go in the file: name an environment variable"
    " with previous_secret_env in [[clients]]",
    "anonymous_only": "it is a client's: anonymous_only in its [[clients]] table",
    "config": "--config names the file itself",
}
"""The flags of ``serve`` that ``[server]`` does not take, and what to do instead: every other
flag is a setting of the same name there."""
# The TOML words for the Python types a [server] value may have, for messages.
_TOML_TYPES: dict[type, str] = {
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    bool: "true or false",
    dict: "a table",
}


@attrs.frozen
class ConfigFile:
    """What a ``--config`` file says: server options (by option name) and clients."""

    server: Mapping[str, Any]
    clients: Sequence[ClientConfig]


def load_config_file(
    path: Path, environ: Mapping[str, str] | None = None, *, read_secrets: bool = True
) -> ConfigFile:
    """Read a TOML config file; ``ConfigurationError`` for anything unusable. Without
    ``read_secrets`` (a command that authenticates no client) the clients are checked but not
    returned, and their secrets' environment variables need not be set."""
    environ = os.environ if environ is None else environ
    try:
        with path.open("rb") as file:
            # No more than a config file could be: /dev/zero, or a log given by mistake, would
            # otherwise be read whole into memory.
            content = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        reason = os.strerror(error.errno).lower() if error.errno else type(error).__name__
        raise ConfigurationError(f"cannot read the config file {str(path)!r}: {reason}") from None
    if len(content) > MAX_CONFIG_BYTES:
        raise ConfigurationError(
            f"the config file {str(path)!r} is larger than {MAX_CONFIG_BYTES >> 20} MiB,"
            " which no config file is: is it the right file?"
        )
    try:
        document = tomllib.loads(content.decode())
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(
            f"the config file {str(path)!r} is not valid TOML: {error}"
        ) from None
    except UnicodeDecodeError as error:
        raise ConfigurationError(
            f"the config file {str(path)!r} is not UTF-8 (byte {error.start})"
        ) from None
    except ValueError as error:  # after its subclasses above: Python's own limit on int()
        why = (
            f"holds an integer of more than {sys.get_int_max_str_digits()} digits"
            if "digits" in str(error)
            else "is not valid TOML"
        )
        raise ConfigurationError(f"the config file {str(path)!r} {why}") from None
    except RecursionError:
        raise ConfigurationError(
            f"the config file {str(path)!r} nests arrays or tables too deeply"
        ) from None
    unknown = set(document) - {"server", "clients"}
    if unknown:
        raise ConfigurationError(f"unknown table in the config file: {sorted(unknown)[0]!r}")
    server = document.get("server", {})
    if not isinstance(server, dict):
        raise ConfigurationError("[server] must be a table")
    for key, value in server.items():
        types = SERVER_KEYS.get(key)
        if key in _FLAGS_ONLY:
            raise ConfigurationError(f"[server] {key}: {_FLAGS_ONLY[key]}")
        if types is None:
            raise ConfigurationError(f"unknown setting in [server]: {key!r}")
        if isinstance(value, bool) or not isinstance(value, types):
            # A float setting takes an integer too: "a number" says both.
            expected = "a number" if float in types else _TOML_TYPES[types[0]]
            got = _TOML_TYPES.get(type(value), type(value).__name__)
            raise ConfigurationError(f"[server] {key} must be {expected}, not {got}")
    entries = document.get("clients", [])
    if not isinstance(entries, list):
        raise ConfigurationError("clients must be an array of tables: [[clients]]")
    listed = [_client(entry) for entry in entries]
    if not read_secrets:
        return ConfigFile(server, ())
    clients = (
        ClientConfig(
            name,
            _secret(name, "secret_env", variable, environ),
            only,
            previous_secret=None
            if previous is None
            else _secret(name, "previous_secret_env", previous, environ),
        )
        for name, variable, previous, only in listed
    )
    return ConfigFile(server, tuple(clients))


def _secret(client_id: str, key: str, variable: str, environ: Mapping[str, str]) -> str:
    """The secret of ``client_id``, from the environment variable the file names (``key``)."""
    secret = environ.get(variable)
    if secret:
        return secret
    if _VARIABLE_NAME.fullmatch(variable) and estimated_bits(variable) < MIN_SECRET_BITS:
        raise ConfigurationError(
            f"client {client_id!r}: the environment variable {variable} is not set"
        )
    # The secret itself pasted where its variable's name goes: never shown. Any secret a
    # client may have scores MIN_SECRET_BITS at least; a name that scores as much is rare.
    raise ConfigurationError(
        f"client {client_id!r}: {key} names an environment variable that is not set (the name"
        " is not shown: as long and varied as a secret, or no shell variable's name, it may be"
        f" the secret itself, which goes in the variable {key} names)"
    )


_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""What a shell variable (an environment variable set by ``export``) may be named."""


def _client(entry: object) -> tuple[str, str, str | None, bool]:
    """A [[clients]] entry's id, the names of its secret's environment variable and of its
    previous secret's (if any), and whether it is anonymous-only."""
    if not isinstance(entry, dict):
        raise ConfigurationError("each [[clients]] entry must be a table")
    client_id = entry.get("id")
    if not isinstance(client_id, str) or not client_id.strip():
        raise ConfigurationError("each [[clients]] entry needs a non-empty id")
    unknown = set(entry) - {"id", "secret_env", "previous_secret_env", "anonymous_only"}
    inline = [key for key in ("secret", "previous_secret") if key in unknown]
    if inline:  # both named when both are written: fixing one would only reveal the other
        variables = " and ".join(f"{key}_env" for key in inline)
        raise ConfigurationError(
            f"client {client_id!r}: secrets never go in the file; name"
            f" {'environment variables' if len(inline) > 1 else 'an environment variable'}"
            f" with {variables}"
        )
    if unknown:
        raise ConfigurationError(f"client {client_id!r}: unknown key {sorted(unknown)[0]!r}")
    variable = entry.get("secret_env")
    if not isinstance(variable, str) or not variable:
        raise ConfigurationError(
            f"client {client_id!r} needs secret_env, an environment variable name"
        )
    previous = entry.get("previous_secret_env")
    if previous is not None and (not isinstance(previous, str) or not previous):
        raise ConfigurationError(
            f"client {client_id!r}: previous_secret_env must be one environment variable name"
            f" (a client has {MAX_CLIENT_SECRETS} secrets at most: secret_env and"
            " previous_secret_env)"
        )
    if previous == variable:
        raise ConfigurationError(
            f"client {client_id!r}: previous_secret_env names secret_env's variable: a"
            " roll-over needs the new secret in another"
        )
    anonymous_only = entry.get("anonymous_only", False)
    if not isinstance(anonymous_only, bool):
        raise ConfigurationError(f"client {client_id!r}: anonymous_only must be true or false")
    return client_id, variable, previous, anonymous_only
