"""A smoke run of benchmarks/server_abuse.py and benchmarks/server_retention.py (issue 11)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

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
