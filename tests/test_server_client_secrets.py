"""A client secret rolled over: a client may have a previous secret beside its secret, either
accepted, never a third; removing the previous one refuses it from the next start; both are as
strong as one, compared in the same time, and never shown."""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mimi_reactive import ConfigurationError
from mimi_reactive._server._config import MAX_CLIENT_SECRETS, load_config_file
from mimi_reactive._server._identity_server import registered_clients
from mimi_reactive._server._secrets import digest, matches_one_of
from mimi_reactive.server import ClientConfig, IdentityServer

from .server_helpers import Caller, serving

NEW, OLD = secrets.token_urlsafe(32), secrets.token_urlsafe(32)


async def status_as(http: aiohttp.ClientSession, url: str, secret: str) -> int:
    """The status of an anonymous sign-up by client ``app`` with ``secret``."""
    status, _, _ = await Caller(http, url, "app", secret).post("/v1/anonymous-users")
    return status


async def test_both_secrets_are_accepted_and_a_third_is_refused() -> None:
    """A client with a secret and a previous secret is authenticated with either; any other
    secret, or no previous one given to another client, is 401."""
    clients = [ClientConfig("app", NEW, previous_secret=OLD), ClientConfig("other", OLD + "x")]
    async with IdentityServer(clients=clients) as server, aiohttp.ClientSession() as http:
        assert await status_as(http, server.url, NEW) == 201
        assert await status_as(http, server.url, OLD) == 201
        assert await status_as(http, server.url, secrets.token_urlsafe(32)) == 401
        assert await status_as(http, server.url, OLD + "x") == 401  # another client's


async def test_identity_server_takes_a_previous_client_secret() -> None:
    """IdentityServer(client_id=, client_secret=, previous_client_secret=) accepts both."""
    async with (
        IdentityServer(client_id="app", client_secret=NEW, previous_client_secret=OLD) as server,
        aiohttp.ClientSession() as http,
    ):
        assert [await status_as(http, server.url, s) for s in (NEW, OLD)] == [201, 201]


@pytest.mark.parametrize("where", ["file", "flags"])
async def test_removing_the_previous_secret_refuses_it_from_the_next_start(
    tmp_path: Path, where: str
) -> None:
    """`serve` with the previous secret (previous_secret_env in the file, or
    MIMI_PREVIOUS_CLIENT_SECRET with --client-id) takes both; restarted on the same database
    without it, the old secret is 401 and the new one still works."""
    database = str(tmp_path / "ids.sqlite3")
    config = tmp_path / "mimi.toml"
    config.write_text('[[clients]]\nid = "app"\nsecret_env = "APP_SECRET"\n')
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MIMI_CLIENT_SECRET", "MIMI_PREVIOUS_CLIENT_SECRET")
    }
    if where == "file":
        arguments = ["--config", str(config)]
        rolling = {**base, "APP_SECRET": NEW, "APP_OLD_SECRET": OLD}
        done = {**base, "APP_SECRET": NEW, "APP_OLD_SECRET": OLD}  # the variable may linger
    else:
        arguments = ["--client-id", "app"]
        rolling = {**base, "MIMI_CLIENT_SECRET": NEW, "MIMI_PREVIOUS_CLIENT_SECRET": OLD}
        done = {**base, "MIMI_CLIENT_SECRET": NEW}
    serve = ["serve", "--port", "0", "--database", database, *arguments]
    async with aiohttp.ClientSession() as http:
        if where == "file":
            config.write_text(config.read_text() + 'previous_secret_env = "APP_OLD_SECRET"\n')
        async with serving(*serve, environment=rolling) as served:
            assert [await status_as(http, served.url, s) for s in (NEW, OLD)] == [201, 201]
        assert served.returncode == 0, served.stderr
        if where == "file":
            config.write_text('[[clients]]\nid = "app"\nsecret_env = "APP_SECRET"\n')
        async with serving(*serve, environment=done) as served:
            assert [await status_as(http, served.url, s) for s in (NEW, OLD)] == [201, 401]
        assert served.returncode == 0, served.stderr
    for secret in (NEW, OLD):
        assert secret.encode() not in served.stdout + served.stderr


@pytest.mark.parametrize(
    ("previous", "problem"),
    [
        ("", "previous secret of client 'app' is empty"),
        (NEW, "is its secret too"),
        ("hunter2!", "previous secret of client 'app' is too weak"),
        ("s" * 64, "previous secret of client 'app' is too weak"),
        ([OLD, secrets.token_urlsafe(32)], "must be a string or None, not list .*2 secrets at"),
        ((OLD,), "must be a string or None, not tuple"),
        (12345, "must be a string or None, not int"),
        (OLD.encode(), "must be a string or None, not bytes"),
    ],
    ids=["empty", "same", "weak", "repeated", "too-many", "tuple", "int", "bytes"],
)
def test_a_bad_previous_secret_is_a_configuration_error(previous: Any, problem: str) -> None:
    """ClientConfig and IdentityServer refuse an empty, repeated, weak, listed or non-string
    previous secret with ConfigurationError, never quoting a secret."""
    for make in (
        lambda: ClientConfig("app", NEW, previous_secret=previous),
        lambda: IdentityServer(client_id="app", client_secret=NEW, previous_client_secret=previous),
    ):
        with pytest.raises(ConfigurationError, match=problem) as raised:
            make()
        for secret in (NEW, OLD, "hunter2!"):
            assert secret not in str(raised.value)


