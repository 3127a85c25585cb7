"""The command line: `serve` and `demo`, run as real processes."""

from __future__ import annotations

import os
import secrets
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import aiohttp
import pytest

from mimi_reactive import AnonymousAuthManager, AuthRoute, MimiCore, Success
from mimi_reactive._cli_parser import SIGNS_WITHIN
from mimi_reactive.backends.http import HttpBackend

from .conftest import ANONYMOUS_ONLY
from .server_helpers import Caller, serving


def test_demo_walks_the_flow_and_exits_zero() -> None:
    """`mimi-reactive demo` prints every transition of the seeds' flow, ending with a deleted
    account whose id no longer logs in, and exits 0."""
    done = subprocess.run(
        [sys.executable, "-m", "mimi_reactive", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for expected in (
        "anonymous_created",
        "logged_out",
        "logged_in",
        "switched_user",
        "Skipped()",
        "failed",
        "Failure(InvalidCredentialsError",
        "deleted",
        "logging in with the old id: Failure(InvalidCredentialsError)",
    ):
        assert expected in done.stdout


async def test_serve_runs_a_server_until_terminated(tmp_path: Path) -> None:
    """`mimi-reactive serve` creates its database, serves the API, logs no secret, stops on TERM."""
    database = tmp_path / "ids.sqlite3"
    client_secret = secrets.token_urlsafe(32)
    async with serving(
        *("--log-level", "debug", "serve", "--port", "0", "--database", str(database)),
        *("--client-id", "cli-app"),
        environment={**os.environ, "MIMI_CLIENT_SECRET": client_secret},
    ) as served:
        url = served.url
        async with aiohttp.ClientSession() as http, http.get(url + "/health") as response:
            assert response.status == 200
        async with MimiCore.start(
            client_id="cli-app",
            client_secret=client_secret,
            backend=HttpBackend(url),
            configuration=ANONYMOUS_ONLY,
        ) as core:
            user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
            await core.auth.log_out()
            result = await AnonymousAuthManager(core).authenticate_anonymous_user(user.anonymous_id)
            assert result == Success(user.anonymous_id)  # type: ignore[arg-type]
        assert database.exists()
    assert served.returncode == 0
    log = served.stderr.decode()
    assert "http.request" in log  # it did log at debug
    assert user.anonymous_id is not None
    assert user.anonymous_id not in log
    assert client_secret not in log


def test_serve_without_a_secret_says_so() -> None:
    """`serve` with no client secret exits 2 with a clear message."""
    env = {k: v for k, v in os.environ.items() if k != "MIMI_CLIENT_SECRET"}
    done = subprocess.run(
        [sys.executable, "-m", "mimi_reactive", "serve", "--client-id", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 2
    assert "MIMI_CLIENT_SECRET" in done.stderr


def run_cli(
    *args: str,
    timeout: float = 20,
    secret: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `mimi-reactive ARGS` to completion with a client secret (``secret``, else a strong
    one) and ``environ`` in the environment."""
    return subprocess.run(
        [sys.executable, "-m", "mimi_reactive", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={
            **os.environ,
            "MIMI_CLIENT_SECRET": secret or secrets.token_urlsafe(32),
            **(environ or {}),
        },
    )


def test_version_prints_the_installed_version() -> None:
    """`mimi-reactive --version` prints the version the package metadata holds."""
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"mimi-reactive {metadata.version('mimi-reactive')}"


def test_serve_help_shows_defaults_for_users() -> None:
    """`serve --help` shows each option's default and no docstring internals."""
    done = run_cli("serve", "--help")
    assert done.returncode == 0
    for expected in ("(default: 8080)", "(default: 3600.0)", "(default: 10.0)", "MIMI_CLIENT"):
        assert expected in done.stdout
    assert "(default: None)" not in done.stdout
    assert "only place that configures logging" not in run_cli("--help").stdout


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--access-token-ttl", "-5", "--access-token-ttl"),
        ("--access-token-ttl", "nan", "--access-token-ttl"),
        ("--session-idle-timeout", "0", "--session-idle-timeout"),
        ("--refresh-reuse-interval", "-1", "--refresh-reuse-interval"),
        ("--client-id", "", "--client-id"),
        ("--client-id", "   ", "--client-id"),
        ("--issuer", "", "--issuer"),
        ("--password-hash-queue", "-1", "--password-hash-queue"),
        ("--trusted-proxy", "proxy.example", "--trusted-proxy"),
        ("--key-reload-interval", "301", "--key-reload-interval"),
        ("--port", "70000", "--port"),
        ("--port", "-1", "--port"),
        ("--port", "http", "--port"),
        ("--access-token-ttl", "1e10", "--access-token-ttl"),
        ("--session-idle-timeout", "1e11", "--session-idle-timeout"),
        ("--spent-token-retention", "1e300", "--spent-token-retention"),
        ("--sweep-interval", "1e-9", "--sweep-interval"),
        ("--workers", "257", "--workers"),
        ("--workers", "99999999999999999999", "--workers"),
        ("--max-sessions-per-user", "-1", "--max-sessions-per-user"),
        ("--max-sessions-per-user", "1.5", "--max-sessions-per-user"),
    ],
    ids=[
        "negative-ttl",
        "nan-ttl",
        "zero-idle",
        "negative-reuse",
        "empty-id",
        "blank-id",
        "empty-issuer",
        "negative-queue",
        "proxy-not-an-address",
        "reload-past-the-margin",
        "port-too-big",
        "negative-port",
        "port-not-a-number",
        "ttl-past-a-day",
        "idle-past-a-century",
        "retention-past-a-century",
        "sweep-busy-loop",
        "workers-past-the-cap",
        "workers-20-digits",
        "negative-session-cap",
        "fractional-session-cap",
    ],
)
def test_serve_refuses_bad_options_in_one_line(option: str, value: str, named: str) -> None:
    """A bad option value exits 2 with one line naming it, before anything starts."""
    arguments = {"--client-id": "app", option: value}
    done = run_cli("serve", *(part for pair in arguments.items() for part in pair))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert named in done.stderr
    assert "Traceback" not in done.stderr


def occupied_port() -> tuple[socket.socket, int]:
    """A loopback port some other socket is listening on."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder, int(holder.getsockname()[1])


UNRESOLVABLE = "no-such-host." * 20 + "invalid"
"""A host name longer than DNS allows (267 characters; 253 at most): the resolver refuses it
without asking a nameserver, so the test does not hang on an unreachable one (a lookup of
``no-such-host.invalid`` can take 5 s per attempt there)."""


LONG_LABEL = "a" * 64 + ".example"
"""A host name with a label past DNS's 63 characters."""


@pytest.mark.parametrize(
    "case",
    [
        "busy-port",
        "unbindable-host",
        "unknown-host",
        "host-with-an-empty-label",
        "host-with-a-label-past-63",
        "missing-folder",
        "directory",
        "not-sqlite",
        "postgresql-port-past-65535",
        "silent-postgresql",
    ],
)
def test_serve_that_cannot_start_says_why_and_exits(tmp_path: Path, case: str) -> None:
    """`serve` that cannot listen or open its database exits 1 within seconds with one line
    naming the problem (and the path, never a password), no traceback, and leaves nothing
    running."""
    holder, busy = occupied_port()
    database = tmp_path / "ids.sqlite3"
    (tmp_path / "junk").write_text("this is not a database")
    options, named = {
        "busy-port": (["--port", str(busy)], f"127.0.0.1:{busy}"),
        "unbindable-host": (["--host", "192.0.2.1", "--port", "0"], "192.0.2.1"),
        "unknown-host": (["--host", UNRESOLVABLE, "--port", "0"], UNRESOLVABLE),
        # The resolver's IDNA encoding refuses these before any lookup (a UnicodeError).
        "host-with-an-empty-label": (["--host", "id..example", "--port", "0"], "id..example:0"),
        "host-with-a-label-past-63": (["--host", LONG_LABEL, "--port", "0"], LONG_LABEL),
        "missing-folder": (["--database", str(tmp_path / "none" / "x.db")], "none/x.db"),
        "directory": (["--database", str(tmp_path)], str(tmp_path)),
        "not-sqlite": (["--database", str(tmp_path / "junk")], "junk"),
        "postgresql-port-past-65535": (
            ["--database", "postgresql://u:hunter2@127.0.0.1:99999/db"],
            "postgresql://u@127.0.0.1:99999/db: its port is not from 0 to 65535",
        ),
        # The busy port accepts (its backlog) and never answers.
        "silent-postgresql": (
            ["--database", f"postgresql://u:hunter2@127.0.0.1:{busy}/db", "--storage-timeout", "1"],
            f"postgresql://u@127.0.0.1:{busy}/db: it did not answer within 1 s",
        ),
    }[case]
    if "--database" not in options:
        options += ["--database", str(database)]
    with holder:
        started = time.monotonic()
        done = run_cli("serve", "--client-id", "app", *options)  # times out if it hangs
        elapsed = time.monotonic() - started
    assert done.returncode == 1
    assert elapsed < 15
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("mimi-reactive serve: cannot")
    assert named in lines[0]
    assert "hunter2" not in done.stderr
    assert done.stdout == ""


async def test_serve_database_files_are_private(tmp_path: Path) -> None:
    """The database and its WAL and SHM files are created 0600."""
    database = tmp_path / "ids.sqlite3"
    client_secret = secrets.token_urlsafe(32)
    async with serving(
        *("serve", "--port", "0", "--database", str(database), "--client-id", "app"),
        environment={**os.environ, "MIMI_CLIENT_SECRET": client_secret},
    ) as served:
        async with aiohttp.ClientSession() as http:  # a write: SQLite makes its WAL and SHM files
            await Caller(http, served.url, "app", client_secret).anonymous_user()
        files = sorted(tmp_path.iterdir())
        assert [f.name for f in files] == ["ids.sqlite3", "ids.sqlite3-shm", "ids.sqlite3-wal"]
        for file in files:
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file.name


@pytest.mark.parametrize(
    ("before", "after", "debug"),
    [([], ["--log-level", "debug"], True), (["--log-level", "debug"], [], True), ([], [], False)],
    ids=["after-the-command", "before-the-command", "not-given"],
)
def test_the_log_level_goes_before_or_after_the_command(
    tmp_path: Path, before: list[str], after: list[str], debug: bool
) -> None:
    """--log-level is taken after the command's name as before it; not given after it, the
    one given before (or the default) holds."""
    database = str(tmp_path / "ids.sqlite3")
    done = run_cli(*before, "migrate", "--database", database, *after)
    assert done.returncode == 0, done.stderr
    assert ("[debug" in done.stderr) == debug, done.stderr


def test_rotate_help_and_output_say_the_same_delay() -> None:
    """`rotate-signing-key --help` gives the delay before servers sign with the new key that
    its output and docs/server.md give (it said a minute; the output two)."""
    help_text = " ".join(run_cli("rotate-signing-key", "--help").stdout.split())
    assert f"sign with it within {SIGNS_WITHIN} " in help_text
    docs = " ".join((Path(__file__).parent.parent / "docs" / "server.md").read_text().split())
    assert f"sign with it within {SIGNS_WITHIN}`" in docs


@pytest.mark.parametrize(
    ("command", "creates"),
    [("serve", True), ("migrate", True), ("sweep", False), ("rotate-signing-key", False)],
)
def test_the_database_help_says_whether_a_missing_file_is_created(
    tmp_path: Path, command: str, creates: bool
) -> None:
    """Each command's --database help says "created" only where a missing SQLite file is
    created (sweep and rotate-signing-key refuse one, and their help says so)."""
    help_text = " ".join(run_cli(command, "--help").stdout.split())
    assert ("created 0600 if missing" in help_text) == creates
    assert ("does not exist is refused" in help_text) == (not creates)
    if not creates:
        done = run_cli(command, "--database", str(tmp_path / "missing.sqlite3"))
        assert done.returncode == 2
        assert "no database at" in done.stderr


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (
            ["--log-format", "json", "serve"],
            "--log-format goes after the command's name (mimi-reactive serve --log-format ",
        ),
        (["--port=80", "serve"], "--port goes after the command's name"),
        (
            ["--database", "x.db", "sweep"],
            "--database goes after the command's name (mimi-reactive sweep --database ",
        ),
        (
            ["--database", "x.db", "rotate-signing-key"],
            "(mimi-reactive rotate-signing-key --database ",
        ),
    ],
)
def test_a_command_s_option_before_the_command_is_pointed_after_it(
    arguments: list[str], named: str
) -> None:
    """An option only a command takes, given before the command's name, is refused in one
    line that says it goes after the name (argparse alone called its value an invalid
    command)."""
    done = run_cli(*arguments)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert named in done.stderr


def test_a_misspelt_command_gets_no_hint_about_options() -> None:
    """A misspelt command, after --log-level (which goes before it too), is only named."""
    done = run_cli("--log-level", "info", "serv")
    assert done.returncode == 2
    assert "invalid choice: 'serv'" in done.stderr
    assert "goes after" not in done.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--access-token-ttl", "100", "--session-idle-timeout", "50"],
            "--session-idle-timeout must be longer than --access-token-ttl,",
        ),
        (
            ["--session-idle-timeout", "50"],
            "--session-idle-timeout must be longer than access_token_ttl,",
        ),
    ],
    ids=["both-flags", "one-flag"],
)
def test_two_settings_that_disagree_are_named_as_they_were_given(
    arguments: list[str], message: str
) -> None:
    """A rule across two settings names each by its flag where a flag gave it, and by its
    setting's name where the default (or the config file) did."""
    done = run_cli("serve", "--client-id", "app", *arguments)
    assert done.returncode == 2
    assert message in done.stderr
