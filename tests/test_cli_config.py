"""`mimi-reactive` with a `--config` file or flags that cannot be used: one line naming the
problem, exit status 2, nothing created; and what the file may now set."""

from __future__ import annotations

import os
import re
import resource
import secrets
import subprocess
import sys
from pathlib import Path

import aiohttp
import attrs
import pytest

from mimi_reactive._server._config import (
    COMMAND_LINE_RULES,
    SERVER_KEYS,
    check_clients,
    load_config_file,
)
from mimi_reactive.server import ServerSettings

from .conftest import fresh_schema
from .server_helpers import Caller, run_command, serving
from .test_cli import run_cli


def refused_in_one_line(done_status: int, stderr: str, named: str) -> None:
    """The command exited 2 with one line on stderr naming ``named``, without a traceback."""
    assert done_status == 2, stderr
    assert stderr.count("\n") == 1, stderr
    assert named in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("access_token_ttl = nan", "access_token_ttl"),
        ("access_token_ttl = 0", "access_token_ttl"),
        ("session_idle_timeout = -100", "session_idle_timeout"),
        ("sweep_interval = -5", "sweep_interval"),
        ("sweep_interval = 1e-9", "sweep_interval must be 0 (no sweeper) or from 0.05"),
        ("access_token_ttl = 1e10", "access_token_ttl must be more than 0 and at most 86400"),
        ("session_idle_timeout = 1e11", "session_idle_timeout must be more than 0 and at most"),
        ("workers = 257", "workers must be from 1 to 256"),
        ("max_failed_log_ins_per_minute = -3", "max_failed_log_ins_per_minute"),
        ("max_sessions_per_user = -1", "max_sessions_per_user must be 0 or more"),
        ("password_hash_queue = -1", "password_hash_queue must be 0 or more"),
        ("workers = 0", "workers"),
        ("port = 70000", "port"),
        ('host = "[::1]"', "host must be an IP address or a host name"),
        ('issuer = ""', "issuer"),
        ('trusted_proxies = ["proxy.example"]', "trusted_proxies"),
        ("key_reload_interval = 600", "key_reload_interval"),
        ("database_pool_size = 0", "database_pool_size must be from 1 to 1000"),
        ('log_format = "xml"', "log_format must be console or json, not 'xml'"),
        ('log_format = "JSON"', "log_format must be console or json"),
        ("log_format = 1", "log_format must be a string, not an integer"),
        ('port = "8080"', "port must be an integer, not a string"),
        ("port = 80.5", "port must be an integer, not a number"),
        ('access_token_ttl = "60"', "access_token_ttl must be a number, not a string"),
        ("access_token_ttl = true", "access_token_ttl must be a number, not true or false"),
        ('trusted_proxies = "10.0.0.1"', "trusted_proxies must be an array, not a string"),
        ('log_level = "info"', "log_level: --log-level is a flag only"),
        ('client_id = "app"', "clients go in [[clients]] tables"),
        ("anonymous_only = true", "anonymous_only in its [[clients]] table"),
    ],
)
def test_serve_refuses_a_value_out_of_range_in_the_config_file(
    tmp_path: Path, setting: str, named: str
) -> None:
    """`serve --config` with a [server] value out of its range, of the wrong type (the type
    it must be named) or of a flag that is no file setting exits 2 with one line naming the
    setting, before the database is created."""
    config = tmp_path / "mimi.toml"
    config.write_text(f"[server]\n{setting}\n")
    database = tmp_path / "ids.sqlite3"
    done = run_cli(
        "serve", "--client-id", "app", "--config", str(config), "--database", str(database)
    )
    refused_in_one_line(done.returncode, done.stderr, named)
    assert not database.exists()


