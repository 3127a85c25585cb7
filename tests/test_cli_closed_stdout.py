"""The command line with its stdout closed by the reader (`mimi-reactive demo | head -3`), as
real processes: the command stops, cleans up and exits 1, with nothing on stderr (no
BrokenPipeError traceback, no subscriber failure logged)."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from mimi_reactive.server import IdentityServer


def run_to_closed_stdout(
    arguments: list[str], *, after: str | None, unbuffered: bool, temporary: Path
) -> tuple[int, str]:
    """Run `mimi-reactive ARGUMENTS` with ``temporary`` for its temporary files, closing its
    stdout pipe once it printed the line starting with ``after`` (``None``: before it printed
    anything); its exit status and stderr."""
    environment = {
        **os.environ,
        "MIMI_CLIENT_SECRET": secrets.token_urlsafe(32),
        "TMPDIR": str(temporary),
    }
    environment.pop("PYTHONUNBUFFERED", None)
    if unbuffered:  # each line written as it is printed, not at exit
        environment["PYTHONUNBUFFERED"] = "1"
    with subprocess.Popen(
        [sys.executable, "-m", "mimi_reactive", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    ) as process:
        assert process.stdout is not None
        try:
            if after is not None:
                # Bounded by the test's timeout: a line the command never prints ends it.
                while not (line := process.stdout.readline()).strip().startswith(after):
                    assert line, f"the command ended before printing {after!r}"
            process.stdout.close()
            _, stderr = process.communicate(timeout=60)
        except BaseException:
            process.kill()
            raise
    return process.returncode, stderr


@pytest.mark.parametrize(
    "after",
    [
        "reference server on",
        # Its next line is a subscriber's (the state printed as the app subscribes).
        "1. first launch",
        "3. reinstall",
        "7. the person deletes",
    ],
)
def test_the_demo_stops_quietly_once_its_reader_goes(tmp_path: Path, after: str) -> None:
    """`demo | head` whose reader went once the line starting with ``after`` was printed:
    the demo stops, its temporary folder removed, exit status 1, nothing on stderr."""
    status, stderr = run_to_closed_stdout(
        ["demo"], after=after, unbuffered=True, temporary=tmp_path
    )
    assert (status, stderr) == (1, "")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("command", "database"),
    [
        (["demo"], None),
        (["--version"], None),
        (["serve", "--help"], None),
        (["migrate"], "new"),
        (["sweep"], "migrated"),  # sweep and rotate-signing-key refuse a missing file
        (["rotate-signing-key"], "migrated"),
        (["serve", "--client-id", "app", "--port", "0"], "new"),
    ],
)
def test_a_command_whose_stdout_is_closed_exits_1_quietly(
    tmp_path: Path, command: list[str], database: str | None
) -> None:
    """A command whose stdout reader went before it printed (`| true`), its output buffered
    to the end: exit status 1 once it stopped (serve: at its "serving on" line), nothing on
    stderr (not the interpreter's "Exception ignored" at exit)."""
    if database is not None:
        path = tmp_path / "ids.sqlite3"
        if database == "migrated":
            asyncio.run(IdentityServer.migrate_database(str(path)))
        command = [*command, "--database", str(path)]
    status, stderr = run_to_closed_stdout(command, after=None, unbuffered=False, temporary=tmp_path)
    assert (status, stderr) == (1, "")
