"""The command line's refusals of what it was given say what is wrong in one line, quoting no
secret: a URL or host holding a password, an empty --config path, and what a Redis rate-limit
storage refused at the start check (its own Redis, over a Unix socket, for one that needs a
password or is a replica cut off; the test Redis on 127.0.0.1:6379 otherwise)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import coredis
import pytest

from .conftest import CLIENT_ID
from .server_helpers import run_command
from .test_cli import run_cli

SECRET = "SEKRIT-" + secrets.token_hex(4)
"""A password in what the tests give: no output may hold it."""
_IN_URL = "not a value with '@' (not shown: a user and password come before it)"


_IN_THE_FILE = {
    "--issuer": 'issuer = "{}"',
    "--host": 'host = "{}"',
    "--trusted-proxy": 'trusted_proxies = ["{}"]',
}
"""Each option's line in a config file's [server] table, the value at {}."""


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--issuer", f"https://user:{SECRET}@id.example/", _IN_URL),
        ("--issuer", f"https://:{SECRET}@id.example", _IN_URL),
        ("--issuer", f"https://id.example/?token={SECRET}", "not 'https://id.example/' with a"),
        ("--issuer", f"https://id.example/#{SECRET}", "not 'https://id.example/' with a query"),
        ("--host", f"user:{SECRET}@localhost", _IN_URL),
        ("--host", f"{SECRET}@127.0.0.1", _IN_URL),
        ("--trusted-proxy", f"http://user:{SECRET}@10.0.0.1", _IN_URL.removeprefix("not ")),
    ],
    ids=[
        "issuer-password",
        "issuer-no-user",
        "issuer-query",
        "issuer-fragment",
        "host-user",
        "host-at",
        "proxy-url",
    ],
)
@pytest.mark.parametrize("given_in", ["flag", "config"])
def test_a_refused_value_is_not_quoted_with_its_password(
    option: str, value: str, says: str, given_in: str, tmp_path: Path
) -> None:
    """An --issuer, --host or --trusted-proxy holding a password (a URL's user, a query, a
    fragment), from a flag or the config file, exits 2 with one line saying what is wrong,
    naming the option, without the secret."""
    if given_in == "flag":
        arguments, named = [option, value], option
    else:
        config = tmp_path / "server.toml"
        line = _IN_THE_FILE[option].replace("{}", value)
        config.write_text(f"[server]\n{line}\n")
        arguments, named = ["--config", str(config)], line.partition(" ")[0]
    done = run_cli("serve", "--client-id", "app", "--port", "0", *arguments)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert named in done.stderr
    assert says in done.stderr
    assert SECRET not in done.stderr + done.stdout


@pytest.mark.parametrize("command", ["serve", "sweep", "migrate", "rotate-signing-key"])
def test_an_empty_config_path_is_refused_as_typed(command: str) -> None:
    """`--config ""` exits 2 with one line saying the path is empty, not naming '.' (what
    Path("") is) as a file that cannot be read."""
    done = run_cli(command, "--config", "")
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"mimi-reactive {command}: error: argument --config: must not be empty: give a TOML"
        " file's path (see --help)\n"
    )


@contextlib.asynccontextmanager
async def own_redis(*options: str) -> AsyncIterator[Path]:
    """A Redis of its own, run with ``options``, on a Unix socket only: the socket's path.
    Skipped without a redis-server."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("no redis-server to run")
    # A short folder: a Unix socket's path holds 107 bytes at most.
    folder = Path(tempfile.mkdtemp(prefix="mimi-redis-"))
    path = folder / "redis.sock"
    process = await asyncio.create_subprocess_exec(
        *(server, "--port", "0", "--unixsocket", str(path), "--unixsocketperm", "700"),
        *("--save", "", "--appendonly", "no", "--dir", str(folder), *options),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(20):
            while b"ready to accept connections" not in await process.stdout.readline():
                assert not process.stdout.at_eof(), "redis-server exited"
        yield path
    finally:
        process.terminate()
        await process.wait()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def guarded_redis(redis_url: str) -> AsyncIterator[tuple[Path, str]]:
    """A Redis of its own that needs a password and has one database: its socket's path and
    password. Skipped without the test Redis (``redis_url``) or a redis-server."""
    password = secrets.token_urlsafe(16)
    async with own_redis("--requirepass", password, "--databases", "1") as path:
        yield path, password


_TEST_REDIS = "redis://127.0.0.1:6379"
_NO_DATABASE = (
    "has no database of its URL's number (Redis has 16 by default, numbered 0 to 15: see its"
    " databases setting)"
)


async def refused_start(url: str, client_secret: str) -> str:
    """What `serve` with ``url`` for its rate-limit storage writes on stderr, having exited 1
    without serving."""
    status, out, err = await run_command(
        *("serve", "--port", "0", "--database", ":memory:"),
        # With '=': a secret may start with '-', which argparse takes for an option.
        *("--client-id", CLIENT_ID, f"--client-secret={client_secret}"),
        *("--rate-limit-storage", url),
    )
    assert (status, out) == (1, ""), err
    return err


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"{_TEST_REDIS}/99", f"{_TEST_REDIS}/99 {_NO_DATABASE}"),
        (f"{_TEST_REDIS}/0?db=16", f"{_TEST_REDIS}/0 {_NO_DATABASE}"),
        (
            f"redis://nobody:{SECRET}@127.0.0.1:6379/0",
            "redis://nobody@127.0.0.1:6379/0 refused the user and password of its URL (not shown)",
        ),
        (
            f"{_TEST_REDIS}/0?{SECRET}=1",
            f"{_TEST_REDIS}/0 cannot be used as its URL says (TypeError): an option in its query"
            " (not shown) its client does not take, or a value it refuses",
        ),
    ],
    ids=["database-past-16", "database-option-past-16", "wrong-user", "unknown-option"],
)
async def test_serve_says_what_the_rate_limit_storage_refused(
    url: str, says: str, redis_url: str, client_secret: str
) -> None:
    """A Redis that answers the start check with a refusal (a database number it does not
    have, a user and password it refuses, an option its client does not take) stops `serve`
    with one line saying which, exit status 1, not "does not answer": no password, and no
    warning or traceback of the Redis client."""
    err = await refused_start(url, client_secret)
    assert err == f"mimi-reactive serve: the rate-limit storage {says}\n"
    assert SECRET not in err


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (
            "redis+unix://{socket}",
            "needs a user and password: give them in its URL (redis://USER:PASSWORD@HOST:PORT/DB)",
        ),
        (
            f"redis+unix://:{SECRET}@{{socket}}",
            "refused the user and password of its URL (not shown)",
        ),
        ("redis+unix://:{password}@{socket}?db=1", _NO_DATABASE),
    ],
    ids=["password-needed", "wrong-password", "database-past-1"],
)
async def test_serve_says_what_a_redis_with_a_password_refused(
    url: str, says: str, guarded_redis: tuple[Path, str], client_secret: str
) -> None:
    """A Redis that needs a password stops `serve` with one line saying so when the URL has
    none, and that it refused the URL's when it is wrong (not "does not answer"); with the
    right one, a database number it does not have is said as on any Redis. No password."""
    path, password = guarded_redis
    err = await refused_start(url.format(socket=path, password=password), client_secret)
    assert err == f"mimi-reactive serve: the rate-limit storage redis+unix://{path} {says}\n"
    assert SECRET not in err
    assert password not in err


