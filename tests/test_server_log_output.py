"""What `serve` writes on stderr: one format for our events, aiohttp's and gunicorn's (console or
JSON, stamped in UTC), client faults at info, harmless arguments kept and no secret."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mimi_reactive._server._logs import ClientFaultFilter, RedactingFilter, http_logger

from .raw_http import build_request, send_raw
from .server_helpers import Caller, serving
from .test_cli import run_cli

CLIENT_ID = "log-app"
TOKEN = secrets.token_urlsafe(32)
SECRET = secrets.token_urlsafe(32)
BASIC = b"Basic " + base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode())

# (template, arguments, the message written)
REDACTIONS: list[tuple[str, tuple[Any, ...], str]] = [
    ("Booting worker with pid: %s", (4242,), "Booting worker with pid: 4242"),
    ("Handling signal: %s", ("term",), "Handling signal: term"),
    ("Worker (pid:%s) was sent %s!", (4242, "SIGKILL"), "Worker (pid:4242) was sent SIGKILL!"),
    ("Worker (pid:%s) exited with code %d.", (4242, 3), "Worker (pid:4242) exited with code 3."),
    ("took %.1f s", (0.25,), "took 0.2 s"),
    ("Error handling request from %s", ("127.0.0.1",), "Error handling request from 127.0.0.1"),
    ("from %s", ("2001:db8::1",), "from 2001:db8::1"),
    ("from %r", (TOKEN,), "from <redacted>"),
    ("header %s", (BASIC.decode(),), "header <redacted>"),
    ("url %s", (f"/v1/token?refresh_token={TOKEN}",), "url <redacted>"),
    ("bytes %s", (TOKEN.encode(),), "bytes <redacted>"),
    ("peer %s then %s", ("127.0.0.1", TOKEN), "peer 127.0.0.1 then <redacted>"),
    ("%s%% of %s", (50, TOKEN), "50% of <redacted>"),
    ("100%% %s", (TOKEN,), "100% <redacted>"),
    ("%(secret)s", ({"secret": TOKEN},), "<redacted>"),
    ("%*d", (5, 42), "<redacted>"),
    ("signal-like %s", ("SIGTERM " + TOKEN,), "signal-like <redacted>"),
    ("Exception in callback %s", (object(),), "Exception in callback <redacted>"),
    ("no arguments, 100%", (), "no arguments, 100%"),
    # gunicorn's own words, which an operator needs to read:
    (
        "Listening at: %s (%s)",
        ("http://127.0.0.1:80", 42),
        "Listening at: http://127.0.0.1:80 (42)",
    ),
    ("Shutting down: %s", ("Master",), "Shutting down: Master"),
    ("Reason: %s", ("Worker failed to boot.",), "Reason: Worker failed to boot."),
    ("Starting gunicorn %s", ("25.1.0",), "Starting gunicorn 25.1.0"),
    ("Using worker: %s", ("aiohttp.GunicornWebWorker",), "Using worker: aiohttp.GunicornWebWorker"),
    ("Reasons: %s", ("Worker failed to boot.",), "Reasons: <redacted>"),  # not one of them
]
REDACTED_MESSAGES: list[tuple[object, str]] = [
    ({"secret": TOKEN}, "dict"),  # a message that is not a string: its type only
    (ValueError(TOKEN), "ValueError"),
]


@pytest.mark.parametrize(("template", "args", "written"), REDACTIONS)
def test_redaction_keeps_numbers_addresses_and_signals_only(
    template: str, args: tuple[Any, ...], written: str
) -> None:
    """A stdlib record keeps its numbers, IP addresses and signal names, and nothing else of
    its arguments, but for gunicorn's own lines; filtered twice it says the same."""
    record = logging.LogRecord("gunicorn.error", logging.INFO, __file__, 1, template, args, None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == written
    assert RedactingFilter().filter(record)
    assert record.getMessage() == written


def test_only_gunicorns_own_lines_are_kept_whole() -> None:
    """gunicorn's own line templates are kept whole from gunicorn's logger only."""
    record = logging.LogRecord(
        "aiohttp.server", logging.INFO, __file__, 1, "Reason: %s", (TOKEN,), None
    )
    RedactingFilter().filter(record)
    assert record.getMessage() == "Reason: <redacted>"


@pytest.mark.parametrize(("message", "written"), REDACTED_MESSAGES)
def test_a_message_that_is_not_a_string_is_written_as_its_type(
    message: object, written: str
) -> None:
    """A record whose message is an object (a dict, an exception) is written as its type."""
    record = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, message, (), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == written


def test_redaction_names_the_exception_without_its_message() -> None:
    """A record with an exception keeps the exception's type, not its message or traceback."""
    try:
        raise ValueError(TOKEN)
    except ValueError as error:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed for %s", (TOKEN,), (ValueError, error, None)
        )
    RedactingFilter().filter(record)
    assert record.getMessage() == "failed for <redacted> (ValueError)"
    assert record.exc_info is None


