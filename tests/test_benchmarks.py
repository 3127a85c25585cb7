"""A smoke run of benchmarks/session.py: every row of its table, and the plot."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transitions", reason="benchmark-only dependency: pip install -e '.[bench]'")
pytest.importorskip("statemachine", reason="benchmark-only dependency: pip install -e '.[bench]'")
pytest.importorskip("matplotlib", reason="benchmark-only dependency: pip install -e '.[bench]'")

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "session.py"

ROWS = (
    "publish to 1 subscriber vs BehaviorSubject.on_next",
    "publish to 10 subscribers vs BehaviorSubject.on_next",
    "publish to 100 subscribers vs BehaviorSubject.on_next",
    "command, already logged in, vs transitions AsyncMachine",
    "command, already logged in, vs transitions Machine (sync)",
    "command, already logged in, vs python-statemachine",
    "switch user on ScriptedBackend vs AsyncMachine log out + log in",
    "switch user, backend doing nothing, vs AsyncMachine log out + log in",
    "log-in over loopback: client CPU vs raw aiohttp",
    "log-in over loopback: p50 latency vs raw aiohttp",
    "import mimi_reactive vs the modules it pulls in",
)


@pytest.mark.slow
def test_quick_run_prints_every_row_and_draws_the_plot_only_where_asked(tmp_path: Path) -> None:
    """The client core benchmark's quick run prints every row and draws its plot at --plot,
    never over the committed docs/publish-cost.png (run from a copy of the tree, whose docs/
    stays empty)."""
    copy = tmp_path / "benchmarks"
    copy.mkdir()
    for name in ("session.py", "_serving.py"):
        shutil.copy(BENCHMARK.parent / name, copy / name)
    docs = tmp_path / "docs"
    docs.mkdir()
    plot = tmp_path / "publish-cost.png"
    done = subprocess.run(
        [sys.executable, str(copy / "session.py"), "--quick", "--plot", str(plot)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for row in ROWS:
        assert row in done.stdout, f"missing row {row!r}:\n{done.stdout}"
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert list(docs.iterdir()) == []