@pytest.mark.parametrize(
    ("content", "named"),
    [(b"\xff\xfe", "not UTF-8"), (b"[server]\nissuer = '\xe9'\n", "not UTF-8")],
    ids=["bom-like", "latin-1"],
)
def test_a_config_file_that_is_not_utf8_is_refused_in_one_line(
    tmp_path: Path, content: bytes, named: str
) -> None:
    """A config file that is not UTF-8 exits 2 with one line naming the file."""
    config = tmp_path / "mimi.toml"
    config.write_bytes(content)
    done = run_cli("serve", "--client-id", "app", "--config", str(config))
    refused_in_one_line(done.returncode, done.stderr, named)
    assert str(config) in done.stderr


def _nested(opening: str, closing: str) -> str:
    """A [server] value nested 100000 deep (``opening`` then ``closing`` each that often)."""
    return f"[server]\nport = {opening * 100_000}{closing * 100_000}\n"


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (_nested("[", "]"), "nests arrays or tables too deeply"),
        (_nested("{a=", "}"), "nests arrays or tables too deeply"),
        (f"[server]\nport = 1{'0' * 5000}\n", "an integer of more than 4300 digits"),
        ("# a comment\n" * 100_000, "larger than 1 MiB"),
        (None, "larger than 1 MiB"),
    ],
    ids=["nested-arrays", "nested-tables", "integer-of-5001-digits", "past-1-mib", "dev-zero"],
)
def test_a_config_file_that_no_parser_should_take_is_refused_in_one_line(
    tmp_path: Path, content: str | None, named: str
) -> None:
    """A config file nested too deeply for the parser, holding an integer Python will not read,
    or larger than any config file (/dev/zero, never ending: None) exits 2 with one line naming
    the file and why, no traceback, reading no more than it needs (the child's memory is
    bounded so that a read to the end fails rather than fill the machine's)."""
    config = Path("/dev/zero") if content is None else tmp_path / "mimi.toml"
    if content is not None:
        config.write_text(content)

    def bounded_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    done = subprocess.run(
        [sys.executable, "-m", "mimi_reactive", "migrate", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        preexec_fn=bounded_memory,
    )
    refused_in_one_line(done.returncode, done.stderr, named)
    assert str(config) in done.stderr


@pytest.mark.parametrize(
    ("command", "url"),
    [
        ("migrate", "mysql://u:hunter2@h/db"),
        ("sweep", "postgresql+asyncpg://u:hunter2@127.0.0.1/db"),
        ("rotate-signing-key", "sqlite://u:hunter2@h/db"),
        ("migrate", "redis://:hunter2@127.0.0.1:6379"),
    ],
)
async def test_an_unsupported_database_url_is_refused_without_its_password(
    tmp_path: Path, command: str, url: str
) -> None:
    """A --database URL of a store other than PostgreSQL exits 2 with one line naming its
    scheme, never its password, and is not taken for a file path."""
    status, stdout, stderr = await run_command(command, "--database", url)
    scheme = url.partition("://")[0]
    refused_in_one_line(status, stderr, f"unsupported database URL scheme {scheme!r}")
    assert "hunter2" not in stderr + stdout


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgresql:x", "postgresql:// or postgres:// (with //)"),
        ("postgresql:/x", "postgresql:// or postgres:// (with //)"),
        ("POSTGRES://u:hunter2@h/db", "postgresql:// or postgres:// (in lower case)"),
        ("Postgres:hunter2", "postgresql:// or postgres:// (in lower case, with //)"),
        ("mysql:hunter2", "unsupported database URL scheme 'mysql'"),
        ("data.v2:hunter2", "./NAME for a file whose name holds a colon"),
    ],
)
async def test_a_value_with_a_url_scheme_is_never_taken_for_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, named: str
) -> None:
    """A --database value that starts with a scheme and its colon but is no postgresql:// or
    postgres:// URL exits 2 with one line saying what a PostgreSQL URL looks like, or naming
    the scheme (never what follows it), and creates no file of that name."""
    monkeypatch.chdir(tmp_path)
    status, stdout, stderr = await run_command("migrate", "--database", url)
    refused_in_one_line(status, stderr, named)
    assert "hunter2" not in stderr + stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["postgresql://", "postgres://"])