# Requests aiohttp's parser refuses, each carrying the client secret or a token.
REFUSED = {
    "control character": build_request("POST", "/v1/token", [(b"Authorization", BASIC + b"\x01")]),
    "header too long": build_request("GET", "/health", [(b"Authorization", BASIC * 400)]),
    "content-length and chunked": build_request(
        "POST", "/v1/token", [(b"Authorization", BASIC), (b"Transfer-Encoding", b"chunked")]
    ),
    "NUL in the path": f"GET /v1/{TOKEN}\x00 HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "negative length": (
        f"POST /v1/token HTTP/1.1\r\nX: {TOKEN}\r\nContent-Length: -1\r\n\r\n".encode()
    ),
}
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)")


async def send_refused_and_one_call(url: str) -> None:
    """Each ``REFUSED`` request, then one authenticated call that succeeds."""
    for raw in REFUSED.values():
        with contextlib.suppress(ConnectionError, TimeoutError):
            answer = await send_raw(url, raw)
            assert answer is None or answer.status == 400
    async with aiohttp.ClientSession() as http:
        await Caller(http, url, CLIENT_ID, SECRET).anonymous_user()


def json_lines(stderr: bytes) -> list[dict[str, Any]]:
    """Each line of ``stderr`` as the JSON object it must be, stamped in UTC with a level and
    a logger."""
    lines = [json.loads(line) for line in stderr.decode().splitlines()]
    for line in lines:
        assert ISO_UTC.fullmatch(line["timestamp"]), line
        assert line["level"] in ("debug", "info", "warning", "error", "critical"), line
        assert line["logger"], line
    return lines


@pytest.mark.parametrize(
    ("level", "written"), [("debug", True), ("info", True), ("warning", False)]
)
async def test_serve_log_format_json_writes_one_object_a_line(
    level: str, written: bool, database_url: str
) -> None:
    """`serve --log-format json`: every stderr line is a JSON object with an ISO 8601 UTC
    timestamp, level and logger; our events and aiohttp's refusals are there, the refusals at
    info naming the peer and the parser's exception; nothing at error, no secret."""
    async with serving(
        *("--log-level", level, "serve", "--log-format", "json", "--port", "0"),
        *("--database", database_url, "--client-id", CLIENT_ID),
        environment={**os.environ, "MIMI_CLIENT_SECRET": SECRET, "PYTHONASYNCIODEBUG": "1"},
    ) as served:
        await send_refused_and_one_call(served.url)
    assert served.returncode == 0, served.stderr
    lines = json_lines(served.stderr)
    refusals = [line for line in lines if line["logger"] == "mimi_reactive.server.http"]
    if written:
        assert len(refusals) == len(REFUSED), refusals
        for line in refusals:
            assert line["level"] == "info"
            assert re.fullmatch(r"Error handling request from 127\.0\.0\.1 \(\w+\)", line["event"])
        ours = {line["event"] for line in lines if line["logger"] == "mimi_reactive.server"}
        assert "server.started" in ours
        assert ("http.request" in ours) is (level == "debug")
    else:
        assert refusals == []
    assert not [line for line in lines if line["level"] in ("error", "critical")]
    for secret in (SECRET.encode(), BASIC, TOKEN.encode()):
        assert secret not in served.stderr + served.stdout


async def test_serve_writes_console_lines_stamped_in_utc_by_default(database_url: str) -> None:
    """`serve` without --log-format writes console lines, ours and aiohttp's alike, each
    starting with an ISO 8601 UTC timestamp, without colour codes when stderr is a pipe."""
    async with serving(
        *("--log-level", "info", "serve", "--port", "0"),
        *("--database", database_url, "--client-id", CLIENT_ID),
        environment={**os.environ, "MIMI_CLIENT_SECRET": SECRET},
    ) as served:
        await send_refused_and_one_call(served.url)
    assert served.returncode == 0, served.stderr
    lines = served.stderr.decode().splitlines()
    assert lines
    for line in lines:
        assert ISO_UTC.match(line), line
        assert "\x1b[" not in line
    assert sum("Error handling request from 127.0.0.1" in line for line in lines) == len(REFUSED)
    assert not [line for line in lines if "[error" in line]