def test_a_previous_client_secret_without_a_client_is_refused() -> None:
    """IdentityServer(previous_client_secret=) without client_id is refused, not ignored."""
    with pytest.raises(ConfigurationError, match="applies to client_id's client"):
        IdentityServer(clients=[ClientConfig("app", NEW)], previous_client_secret=OLD)


@pytest.mark.parametrize(
    ("entry", "environ", "problem"),
    [
        ('previous_secret_env = ""', {}, "previous_secret_env must be one environment variable"),
        ('previous_secret_env = "NEW"', {}, "names secret_env's variable"),
        ('previous_secret_env = ["OLD", "OLDER"]', {"OLDER": OLD}, "2 secrets at most"),
        ("previous_secret_env = 7", {}, "previous_secret_env must be one environment variable"),
        ('previous_secret_env = "OLD"', {"OLD": ""}, "the environment variable OLD is not set"),
        ('previous_secret_env = "UNSET"', {}, "the environment variable UNSET is not set"),
        ('previous_secret_env = "OLD"', {"OLD": NEW}, "is its secret too"),
        ('previous_secret_env = "OLD"', {"OLD": "hunter2!"}, "previous secret .* too weak"),
        ('previous_secret = "x"', {}, "never go in the file; .* with previous_secret_env$"),
        (
            'secret = "x"\nprevious_secret = "y"',
            {},
            "never go in the file; name environment variables with secret_env and "
            "previous_secret_env$",
        ),
    ],
    ids=[
        "empty",
        "same-variable",
        "too-many",
        "int",
        "blank",
        "unset",
        "same",
        "weak",
        "inline",
        "both-inline",
    ],
)
def test_a_bad_previous_secret_in_the_config_file_is_refused(
    tmp_path: Path, entry: str, environ: dict[str, str], problem: str
) -> None:
    """The config file's previous_secret_env is refused when empty, the secret's own
    variable, a list, not a string, unset, or when its secret is the current one or weak."""
    config = tmp_path / "mimi.toml"
    config.write_text(f'[[clients]]\nid = "app"\nsecret_env = "NEW"\n{entry}\n')
    with pytest.raises(ConfigurationError, match=problem) as raised:
        load_config_file(config, {"NEW": NEW, "OLD": OLD, **environ})
    for secret in (NEW, OLD, "hunter2!"):
        assert secret not in str(raised.value)


def test_secrets_are_in_no_repr_and_digests_in_no_repr() -> None:
    """Neither secret nor its digest is in the repr of the client's config, of the client the
    server keeps, or of the server."""
    config = ClientConfig("app", NEW, previous_secret=OLD)
    kept = registered_clients([config])["app"]
    server = IdentityServer(clients=[config])
    texts = [repr(config), repr(kept), repr(server), str(config), str(kept)]
    assert "app" in repr(config)
    for text in texts:
        for secret in (NEW, OLD, digest(NEW), digest(OLD)):
            assert secret not in text


@pytest.mark.parametrize(
    ("stored", "given", "matched"),
    [
        ((NEW, OLD), NEW, True),
        ((NEW, OLD), OLD, True),
        ((NEW, OLD), "wrong", False),
        ((NEW,), NEW, True),
        ((NEW,), OLD, False),
        ((), NEW, False),
    ],
    ids=["first", "second", "neither", "one-secret", "one-secret-wrong", "unknown-client"],
)
def test_every_slot_is_compared_whichever_matches(
    monkeypatch: pytest.MonkeyPatch, stored: tuple[str, ...], given: str, matched: bool
) -> None:
    """The check compares a digest of the same length against each of the two slots, in
    constant time, whichever secret matched or none and however many the client has: its
    time does not tell which secret matched, nor whether the client has one or two."""
    compared: list[tuple[int, int]] = []
    compare = hmac.compare_digest

    def counting(a: str, b: str) -> bool:
        compared.append((len(a), len(b)))
        return compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)  # the one _secrets calls
    assert matches_one_of(given, tuple(digest(s) for s in stored)) is matched
    assert compared == [(64, 64)] * MAX_CLIENT_SECRETS


async def test_no_secret_reaches_the_server_log_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Requests with either secret and a wrong one, at DEBUG: no log record holds a secret or
    the Basic credentials that carry it."""
    caplog.set_level(logging.DEBUG)
    wrong = secrets.token_urlsafe(32)
    async with (
        IdentityServer(clients=[ClientConfig("app", NEW, previous_secret=OLD)]) as server,
        aiohttp.ClientSession() as http,
    ):
        assert [await status_as(http, server.url, s) for s in (NEW, OLD, wrong)] == [
            201,
            201,
            401,
        ]
    written = caplog.text + "".join(repr(record.__dict__) for record in caplog.records)
    assert caplog.records  # the server did log at DEBUG
    for secret in (NEW, OLD, wrong):
        assert secret not in written
        assert aiohttp.encode_basic_auth("app", secret).split()[1] not in written