async def test_both_postgresql_schemes_open_postgresql(
    postgres_unreachable: str | None, url: str
) -> None:
    """postgres://, which the docs name beside postgresql://, opens PostgreSQL as it does."""
    if postgres_unreachable is not None:
        pytest.skip(postgres_unreachable)
    async with fresh_schema() as database:
        status, stdout, stderr = await run_command(
            "migrate", "--database", url + database.partition("://")[2]
        )
    assert status == 0, stderr
    assert stdout.startswith("schema version "), stdout


@pytest.mark.parametrize(
    ("command", "query", "named"),
    [
        ("migrate", "search_path=", "the database URL's search_path parameter"),
        ("migrate", "search_path", "the database URL's search_path parameter"),
        ("sweep", "sslmode=", "the database URL's sslmode parameter"),
        ("rotate-signing-key", "sslmode=require&search_path=", "URL's search_path parameter"),
        ("serve", "search_path=", "the database URL's search_path parameter"),
        ("migrate", "sslmode=require&=", "a parameter of the database URL"),
    ],
    ids=[
        "migrate-empty-search-path",
        "migrate-search-path-without-value",
        "sweep-empty-sslmode",
        "rotate-empty-after-a-set-one",
        "serve-empty-search-path",
        "migrate-empty-without-a-name",
    ],
)
async def test_a_postgresql_url_parameter_without_a_value_is_refused(
    command: str, query: str, named: str
) -> None:
    """A --database URL whose parameter has no value (`?search_path=$SCHEMA`, the variable
    unset) exits 2 with one line naming the parameter, never the password: the PostgreSQL
    driver would drop it, so a migrate meant for a schema of its own would fill the
    database's public one, and an empty sslmode would silently mean "prefer"."""
    # Nothing listens on port 1: without the check, the command fails later (exit 1) instead
    # of touching a real database.
    url = f"postgresql://u:hunter2@127.0.0.1:1/db?{query}"
    extra = ("--client-id", "app") if command == "serve" else ()
    environment = {**os.environ, "MIMI_CLIENT_SECRET": secrets.token_urlsafe(32)}
    status, stdout, stderr = await run_command(
        command, "--database", url, *extra, environment=environment
    )
    refused_in_one_line(status, stderr, f"{named} has no value")
    assert "hunter2" not in stderr + stdout


def test_serve_refuses_an_unsupported_database_url_as_a_bad_argument(tmp_path: Path) -> None:
    """serve, which checks the database's name when it opens it, exits 2 for another store's
    URL as the other commands do, never showing its password."""
    done = run_cli("serve", "--client-id", "app", "--database", "mysql://u:hunter2@h/db")
    refused_in_one_line(done.returncode, done.stderr, "unsupported database URL scheme 'mysql'")
    assert "hunter2" not in done.stderr + done.stdout


@pytest.mark.parametrize("command", ["migrate", "rotate-signing-key", "sweep"])
async def test_a_command_checks_only_the_options_it_uses(tmp_path: Path, command: str) -> None:
    """A config file shared with serve may hold a value only serve refuses (a negative rate
    limit): migrate, rotate-signing-key and sweep, which do not use it, still run."""
    config = tmp_path / "mimi.toml"
    config.write_text("[server]\nmax_failed_log_ins_per_minute = -1\nworkers = 0\n")
    database = str(tmp_path / "ids.sqlite3")
    status, _, stderr = await run_command("migrate", "--database", database)
    assert status == 0, stderr
    status, _, stderr = await run_command(command, "--config", str(config), "--database", database)
    assert status == 0, stderr


async def test_sweep_still_checks_the_options_it_uses(tmp_path: Path) -> None:
    """sweep refuses an out-of-range retention from the config file, naming it."""
    config = tmp_path / "mimi.toml"
    config.write_text("[server]\nsession_idle_timeout = -1\n")
    status, _, stderr = await run_command(
        "sweep", "--config", str(config), "--database", str(tmp_path / "ids.sqlite3")
    )
    refused_in_one_line(status, stderr, "session_idle_timeout")