async def _user_without_get(path: Path, password: str) -> str:
    """On the Redis at ``path``: a user (its password ``SECRET``) that may run any command
    but GET, the start check's; a storage URL of that user."""
    admin = coredis.Redis(unix_socket_path=str(path), password=password)
    try:
        await admin.acl_setuser("reader", "on", f">{SECRET}", "~*", "+@all", "-get")
    finally:
        admin.connection_pool.disconnect()
    return f"redis+unix://reader:{SECRET}@{path}"


async def test_serve_shows_only_the_error_code_of_another_refusal(
    guarded_redis: tuple[Path, str], client_secret: str
) -> None:
    """A refusal of the start check other than the URL's password or database (here a user
    the ACL denies GET, Redis's NOPERM) stops `serve` with Redis's error code only: not
    Redis's words, which can name the user or quote what was sent."""
    path, password = guarded_redis
    err = await refused_start(await _user_without_get(path, password), client_secret)
    assert err == (
        f"mimi-reactive serve: the rate-limit storage redis+unix://reader@{path} refused the"
        " start check with Redis error NOPERM (its message not shown)\n"
    )


async def test_serve_shows_a_code_redis_leaves_in_its_words_and_no_more(
    redis_url: str, client_secret: str
) -> None:
    """A replica cut off from its primary that serves no stale data (Redis's MASTERDOWN, a
    code coredis leaves at the start of Redis's words) stops `serve` with that code alone."""
    stale = ("--replica-serve-stale-data", "no")
    async with own_redis("--replicaof", "127.0.0.1", "1", *stale) as path:
        err = await refused_start(f"redis+unix://{path}", client_secret)
    assert err == (
        f"mimi-reactive serve: the rate-limit storage redis+unix://{path} refused the start"
        " check with Redis error MASTERDOWN (its message not shown)\n"
    )
