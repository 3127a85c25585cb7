"""The docs site (mkdocs.yml, docs/) builds with warnings as errors, every page in its nav."""

from __future__ import annotations

import html
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mkdocs", reason="the docs site needs the test extra: pip install -e '.[test]'")
pytest.importorskip("mkdocstrings", reason="the docs site needs mkdocstrings[python]")

from mkdocs.config import load_config  # after the skips: mkdocs may be missing

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once by `mkdocs build --strict` into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        # Material prints its end-of-life notice on every build; it is not about this site.
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return out


def _pages(nav: list[Any]) -> list[str]:
    pages: list[str] = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages.extend(_pages(value) if isinstance(value, list) else [value])
    return pages


def test_every_markdown_page_is_in_the_nav() -> None:
    """A page under docs/ left out of the nav would build without a warning, unreachable."""
    nav = load_config(str(ROOT / "mkdocs.yml")).nav
    assert isinstance(nav, list)
    in_nav = set(_pages(nav))
    on_disk = {str(path.relative_to(ROOT / "docs")) for path in (ROOT / "docs").rglob("*.md")}
    assert on_disk == in_nav


def test_the_site_builds_strictly_with_the_api_reference(site: Path) -> None:
    """The build has no warning, and the reference pages hold the public API's docstrings."""
    core = (site / "reference" / "mimi_reactive" / "index.html").read_text()
    for name in (
        "BlockingMimiCore",
        "SessionState",
        "AnonymousAuthManager",
        "Transition",
        "AnonymousLogInResult",
    ):
        assert f'id="mimi_reactive.{name}"' in core, name
    assert "Every published state; replays the current one on subscribe." in core
    for page, name in (
        ("testing", "mimi_reactive.testing.ScriptedBackend"),
        ("http", "mimi_reactive.backends.http.HttpBackend"),
        ("firebase", "mimi_reactive.backends.firebase.FirebaseBackend"),
        ("verify", "mimi_reactive.verify.AccessTokenVerifier"),
        ("server", "mimi_reactive.server.IdentityServer"),
    ):
        assert f'id="{name}"' in (site / "reference" / page / "index.html").read_text(), name


def test_the_error_tree_is_on_the_site(site: Path) -> None:
    """The reference has the error tree, drawn from mimi_reactive._exceptions' docstring (so
    it is the one test_error_tree checks against the code), not a copy that could drift."""
    from mimi_reactive import _exceptions

    page = (site / "reference" / "errors" / "index.html").read_text()
    drawn = (_exceptions.__doc__ or "").split("```text\n")[1].split("```")[0]
    for line in drawn.splitlines():
        assert html.escape(line, quote=False) in page, line


def test_the_state_diagram_renders_as_mermaid(site: Path) -> None:
    """The architecture page hands the reducer's diagram to Mermaid, not as a code listing."""
    page = (site / "architecture" / "index.html").read_text()
    assert '<pre class="mermaid"><code>stateDiagram-v2' in page


def test_the_pictures_are_on_the_site(site: Path) -> None:
    """The Textual screenshot and the benchmark plots are published and shown."""
    assert (site / "textual-session.svg").read_text().startswith("<svg")
    assert 'src="../textual-session.svg"' in (site / "observing" / "index.html").read_text()
    assert 'src="../publish-cost.png"' in (site / "benchmarks" / "index.html").read_text()
    for page in ("benchmarks", "scaling"):
        html = (site / page / "index.html").read_text()
        for plot in ("server-users.png", "server-workers.png"):
            assert f'src="../{plot}"' in html, (page, plot)