@pytest.mark.parametrize("command", ["sweep", "rotate-signing-key"])
async def test_a_missing_database_file_is_refused_by_sweep_and_rotation(
    tmp_path: Path, command: str
) -> None:
    """`sweep` and `rotate-signing-key` on a path with no database exit 2 with one line and
    create nothing; `migrate` creates it."""
    database = tmp_path / "mistyped.sqlite3"
    status, _, stderr = await run_command(command, "--database", str(database))
    refused_in_one_line(status, stderr, f"no database at '{database}'; run migrate or serve first")
    assert list(tmp_path.iterdir()) == []
    status, _, stderr = await run_command("migrate", "--database", str(database))
    assert status == 0, stderr
    status, _, stderr = await run_command(command, "--database", str(database))
    assert status == 0, stderr


CLIENTS = """
[[clients]]
id = "hearing-app"
secret_env = "HEARING_APP_SECRET"
"""


@pytest.mark.parametrize("command", ["sweep", "rotate-signing-key", "migrate"])
async def test_commands_that_do_not_serve_need_no_client_secret(
    tmp_path: Path, command: str
) -> None:
    """`sweep`, `rotate-signing-key` and `migrate --config` run with [[clients]] whose secret
    variables are not set: they authenticate no client."""
    database = tmp_path / "ids.sqlite3"
    config = tmp_path / "mimi.toml"
    config.write_text(f"[server]\ndatabase = {str(database)!r}\n{CLIENTS}")
    assert (await run_command("migrate", "--database", str(database)))[0] == 0
    environment = {k: v for k, v in os.environ.items() if k != "HEARING_APP_SECRET"}
    status, _, stderr = await run_command(command, "--config", str(config), environment=environment)
    assert status == 0, stderr


def test_serve_still_needs_each_clients_secret(tmp_path: Path) -> None:
    """`serve --config` says which client's secret variable is not set (exit 2)."""
    config = tmp_path / "mimi.toml"
    config.write_text(CLIENTS)
    done = run_cli("serve", "--config", str(config))
    refused_in_one_line(
        done.returncode, done.stderr, "the environment variable HEARING_APP_SECRET is not set"
    )


# A client secret the server would take (about 200 bits) that a shell variable could be named
# (letters and digits, a letter first), and one that none could be (a '-'), each pasted where
# the variable's name goes.
_PASTED = "k" + secrets.token_urlsafe(32).replace("-", "a").replace("_", "b")
_PASTED_WITH_DASH = "hunter2-" + secrets.token_hex(4)


@pytest.mark.parametrize(
    ("entry", "pasted", "named"),
    [
        (f'secret_env = "{_PASTED}"', _PASTED, "secret_env"),
        (
            f'secret_env = "MIMI_A"\nprevious_secret_env = "{_PASTED}"',
            _PASTED,
            "previous_secret_env",
        ),
        (f'secret_env = "{_PASTED_WITH_DASH}"', _PASTED_WITH_DASH, "secret_env"),
    ],
    ids=["secret-as-secret-env", "secret-as-previous-secret-env", "not-a-variable-name"],
)
def test_a_secret_pasted_as_the_variable_name_is_never_shown(
    tmp_path: Path, entry: str, pasted: str, named: str
) -> None:
    """`serve --config` whose secret_env or previous_secret_env holds the secret itself (or
    anything no shell variable is named), which no variable is set by, exits 2 with one line
    naming the key, never the value."""
    config = tmp_path / "mimi.toml"
    config.write_text(f'[[clients]]\nid = "app"\n{entry}\n')
    done = run_cli("serve", "--config", str(config), environ={"MIMI_A": secrets.token_urlsafe(32)})
    refused_in_one_line(done.returncode, done.stderr, f"client 'app': {named} names")
    assert pasted not in done.stderr


