"""Runs every Python block in README.md, docs/*.md and the package's docstrings, as written,
with Sybil.

Blocks that talk to an identity service find its address in ``url`` and the client secret
of ``my-app`` in ``secret``: one reference server per document, in-process on loopback, on an
event loop of its own thread (the blocks run their own ``asyncio.run``). ``HOME`` points at a
temporary folder, so a block's ``~/.config/...`` never touches the real one. Firebase blocks
run against the Auth emulator through ``FIREBASE_AUTH_EMULATOR_HOST``, as an app's would, and
are skipped (``firebase_env is None``) only where Node.js is missing.

The Firebase Auth emulator's fixtures are registered here, at the root, so the documents and
the tests share one emulator per session.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from typing import Any

import pytest
from sybil import Sybil
from sybil.document import PythonDocStringDocument
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

from tests.firebase_emulator import auth_emulator, firebase_emulator, missing_tools
from tests.server_helpers import BackgroundServer

__all__ = ["auth_emulator", "firebase_emulator"]  # fixtures for the tests and the documents


@pytest.fixture(scope="session")
def firebase_emulator_host(request: pytest.FixtureRequest) -> str | None:
    """The running Auth emulator's host:port, or None where Node.js is missing."""
    if missing_tools() is not None:
        return None
    host: str = request.getfixturevalue("auth_emulator").host
    return host


@pytest.fixture
def firebase_env(firebase_emulator_host: str | None, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """FIREBASE_AUTH_EMULATOR_HOST set for one document block, as an app's would be."""
    if firebase_emulator_host is not None:
        monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", firebase_emulator_host)
    return firebase_emulator_host


def _setup(namespace: dict[str, Any]) -> None:
    secret = secrets.token_urlsafe(32)
    folder = tempfile.TemporaryDirectory()
    service = BackgroundServer(
        client_id="my-app",
        client_secret=secret,
        database=os.path.join(folder.name, "identity.sqlite3"),
    )
    home = tempfile.TemporaryDirectory()
    namespace.update(
        url=service.server.url,
        secret=secret,
        _service=service,
        _folder=folder,
        _home=home,
        _real_home=os.environ.get("HOME"),
    )
    os.environ["HOME"] = home.name


def _teardown(namespace: dict[str, Any]) -> None:
    namespace["_service"].stop()
    namespace["_folder"].cleanup()
    if namespace["_real_home"] is None:
        os.environ.pop("HOME", None)
    else:
        os.environ["HOME"] = namespace["_real_home"]
    namespace["_home"].cleanup()


_documents = Sybil(
    parsers=[PythonCodeBlockParser(), SkipParser()],
    patterns=["README.md", "docs/*.md"],
    setup=_setup,
    teardown=_teardown,
    fixtures=["firebase_env"],
)
# The package's docstrings: the API reference pages show them, so their blocks run too.
_docstrings = Sybil(
    parsers=[PythonCodeBlockParser(), SkipParser()],
    patterns=["mimi_reactive/*.py", "mimi_reactive/**/*.py"],
    document_types={".py": PythonDocStringDocument},
    setup=_setup,
    teardown=_teardown,
    name="docstrings",
)
pytest_collect_file = (_documents + _docstrings).pytest()
