"""Servers in child processes for the benchmarks: start one, read where it listens, stop it.

A server here says where it listens as ``mimi-reactive serve`` does: its first line on stdout
is ``serving on URL`` (followed by ``with N workers`` from a pool of workers). The benchmarks
differ only in the arguments below (timeouts, the stop signal, where stderr goes); the tests'
own helper is ``tests/server_helpers.py:serving``.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

PREFIX = "serving on "


def serve_command(
    client_id: str, database: str, *options: str, log_level: str | None = None
) -> list[str]:
    """``mimi-reactive serve`` run by this interpreter, on a port the OS picks."""
    logging = ("--log-level", log_level) if log_level is not None else ()
    return [
        *(sys.executable, "-m", "mimi_reactive", *logging, "serve"),
        *("--port", "0", "--client-id", client_id, "--database", database, *options),
    ]


def spawn(
    argv: Sequence[str], *, secret: str, stderr: IO[bytes] | None = None
) -> subprocess.Popen[str]:
    """Start ``argv`` with ``MIMI_CLIENT_SECRET=secret``, its stdout piped for ``read_url``."""
    return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        argv,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "MIMI_CLIENT_SECRET": secret},
    )


def read_url(
    process: subprocess.Popen[str],
    *,
    timeout: float,
    name: str = "the identity server",
    log: Path | None = None,
) -> str:
    """The URL the server printed first; RuntimeError if it printed anything else, exited or
    said nothing within ``timeout`` seconds (quoting the end of its ``log``, if given)."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else ""
    if not line.startswith(PREFIX):
        said = f"it printed {line!r}" if ready else f"it said nothing in {timeout:g} s"
        if log is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout)  # an exiting server's last words reach its log first
            said += f"; its log ends {log.read_text(errors='replace').splitlines()[-3:]}"
        raise RuntimeError(f"{name} did not start: {said}")
    return line.removeprefix(PREFIX).split()[0]  # with workers, "URL with N workers"


def stop(process: subprocess.Popen[str], *, how: signal.Signals, timeout: float) -> None:
    """Send ``how``, wait up to ``timeout`` seconds for the process to end, then kill it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(how)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


@contextlib.contextmanager
def serving(
    argv: Sequence[str],
    *,
    secret: str,
    start_timeout: float = 60,
    stop_signal: signal.Signals = signal.SIGTERM,
    stop_timeout: float = 30,
) -> Iterator[str]:
    """Run the server while the block runs; yields its URL."""
    process = spawn(argv, secret=secret)
    try:
        yield read_url(process, timeout=start_timeout)
    finally:
        stop(process, how=stop_signal, timeout=stop_timeout)