@pytest.mark.parametrize(
    ("arguments", "file", "named"),
    [
        (["--client-id", "a:b"], "", "client id 'a:b' must not contain ':'"),
        ([], '[[clients]]\nid = "a:b"\nsecret_env = "MIMI_CLIENT_SECRET"\n', "'a:b'"),
        (
            [],
            '[[clients]]\nid = "app"\nsecret_env = "MIMI_CLIENT_SECRET"\n' * 2,
            "client 'app' is given twice",
        ),
        (
            ["--client-id", "app"],
            '[[clients]]\nid = "app"\nsecret_env = "MIMI_CLIENT_SECRET"\n',
            "twice",
        ),
    ],
    ids=["colon-flag", "colon-file", "twice-in-file", "twice-flag-and-file"],
)
def test_serve_refuses_a_client_no_app_could_use(
    tmp_path: Path, arguments: list[str], file: str, named: str
) -> None:
    """A client id with ':' (HTTP Basic ends the id there) or a client given twice: exit 2
    with one line, before the database is created."""
    config = tmp_path / "mimi.toml"
    config.write_text(file)
    database = tmp_path / "ids.sqlite3"
    done = run_cli("serve", *arguments, "--config", str(config), "--database", str(database))
    refused_in_one_line(done.returncode, done.stderr, named)
    assert not database.exists()


def test_a_secret_of_one_character_has_zero_bits() -> None:
    """A secret of one repeated character is reported as 0 bits of entropy, not -0."""
    done = run_cli("serve", "--client-id", "app", secret="s" * 40)
    refused_in_one_line(done.returncode, done.stderr, "(about 0 bits of entropy;")


@pytest.mark.parametrize("where", ["flag", "file"])
async def test_a_trusted_proxy_from_the_command_line_counts_limits_per_forwarded_client(
    tmp_path: Path, where: str
) -> None:
    """`serve --trusted-proxy 127.0.0.0/8` (or trusted_proxies in [server]): each client a
    proxy on loopback forwards for has its own sign-up limit."""
    secret = secrets.token_urlsafe(32)
    config = tmp_path / "mimi.toml"
    config.write_text('[server]\ntrusted_proxies = ["127.0.0.0/8", "::1"]\n')
    trust = ["--trusted-proxy", "127.0.0.0/8"] if where == "flag" else ["--config", str(config)]
    async with (
        serving(
            *("serve", "--port", "0", "--database", str(tmp_path / "ids.sqlite3")),
            *("--client-id", "app", "--max-anonymous-sign-ups-per-hour", "1", *trust),
            environment={**os.environ, "MIMI_CLIENT_SECRET": secret},
        ) as served,
        aiohttp.ClientSession() as http,
    ):
        sign_up = Caller(http, served.url, "app", secret).sign_up_forwarded_for
        assert await sign_up("203.0.113.1") == 201
        assert await sign_up("203.0.113.2") == 201
        assert await sign_up("203.0.113.1") == 429
        assert await sign_up("203.0.113.3, 127.0.0.5") == 201  # a trusted hop is skipped
    assert served.returncode == 0


def test_the_config_file_takes_every_option_with_its_rules_types() -> None:
    """[server] takes every server option (each ServerSettings field but the clock, and the
    command line's own), each with the types its rule reads: a float's may be an int."""
    settings = set(attrs.fields_dict(ServerSettings)) - {"clock"}
    assert set(SERVER_KEYS) == settings | set(COMMAND_LINE_RULES)
    assert SERVER_KEYS["access_token_ttl"] == (int, float)
    assert SERVER_KEYS["port"] == SERVER_KEYS["max_failed_log_ins_per_minute"] == (int,)
    assert SERVER_KEYS["issuer"] == SERVER_KEYS["rate_limit_storage"] == (str,)
    assert SERVER_KEYS["trusted_proxies"] == (list,)


PREVIOUS = "p" * 43  # a previous client secret, which no message may quote


