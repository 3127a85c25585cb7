"""ServerSettings refuses every value out of its setting's range, naming the setting: the one
rule the Python API, the config file and the command line's flags share."""

from __future__ import annotations

import ipaddress
from typing import Any

import attrs
import pytest

from mimi_reactive import ConfigurationError
from mimi_reactive._checks import LONGEST_LIFETIME
from mimi_reactive._server._settings import MAX_ACCESS_TOKEN_TTL, MIN_SWEEP_INTERVAL
from mimi_reactive.server import ServerSettings

NAN, INF = float("nan"), float("inf")

# Each setting and values it refuses; a 0 that turns something off stays allowed.
REFUSED: dict[str, list[Any]] = {
    # Past a day: an access token cannot be revoked before it expires.
    "access_token_ttl": [NAN, INF, 0, -1, "3600", True, MAX_ACCESS_TOKEN_TTL + 1, 1e10],
    # Past a century: the client refuses such a lifetime (LONGEST_LIFETIME).
    "session_idle_timeout": [NAN, 0, -100, LONGEST_LIFETIME + 1, 1e11],
    "refresh_reuse_interval": [NAN, -INF, -1, LONGEST_LIFETIME + 1],
    "max_anonymous_sign_ups_per_hour": [-1, 1.5, NAN],
    "max_credential_sign_ups_per_hour": [-1, 2.5, "100", True],
    "max_failed_log_ins_per_minute": [-3, "30", False],
    "max_sessions_per_user": [-1, 1.5, "100", True, NAN],
    "rate_limit_storage": ["", "  ", None],
    "trusted_proxies": ["10.0.0.1", ["proxy.example"], ["10.0.0.1/8"], [5]],
    "password_hash_workers": [0, -1],
    "password_hash_queue": [-1, 2.0],
    # Shorter than MIN_SWEEP_INTERVAL but 0: a busy loop against the database.
    "sweep_interval": [NAN, -5, 1e-9, MIN_SWEEP_INTERVAL / 2, LONGEST_LIFETIME + 1],
    "spent_token_retention": [NAN, -1, 1e300],
    "anonymous_retention_days": [NAN, INF, -2, 36526],
    "issuer": [
        "",
        "   ",
        5,
        "id.example.com",
        "ftp://id.example.com",
        "https://",
        "https://id.example.com?x=1",
        "https://id.example.com#x",
        "https://user:pw@id.example.com",
        " https://id.example.com",
        "https://id.example.com:0",
        "https://id.example.com:70000",
        "https://id.example.com/a b",
    ],
    "database_pool_size": [0, -3, 1001, 10**20, 2.0],
    "key_reload_interval": [0, -1, 301, NAN],
    "storage_timeout": [0, -1, NAN, INF, 1e300],
}

# Values at the edge of each range, which stay allowed.
ALLOWED: dict[str, list[Any]] = {
    "access_token_ttl": [0.5, 1, MAX_ACCESS_TOKEN_TTL],
    "session_idle_timeout": [LONGEST_LIFETIME],
    "refresh_reuse_interval": [0],
    "max_anonymous_sign_ups_per_hour": [0],
    "max_credential_sign_ups_per_hour": [0],
    "max_failed_log_ins_per_minute": [0],
    "max_sessions_per_user": [0, 1],
    "password_hash_queue": [0],
    "sweep_interval": [0, MIN_SWEEP_INTERVAL, LONGEST_LIFETIME],
    "spent_token_retention": [10],
    "anonymous_retention_days": [0, 0.5, 36525],
    "issuer": [None, "https://id.example", "http://127.0.0.1:8080", "https://example.com/auth"],
    "key_reload_interval": [300],
    "database_pool_size": [1, 1000],
}


def test_every_setting_has_refused_values() -> None:
    """The table covers every setting but the clock."""
    assert set(REFUSED) == set(attrs.fields_dict(ServerSettings)) - {"clock"}


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name, values in REFUSED.items() for value in values],
    ids=[f"{name}={value!r}" for name, values in REFUSED.items() for value in values],
)
def test_a_value_out_of_range_is_refused_naming_the_setting(name: str, value: Any) -> None:
    """ServerSettings(name=value) raises ConfigurationError (a ValueError, as the client's
    settings do) whose one line starts with the name."""
    with pytest.raises(ConfigurationError, match=f"^{name}\\b[^\n]*$"):
        ServerSettings(**{name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name, values in ALLOWED.items() for value in values],
    ids=[f"{name}={value!r}" for name, values in ALLOWED.items() for value in values],
)
def test_a_value_at_the_edge_of_its_range_is_taken(name: str, value: Any) -> None:
    """The bounds themselves (0 where it means off) are allowed."""
    assert getattr(ServerSettings(**{name: value}), name) == value


def test_an_idle_timeout_must_outlast_the_access_token() -> None:
    """A session idle timeout no longer than the access token's lifetime is refused: a client
    renews about once per lifetime, so every session in use would expire."""
    with pytest.raises(ConfigurationError, match=r"^session_idle_timeout must be longer"):
        ServerSettings(access_token_ttl=600, session_idle_timeout=600)
    assert (
        ServerSettings(access_token_ttl=600, session_idle_timeout=601).session_idle_timeout == 601
    )


def test_trusted_proxies_are_read_as_networks() -> None:
    """Addresses and CIDR networks, as strings or ipaddress values, become networks."""
    settings = ServerSettings(
        trusted_proxies=["10.0.0.0/8", "::1", ipaddress.ip_network("192.0.2.0/24")]
    )
    assert settings.trusted_proxies == {
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("192.0.2.0/24"),
    }


def test_the_rate_limit_storage_url_is_not_in_the_repr() -> None:
    """A Redis URL's password never shows in the settings' repr."""
    settings = ServerSettings(rate_limit_storage="redis://:hunter2@127.0.0.1:6379")
    assert "hunter2" not in repr(settings)


def test_an_issuer_is_kept_without_its_final_slash() -> None:
    """An issuer given with a final slash is kept without it, as verifiers compare it."""
    assert ServerSettings(issuer="https://id.example/").issuer == "https://id.example"
    assert ServerSettings(issuer="https://id.example/auth/").issuer == "https://id.example/auth"
