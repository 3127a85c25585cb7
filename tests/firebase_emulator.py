"""The Firebase Auth emulator for tests: installed once into a cache folder, one per session.

``firebase-tools`` comes from the npm registry the first time (about 260 MB, a minute or two)
into ``~/.cache/mimi_reactive/firebase-tools`` (or ``$XDG_CACHE_HOME``); later runs start it
from there offline. scripts/test installs it before pytest starts (``python -m
tests.firebase_emulator --install``); pytest run directly installs it in the first Firebase
test's setup instead. Without Node.js and npm the Firebase tests skip and say why.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import filelock
import pytest

FIREBASE_TOOLS = "firebase-tools@15.34.2"
FIREBASE_VERSION = FIREBASE_TOOLS.rsplit("@", 1)[1]
PROJECT = "demo-test"
API_KEY = "emulator-api-key"
"""Any non-empty key works on the emulator; Firebase's SDKs need one all the same."""
START_DEADLINE = 120.0
INSTALL_DEADLINE = 900.0


# Read once, at import: the documents' tests point HOME at a temporary folder per document,
# and an emulator installed or started under one would lose its files when that folder goes.
_CACHE_BASE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
_HOME = str(Path.home())


def cache_folder() -> Path:
    """Where firebase-tools is installed, outside the repository and shared by worktrees."""
    return _CACHE_BASE / "mimi_reactive" / "firebase-tools"


def missing_tools() -> str | None:
    """Why the emulator cannot run here, or None if it can."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"the Firebase Auth emulator needs Node.js and npm; {tool} is not on PATH"
    return None


def installed_firebase() -> Path:
    """The ``firebase`` command, installed from npm into the cache folder the first time."""
    folder = cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    command = folder / "node_modules" / ".bin" / "firebase"
    with filelock.FileLock(folder / ".install.lock", timeout=INSTALL_DEADLINE):
        if command.exists() and _installed_version(folder) == FIREBASE_VERSION:
            return command
        npm = shutil.which("npm")
        assert npm is not None
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", FIREBASE_TOOLS],
            cwd=folder,
            check=True,
            timeout=INSTALL_DEADLINE,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "HOME": _HOME},  # npm's own cache, not a document's HOME
        )
    return command


def _installed_version(folder: Path) -> str | None:
    manifest = folder / "node_modules" / "firebase-tools" / "package.json"
    try:
        version = json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None
    return str(version)


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now, on loopback (the OS picks them)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for each in sockets:
            each.bind(("127.0.0.1", 0))
        return [each.getsockname()[1] for each in sockets]
    finally:
        for each in sockets:
            each.close()


class AuthEmulator:
    """One running ``firebase emulators:start --only auth`` on free loopback ports."""

    def __init__(self, firebase: Path) -> None:
        self._firebase = firebase
        self._folder = Path(tempfile.mkdtemp(prefix="mimi-firebase-"))
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def host(self) -> str:
        """``host:port``, as ``FIREBASE_AUTH_EMULATOR_HOST`` takes it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> None:
        """Start it and wait until it answers (or fail with its output). If it exits first,
        it starts once more on fresh ports: ``free_ports`` only finds ports free now, and
        another process can take one before Node binds it seconds later."""
        first = self._launch()
        if first is None:
            return
        second = self._launch()
        if second is not None:
            self.stop()
            raise RuntimeError(
                "the Auth emulator did not start (twice):\n"
                f"{first[-2000:]}\n--- then ---\n{second[-2000:]}"
            )

    def _launch(self) -> str | None:
        """One start on fresh ports: None once it answers, or its output if it exited before
        (a port taken). Not answering within START_DEADLINE fails at once."""
        self.port, hub, logging = free_ports(3)
        loopback = "127.0.0.1"
        config = {
            "emulators": {
                "auth": {"host": loopback, "port": self.port},
                "hub": {"host": loopback, "port": hub},
                "logging": {"host": loopback, "port": logging},
                "ui": {"enabled": False},
                "singleProjectMode": True,
            }
        }
        (self._folder / "firebase.json").write_text(json.dumps(config))
        log = (self._folder / "emulator.log").open("wb")
        self._process = subprocess.Popen(
            [str(self._firebase), "emulators:start", "--only", "auth", "--project", PROJECT],
            cwd=self._folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends node and its children
            env={**os.environ, "HOME": _HOME},  # not a document's temporary HOME
        )
        log.close()
        deadline = time.monotonic() + START_DEADLINE
        # Answering while its process still runs: a stranger on the port is not the emulator.
        while not (self._answers() and self._process.poll() is None):
            exited = self._process.poll() is not None
            if exited or time.monotonic() > deadline:
                output = (self._folder / "emulator.log").read_text(errors="replace")
                if exited:
                    self._end_process()  # its process group, should a child outlive it
                    return output
                self.stop()
                raise RuntimeError(f"the Auth emulator did not start:\n{output[-3000:]}")
            time.sleep(0.05)  # polling interval while waiting for the condition
        return None

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/", timeout=1) as response:  # noqa: S310
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def clear_accounts(self) -> None:
        """Delete every account of the project, so each test starts from none."""
        request = urllib.request.Request(  # noqa: S310 (loopback http)
            f"{self.url}/emulator/v1/projects/{PROJECT}/accounts", method="DELETE"
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            assert response.status == 200

    def stop(self) -> None:
        """Stop it; remove its folder."""
        self._end_process()
        shutil.rmtree(self._folder, ignore_errors=True)

    def _end_process(self) -> None:
        """End the emulator by its process group (node and its children); wait for it."""
        process = self._process
        if process is None:
            return
        if process.poll() is not None:  # it exited; a child of its group may not have
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


@pytest.fixture(scope="session")
def auth_emulator() -> Iterator[AuthEmulator]:
    """One Auth emulator for the whole test session (installed on first use)."""
    reason = missing_tools()
    if reason is not None:
        pytest.skip(reason)
    emulator = AuthEmulator(installed_firebase())
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def firebase_emulator(auth_emulator: AuthEmulator) -> AuthEmulator:
    """The session's Auth emulator, with no accounts left from earlier tests."""
    auth_emulator.clear_accounts()
    return auth_emulator


def main(arguments: list[str]) -> int:
    """``python -m tests.firebase_emulator --install``: install firebase-tools into the cache
    folder now, so that no test's setup waits on the npm registry under pytest-timeout
    (scripts/test runs it before pytest). Without Node.js it says so and does nothing."""
    if arguments != ["--install"]:
        print("usage: python -m tests.firebase_emulator --install", file=sys.stderr)
        return 2
    reason = missing_tools()
    if reason is not None:
        print(f"{reason}: the Firebase tests will skip", file=sys.stderr)
        return 0
    if _installed_version(cache_folder()) != FIREBASE_VERSION:
        print(f"installing {FIREBASE_TOOLS} into {cache_folder()} (once; a minute or two)")
    try:
        installed_firebase()
    except (OSError, subprocess.SubprocessError, filelock.Timeout) as error:
        print(f"could not install {FIREBASE_TOOLS}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