@pytest.mark.parametrize(
    ("arguments", "environ", "named"),
    [
        (["--anonymous-only"], {}, "--anonymous-only applies to --client-id's client"),
        (["--client-secret", "s" * 43], {}, "--client-secret applies to --client-id's client"),
        (
            ["--previous-client-secret", PREVIOUS],
            {},
            "--previous-client-secret applies to --client-id's client",
        ),
        (
            [],
            {"MIMI_PREVIOUS_CLIENT_SECRET": PREVIOUS},
            "MIMI_PREVIOUS_CLIENT_SECRET applies to --client-id's client",
        ),
        (["--client-id", "a", "--client-id", "b"], {}, "--client-id is given more than once"),
        (["--client-id", " app "], {}, "client id ' app ' has whitespace around it"),
        (["--client-id", "app\n"], {}, "has whitespace around it"),
    ],
    ids=[
        "anonymous-only-alone",
        "secret-alone",
        "previous-secret-alone",
        "previous-secret-variable-alone",
        "two-ids",
        "spaces-around-id",
        "newline-id",
    ],
)
def test_serve_refuses_client_flags_it_would_ignore_or_no_app_could_use(
    tmp_path: Path, arguments: list[str], environ: dict[str, str], named: str
) -> None:
    """A flag of the --client-id client or MIMI_PREVIOUS_CLIENT_SECRET without it, --client-id
    twice (argparse kept the last), or an id with whitespace around it (HttpBackend refuses
    it) exits 2 with one line quoting no secret, before the database is created."""
    database = tmp_path / "ids.sqlite3"
    done = run_cli("serve", "--port", "0", "--database", str(database), *arguments, environ=environ)
    refused_in_one_line(done.returncode, done.stderr, named)
    assert PREVIOUS not in done.stderr
    assert not database.exists()


def test_a_config_client_id_with_whitespace_around_it_is_refused(tmp_path: Path) -> None:
    """A [[clients]] id with spaces around it exits 2 with one line naming it, as the flag."""
    config = tmp_path / "mimi.toml"
    config.write_text('[[clients]]\nid = " app "\nsecret_env = "MIMI_CLIENT_SECRET"\n')
    database = tmp_path / "ids.sqlite3"
    done = run_cli("serve", "--config", str(config), "--database", str(database))
    refused_in_one_line(done.returncode, done.stderr, "client id ' app ' has whitespace around")
    assert not database.exists()


@pytest.mark.parametrize("command", ["rotate-signing-key", "sweep", "migrate"])
def test_a_maintenance_command_refuses_an_in_memory_database(command: str) -> None:
    """rotate-signing-key, sweep and migrate on ``:memory:`` would change a database of their
    own, gone at exit, and say they succeeded: they exit 2 with one line instead."""
    done = run_cli(command, "--database", ":memory:")
    refused_in_one_line(done.returncode, done.stderr, "--database :memory: is a database no")
    assert done.stdout == ""


def test_the_config_file_in_server_md_is_valid(tmp_path: Path) -> None:
    """docs/server.md's example config file loads through the loader `serve --config` uses,
    and every value in it passes its option's rule and the server's settings: the documented
    file stays one a server takes."""
    document = (Path(__file__).parent.parent / "docs" / "server.md").read_text()
    block = re.search(r"^```toml\n(.*?)^```$", document, re.MULTILINE | re.DOTALL)
    assert block is not None, "server.md has no TOML config block"
    config = tmp_path / "mimi.toml"
    config.write_text(block[1])
    variables = re.findall(r'^secret_env = "(\w+)"', block[1], re.MULTILINE)
    assert variables, "the example names no client secret's environment variable"
    loaded = load_config_file(config, {name: secrets.token_urlsafe(32) for name in variables})
    assert [client.id for client in loaded.clients] == ["hearing-app", "web-app"]
    check_clients(loaded.clients)
    for name, value in loaded.server.items():
        rule = COMMAND_LINE_RULES.get(name)
        assert rule is None or rule.problem(value) is None, name
    fields = attrs.fields_dict(ServerSettings)
    ServerSettings(**{k: v for k, v in loaded.server.items() if k in fields})
