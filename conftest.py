"""Runs every Python block in README.md and docs/*.md, as written, with Sybil.

Blocks that talk to an identity service find its address in ``url`` and the client secret
of ``my-app`` in ``secret``: one reference server per document, in-process on loopback, on an
event loop of its own thread (the blocks run their own ``asyncio.run``). ``HOME`` points at a
temporary folder, so a block's ``~/.config/...`` never touches the real one.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import threading
from typing import Any

from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser

from mimi_reactive.server import IdentityServer


class _Service:
    """The reference server on a loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.secret = secrets.token_urlsafe(32)
        self.folder = tempfile.TemporaryDirectory()
        self.server = IdentityServer(
            client_id="my-app",
            client_secret=self.secret,
            database=os.path.join(self.folder.name, "identity.sqlite3"),
        )
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(60)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()
        self.folder.cleanup()


def _setup(namespace: dict[str, Any]) -> None:
    service = _Service()
    home = tempfile.TemporaryDirectory()
    namespace.update(
        url=service.server.url,
        secret=service.secret,
        _service=service,
        _home=home,
        _real_home=os.environ.get("HOME"),
    )
    os.environ["HOME"] = home.name


def _teardown(namespace: dict[str, Any]) -> None:
    namespace["_service"].stop()
    if namespace["_real_home"] is None:
        os.environ.pop("HOME", None)
    else:
        os.environ["HOME"] = namespace["_real_home"]
    namespace["_home"].cleanup()


pytest_collect_file = Sybil(
    parsers=[PythonCodeBlockParser()],
    patterns=["README.md", "docs/*.md"],
    setup=_setup,
    teardown=_teardown,
).pytest()