async def test_workers_log_format_json_covers_gunicorn(postgres_url: str, redis_url: str) -> None:
    """`serve --workers 2 --log-format json`: gunicorn's lines are JSON objects too, keeping
    the worker pids and signal names, as are aiohttp's refusals from each worker."""
    async with serving(
        *("--log-level", "info", "serve", "--log-format", "json", "--port", "0"),
        *("--workers", "2", "--database", postgres_url, "--rate-limit-storage", redis_url),
        *("--client-id", CLIENT_ID),
        environment={**os.environ, "MIMI_CLIENT_SECRET": SECRET},
    ) as served:
        await send_refused_and_one_call(served.url)
    assert served.returncode == 0, served.stderr
    lines = json_lines(served.stderr)
    gunicorn = [line["event"] for line in lines if line["logger"] == "gunicorn.error"]
    assert sum(bool(re.fullmatch(r"Booting worker with pid: \d+", e)) for e in gunicorn) == 2
    assert "Handling signal: term" in gunicorn
    refusals = [line for line in lines if line["logger"] == "mimi_reactive.server.http"]
    assert len(refusals) == len(REFUSED)
    for secret in (SECRET.encode(), BASIC, TOKEN.encode()):
        assert secret not in served.stderr + served.stdout


async def test_the_config_file_chooses_the_log_format_and_the_flag_wins(tmp_path: Path) -> None:
    """``log_format = "json"`` in [server] writes JSON lines; ``--log-format console`` given
    too writes console lines."""
    config = tmp_path / "mimi.toml"
    config.write_text('[server]\nlog_format = "json"\n')
    for flag, parse in (((), json_lines), (("--log-format", "console"), None)):
        async with serving(
            *("--log-level", "info", "serve", "--config", str(config), *flag, "--port", "0"),
            *("--database", str(tmp_path / "ids.sqlite3"), "--client-id", CLIENT_ID),
            environment={**os.environ, "MIMI_CLIENT_SECRET": SECRET},
        ) as served:
            pass
        assert served.returncode == 0, served.stderr
        assert served.stderr
        if parse is not None:
            parse(served.stderr)
        else:
            assert not served.stderr.startswith(b"{")


@pytest.mark.parametrize("value", ["xml", "JSON", ""])
def test_an_unknown_log_format_flag_is_refused_in_one_line(value: str) -> None:
    """`serve --log-format` other than console or json exits 2 with one line naming both."""
    done = run_cli("serve", "--client-id", "app", "--log-format", value)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "must be console or json" in done.stderr


def test_redaction_is_added_beside_an_apps_own_filter() -> None:
    """A filter the app put on aiohttp's server logger does not stop ours being added."""
    logger = logging.getLogger("mimi_reactive.server.http")
    before = list(logger.filters)
    foreign = logging.Filter("somewhere-else")
    for kept in before:
        logger.removeFilter(kept)
    logger.addFilter(foreign)
    try:
        kinds = [type(kept) for kept in http_logger().filters]
        assert kinds == [logging.Filter, ClientFaultFilter, RedactingFilter]
        assert [type(kept) for kept in http_logger().filters] == kinds  # added once
    finally:
        for kept in list(logger.filters):
            logger.removeFilter(kept)
        for kept in before:
            logger.addFilter(kept)


# Logs many long lines, ours and a stdlib logger's, as `serve` configures them, in JSON.
_MANY_LINES = """
import logging, sys
import structlog
from mimi_reactive._cli import _configure_logging
_configure_logging("info", "json")
ours, theirs = structlog.get_logger("mimi_reactive.server"), logging.getLogger("gunicorn.error")
for i in range(int(sys.argv[1])):
    ours.warning("test.line", i=i, pad="x" * 300)
    theirs.warning("Worker (pid:%s) line", i)
"""


@pytest.mark.parametrize("into", ["file", "pipe"])
def test_processes_sharing_stderr_write_whole_lines(into: str, tmp_path: Path) -> None:
    """Two processes logging at once (as workers do) into one stderr, a file or a pipe, each
    unbuffered (PYTHONUNBUFFERED, as containers set it): every line is one JSON object."""
    lines = 3000
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-c", _MANY_LINES, str(lines)]
    output = tmp_path / "stderr"
    with output.open("wb") as shared:
        reader, writer = os.pipe() if into == "pipe" else (-1, shared.fileno())
        writers = [subprocess.Popen(command, stderr=writer, env=environment) for _ in range(2)]
        if into == "pipe":
            os.close(writer)
            with open(reader, "rb") as pipe:
                shared.write(pipe.read())
        for each in writers:
            assert each.wait(timeout=120) == 0
    written = output.read_text().splitlines()
    assert len(written) == 2 * 2 * lines
    for line in written:
        json.loads(line)
