"""Every Python block of README.md and docs/*.md passes mypy --strict on its own, as an app
that copies it would check it (conftest.py runs the same blocks; this types them)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from mypy import api

from .helpers import REPO

# A block's names from conftest.py's namespace, typed as an app's own would be.
_NAMESPACE = "url: str = ''\nsecret: str = ''\nfirebase_env: str | None = None\n"

_BLOCK = re.compile(r"^( *)```python\n(.*?)^ *```", re.S | re.M)


def _blocks() -> dict[str, str]:
    """Each block by a module name saying where it is (``README_51``: README.md, line 51)."""
    found: dict[str, str] = {}
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            name = re.sub(r"\W", "_", f"{page.stem}_{line}")
            found[name] = _NAMESPACE + textwrap.dedent(match.group(2))
    return found


def test_every_documented_block_passes_mypy_strict(tmp_path: Path) -> None:
    """mypy --strict accepts each documented block as written (a block's error names its
    page and line)."""
    blocks = _blocks()
    assert len(blocks) >= 20, "the blocks were not found: the test would prove nothing"
    for name, code in blocks.items():
        (tmp_path / f"{name}.py").write_text(code, encoding="utf-8")
    report, errors, status = api.run(
        [
            "--strict",
            "--config-file=",  # the blocks are an app's code, not under the project's config
            f"--cache-dir={tmp_path / '.mypy_cache'}",
            *sorted(str(path) for path in tmp_path.glob("*.py")),
        ]
    )
    assert status == 0, report + errors
