"""Smoke runs of the server benchmarks: benchmarks/server.py (issue 12), and
benchmarks/server_abuse.py and benchmarks/server_retention.py (issue 11)."""

from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import POSTGRES_URL

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
REDIS = ("127.0.0.1", 6379)

ROWS = {
    "server_abuse.py": (
        "bounded pool (default: 1 worker, queue 8)",
        "before: unbounded pool",
        "bounded pool, flood waiting Retry-After on 503",
        "unloaded",
        "flooded",
        "x 503 of",
        "real password log-in under the flood",
    ),
    "server_retention.py": (
        "sweeper on",
        "sweeper off",
        "live bytes after 400 log-ins",
        "after VACUUM, bytes",
        "bytes per user (4 users)",
        "bytes per log-in (400)",
        "one `mimi-reactive sweep`",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("benchmark", sorted(ROWS))
def test_quick_run_exits_0_and_prints_its_rows(benchmark: str) -> None:
    """Each server benchmark's quick run exits 0 and prints every row it promises."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / benchmark), "--quick"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for row in ROWS[benchmark]:
        assert row in done.stdout, f"missing row {row!r}:\n{done.stdout}"


# benchmarks/server.py: one --quick run (every part), its tables checked by the tests below.

RATIO = re.compile(r"\s\d+\.\d\dx(\s|$)")
SPEED_CALLS = ("GET /health", "log-in by anonymous id", "anonymous sign-up")
DISK_ROWS = (
    "WAL, largest of",
    "WAL, median sample",
    "live bytes per user after N =",
    "live bytes per user after 2N =",
    "live bytes per user after 4N =",
    "database file (no WAL) per user after 4N",
)


def redis_unreachable() -> str | None:
    try:
        socket.create_connection(REDIS, timeout=2).close()
    except OSError as error:
        return f"no Redis at {REDIS[0]}:{REDIS[1]} ({type(error).__name__})"
    return None


@pytest.fixture(scope="module")
def server_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """One ``benchmarks/server.py --quick`` run: its output, and the folder of its plots.

    Without PostgreSQL (or Redis) the script skips the rows that need it, saying why.
    """
    plots = tmp_path_factory.mktemp("plots")
    done = subprocess.run(
        [
            *(sys.executable, str(BENCHMARKS / "server.py"), "--quick"),
            *("--postgres", POSTGRES_URL, "--plots", str(plots)),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, plots


def table(output: str, part: str) -> list[str]:
    """The lines of one part's table: from its title to the blank line after it."""
    lines = output.splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith(f"{part}: ")), None)
    assert first is not None, f"no {part} table:\n{output}"
    rest = lines[first:]
    return rest[: rest.index("")] if "" in rest else rest


def row_with_ratio(lines: list[str], *words: str) -> str:
    """The row that starts with ``words[0]`` and holds all of ``words``; it shows a ratio."""
    found = [line for line in lines if line.startswith(words[0]) and all(w in line for w in words)]
    assert found, f"no row with {words}:\n" + "\n".join(lines)
    assert RATIO.search(found[0]), f"no ratio in {found[0]!r}"
    return found[0]


@pytest.mark.slow
def test_quick_run_prints_each_sqlite_figure_beside_its_baseline(
    server_run: tuple[str, Path],
) -> None:
    """Speed, users and disk on SQLite each print a figure beside its baseline and the ratio,
    and no sweep fails under load."""
    output, _ = server_run
    assert re.search(r"^load generator: (wrk|Python)", output, re.MULTILINE), output
    speed = table(output, "speed")
    assert "bare req/s  ratio" in speed[1]
    for call in SPEED_CALLS:
        row_with_ratio(speed, call, "SQLite")
    users = table(output, "users")
    for count in ("10^2", "10^3"):
        row_with_ratio(users, "SQLite", count)
    disk = table(output, "disk")
    for label in DISK_ROWS:
        row_with_ratio(disk, label)
    assert re.search(r"sweeps: \d+, failed: 0;", output), "a sweep failed under load"


@pytest.mark.slow
def test_quick_run_prints_the_postgresql_figures_and_workers(
    server_run: tuple[str, Path], postgres_unreachable: str | None
) -> None:
    """On PostgreSQL the same figures print beside their baselines, and workers beside one."""
    output, _ = server_run
    if postgres_unreachable is not None:
        assert "PostgreSQL rows skipped" in output
        pytest.skip(postgres_unreachable)
    speed = table(output, "speed")
    for call in SPEED_CALLS:
        row_with_ratio(speed, call, "PostgreSQL")
    users = table(output, "users")
    for count in ("10^2", "10^3"):
        row_with_ratio(users, "PostgreSQL", count)
    if (reason := redis_unreachable()) is not None:
        pytest.skip(reason)
    workers = table(output, "workers")
    for count in ("1", "2"):
        for call in ("bare aiohttp handler", *SPEED_CALLS[1:]):
            row_with_ratio(workers, count, call)


@pytest.mark.slow
def test_quick_run_writes_the_plots(server_run: tuple[str, Path]) -> None:
    """The quick run draws requests/s and p99 against users (and against workers) as PNGs."""
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("benchmark-only dependency: pip install -e '.[bench]'")
    output, plots = server_run
    assert (plots / "server-users.png").read_bytes().startswith(b"\x89PNG")
    if "workers: skipped" not in output:
        assert (plots / "server-workers.png").read_bytes().startswith(b"\x89PNG")
