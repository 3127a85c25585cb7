"""What the command line loads: the grammar's answers (--help, --version, a refused argument)
need none of the server, and each command loads what it runs. Start-up time, checked as the
modules a run leaves in sys.modules rather than as a timing a busy machine would blur."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Runs main(argv) as `mimi-reactive` would, then prints its exit status and sys.modules.
_PROBE = """
import contextlib, io, json, sys
from mimi_reactive._cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        status = main(sys.argv[1:])
    except SystemExit as exit:
        status = exit.code
print(json.dumps({"status": status, "modules": sorted(sys.modules)}))
"""

# What the server and the demo bring in, and the slow import of structlog (it loads rich).
_HEAVY = (
    "aiohttp",
    "argon2",
    "asyncpg",
    "cryptography",
    "gunicorn",
    "jwt",
    "limits",
    "pydantic",
    "structlog",
    "mimi_reactive._demo",
    "mimi_reactive._server._context",
    "mimi_reactive.server",
)


def heavy_modules_loaded_by(*argv: str) -> tuple[int, list[str]]:
    """The exit status of `mimi-reactive ARGV`, and the heavy modules it imported."""
    env = {k: v for k, v in os.environ.items() if k != "MIMI_CLIENT_SECRET"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    report = json.loads(done.stdout)
    # A package's submodule is imported with the package, so the names themselves suffice.
    return report["status"], [name for name in _HEAVY if name in report["modules"]]


@pytest.mark.parametrize(
    ("argv", "status"),
    [
        (["--version"], 0),
        (["--help"], 0),
        (["serve", "--help"], 0),
        (["sweep", "--help"], 0),
        (["demo", "--help"], 0),
        (["serve", "--port", "x"], 2),
        (["bogus"], 2),
    ],
    ids=["version", "help", "serve-help", "sweep-help", "demo-help", "bad-port", "bad-command"],
)
def test_the_grammars_answers_load_nothing_heavy(argv: list[str], status: int) -> None:
    """--version, every --help and a refused argument import none of the server, the demo,
    nor structlog: they cost the package's import and argparse."""
    assert heavy_modules_loaded_by(*argv) == (status, [])


def test_a_refused_config_does_not_load_the_server() -> None:
    """`serve` without a client is refused before logging is set up (the config file may
    choose its format) and before the server loads."""
    status, heavy = heavy_modules_loaded_by("serve")
    assert status == 2
    assert heavy == []


def test_a_command_loads_what_it_runs(tmp_path: Path) -> None:
    """`migrate` loads the server (so the probe above can see it), but not the demo."""
    status, heavy = heavy_modules_loaded_by("migrate", "--database", str(tmp_path / "db.sqlite3"))
    assert status == 0
    assert "mimi_reactive.server" in heavy
    assert "aiohttp" in heavy
    assert "mimi_reactive._demo" not in heavy
