"""An anonymous sign-in then sign-out on the Firebase Auth emulator: ours beside raw aiohttp
and the Firebase JS SDK (what the session layer adds to a Firebase round trip).

Run: .venv/bin/python benchmarks/firebase.py  (`--quick` for a smoke run)

All three run against one emulator in one run, interleaved: each round runs a batch of each,
in rotating order, and a figure is the median over rounds of the mean per operation, so
machine noise hits every side alike.

- ours: ``core.auth.authenticate(sign_up_anonymously())`` then ``core.auth.log_out()``
  through ``MimiCore`` + ``FirebaseBackend`` (the log-out is local: Firebase cannot revoke);
- raw aiohttp: one ``accounts:signUp`` POST on a shared session (the floor: one HTTP call);
- Firebase JS SDK: ``signInAnonymously`` + ``signOut`` (firebase@11 from npm, in-memory
  persistence) in a Node process that runs the batches it is told to.
The emulator and firebase@11 are installed from npm into ~/.cache/mimi_reactive on first use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mimi_reactive import AuthRoute, MimiCore
from mimi_reactive.backends.firebase import FirebaseBackend
from tests.firebase_emulator import (
    API_KEY,
    PROJECT,
    AuthEmulator,
    cache_folder,
    installed_firebase,
    missing_tools,
)

JS_SDK = "firebase@11"
NODE_RUNNER = """
import { initializeApp } from "firebase/app";
import { initializeAuth, inMemoryPersistence, connectAuthEmulator, signInAnonymously, signOut }
  from "firebase/auth";
import * as readline from "node:readline";
const [host, apiKey, projectId] = process.argv.slice(2);
const app = initializeApp({ apiKey, projectId, authDomain: "localhost" });
const auth = initializeAuth(app, { persistence: inMemoryPersistence });
connectAuthEmulator(auth, `http://${host}`, { disableWarnings: true });
const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const count = Number(line);
  const began = performance.now();
  for (let i = 0; i < count; i++) {
    await signInAnonymously(auth);
    await signOut(auth);
  }
  console.log(JSON.stringify({ ms: (performance.now() - began) / count }));
}
process.exit(0);
"""


def installed_js_sdk() -> Path:
    """A folder holding firebase@11 and the runner script (installed on first use)."""
    folder = cache_folder().parent / "firebase-js"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "node_modules" / "firebase" / "package.json").exists():
        npm = shutil.which("npm")
        assert npm is not None
        command = [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", JS_SDK]
        subprocess.run(command, cwd=folder, check=True, timeout=900)  # noqa: S603 (npm)
    (folder / "runner.mjs").write_text(NODE_RUNNER)
    return folder


class JsSdk:
    """A Node process running the Firebase JS SDK's batches on demand."""

    def __init__(self, folder: Path, host: str) -> None:
        node = shutil.which("node")
        assert node is not None
        self._process = subprocess.Popen(  # noqa: S603 (node, our script)
            [node, str(folder / "runner.mjs"), host, API_KEY, PROJECT],
            cwd=folder,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def batch(self, count: int) -> float:
        """Mean seconds per sign-in + sign-out over ``count`` of them."""
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write(f"{count}\n")
        self._process.stdin.flush()
        return float(json.loads(self._process.stdout.readline())["ms"]) / 1000

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=30)


async def main(rounds: int, batch: int) -> None:
    emulator = AuthEmulator(installed_firebase())
    emulator.start()
    js = JsSdk(installed_js_sdk(), emulator.host)
    try:
        backend = FirebaseBackend(API_KEY, emulator_host=emulator.host)
        async with MimiCore.start(backend=backend) as core, aiohttp.ClientSession() as http:
            url = f"{emulator.url}/identitytoolkit.googleapis.com/v1/accounts:signUp"

            async def ours() -> None:
                await core.auth.authenticate(AuthRoute.sign_up_anonymously())
                await core.auth.log_out()

            async def raw() -> None:
                body = {"returnSecureToken": True}
                headers = {"X-Goog-Api-Key": API_KEY}
                async with http.post(url, json=body, headers=headers) as response:
                    await response.json()

            async def timed(operation: Callable[[], Awaitable[None]]) -> float:
                began = time.perf_counter()
                for _ in range(batch):
                    await operation()
                return (time.perf_counter() - began) / batch

            async def js_batch() -> float:
                return await asyncio.to_thread(js.batch, batch)

            sides: dict[str, Callable[[], Awaitable[float]]] = {
                "ours": lambda: timed(ours),
                "raw": lambda: timed(raw),
                "js": js_batch,
            }
            for side in sides.values():  # warm up: connections, JIT, imports
                await side()
            figures: dict[str, list[float]] = {name: [] for name in sides}
            names = list(sides)
            for round_ in range(rounds):
                emulator.clear_accounts()
                order = names[round_ % 3 :] + names[: round_ % 3]
                for name in order:
                    figures[name].append(await sides[name]())
    finally:
        js.close()
        emulator.stop()
    ms = {name: statistics.median(values) * 1000 for name, values in figures.items()}
    print(f"anonymous sign-in + sign-out, Auth emulator, median of {rounds} rounds x {batch}:")
    print(
        f"  ours (MimiCore + FirebaseBackend) {ms['ours']:.2f} ms"
        f"  |  Firebase JS SDK {ms['js']:.2f} ms"
        f"  |  raw aiohttp accounts:signUp {ms['raw']:.2f} ms"
    )
    print(f"  ours / JS SDK = {ms['ours'] / ms['js']:.2f}", end="")
    print(f", ours / raw = {ms['ours'] / ms['raw']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    arguments = parser.parse_args()
    reason = missing_tools()
    if reason is not None:
        sys.exit(reason)
    asyncio.run(main(rounds=3 if arguments.quick else 15, batch=10 if arguments.quick else 50))
