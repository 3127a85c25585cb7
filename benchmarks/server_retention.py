"""Database size after 10,000 anonymous log-ins, retention sweeper on beside off.

The goal: the sweeper keeps the database from growing with every log-in."""

# Run: .venv/bin/python benchmarks/server_retention.py  (`--quick` for a smoke run)
#
# The same workload runs on two databases at once, each with its own reference server in its
# own process (sizes do not depend on timing, so each process also makes its own requests):
# a handful of anonymous users sign up; each keeps its first session as its app's session and
# renews it every simulated hour (the access token's lifetime), which spends a refresh token
# an hour; 10,000 times a user logs in by anonymous id and logs that session out (revoked).
# The server clock is injected and moves 100 hours over the run, so spent refresh tokens age
# past the 24 h retention window without sleeping, and ends at the real now.
# - sweeper on: the server's sweep (the one its sweeper runs) every simulated hour, as
#   `--sweep-interval 3600`;
# - sweeper off: never swept; at the end, one `mimi-reactive sweep` of it (the one-shot for a
#   server run without a sweeper) gives a third column.
# Live bytes are (page_count - freelist_count) * page_size as a reader sees the database
# (WAL included); the end figures are the file after VACUUM.

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import structlog

from mimi_reactive.server import IdentityServer, ServerSettings

CLIENT_ID = "bench"
HOUR = 3600.0
SIMULATED_HOURS = 100
USERS, LOG_INS, CHECKPOINTS = 20, 10_000, 4
QUICK_USERS, QUICK_LOG_INS = 4, 400
TABLES = ("users", "sessions", "refresh_tokens")


class Clock:
    """The server's wall clock, moved by the workload instead of sleeping."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@attrs.frozen
class Size:
    """What one database holds at one point of the workload."""

    log_ins: int
    bytes: int
    rows: dict[str, int]


@attrs.frozen
class Outcome:
    """One workload's sizes: at each checkpoint (live bytes), and at the end after VACUUM."""

    empty: int
    checkpoints: list[Size]
    vacuumed: Size
    on_disk: int
    """Bytes of the database file and its WAL at the end, before VACUUM."""
    swept: int
    """Sweeps run (0 with the sweeper off)."""
    sweep_errors: dict[str, int]
    """Sweeps that raised, by error: their deletions are committed before the error."""


def live_size(path: Path, log_ins: int) -> Size:
    """Bytes in use (pages minus free pages) and row counts, as a reader sees the database."""
    with sqlite3.connect(path) as db:

        def pragma(name: str) -> int:
            return int(db.execute(f"PRAGMA {name}").fetchone()[0])

        used = (pragma("page_count") - pragma("freelist_count")) * pragma("page_size")
        rows = {t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}  # noqa: S608
    db.close()
    return Size(log_ins, used, rows)


def vacuumed_size(path: Path, log_ins: int) -> Size:
    """The file's size after a WAL checkpoint and VACUUM (the server is stopped)."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("VACUUM")
    db.close()
    rows = live_size(path, log_ins).rows
    return Size(log_ins, path.stat().st_size, rows)


def file_bytes(path: Path) -> int:
    """What the database takes on disk: its file and its WAL."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


class Caller:
    """Posts JSON to the server as the benchmark's client; returns the answer's body."""

    def __init__(self, http: aiohttp.ClientSession, url: str, secret: str) -> None:
        self.http, self.url = http, url
        self.auth = aiohttp.encode_basic_auth(CLIENT_ID, secret)

    async def post(self, path: str, body: dict[str, Any], status: int = 200) -> Any:
        async with self.http.post(
            self.url + path, json=body, headers={"Authorization": self.auth}
        ) as response:
            answer = await response.json()
            if response.status != status:
                raise RuntimeError(f"{path}: {response.status} {answer}")
            return answer


async def workload(path: Path, *, sweeper: bool, users: int, log_ins: int) -> Outcome:
    """Sign up ``users``, then ``log_ins`` log-ins by id, each logged out, over 100 hours."""
    step = SIMULATED_HOURS * HOUR / log_ins
    clock = Clock(time.time() - SIMULATED_HOURS * HOUR)
    settings = ServerSettings(
        clock=clock,
        sweep_interval=0,  # swept below on the simulated clock, as the sweeper would be
        max_anonymous_sign_ups_per_hour=0,
        max_failed_log_ins_per_minute=0,
    )
    secret = secrets.token_urlsafe(32)
    every = max(1, log_ins // CHECKPOINTS)
    checkpoints: list[Size] = []
    swept = 0
    errors: dict[str, int] = {}
    async with (
        IdentityServer(
            client_id=CLIENT_ID, client_secret=secret, database=path, settings=settings
        ) as server,
        aiohttp.ClientSession() as http,
    ):
        empty = live_size(path, 0).bytes
        caller = Caller(http, server.url, secret)
        created = [await caller.post("/v1/anonymous-users", {}, 201) for _ in range(users)]
        ids = [each["user"]["anonymous_id"] for each in created]
        app_tokens = [each["session"]["refresh_token"] for each in created]
        next_hour = clock.now + HOUR

        async def log_in_and_out(anonymous_id: str) -> None:
            answer = await caller.post("/v1/sessions/anonymous", {"anonymous_id": anonymous_id})
            await caller.post("/v1/sessions/revoke", {"token": answer["session"]["refresh_token"]})

        async def renew(index: int) -> None:
            grant = {"grant_type": "refresh_token", "refresh_token": app_tokens[index]}
            app_tokens[index] = (await caller.post("/v1/token", grant))["session"]["refresh_token"]

        done = 0
        while done < log_ins:
            batch = min(users, log_ins - done)
            await asyncio.gather(*(log_in_and_out(ids[(done + i) % users]) for i in range(batch)))
            for _ in range(batch):
                done += 1
                clock.now += step
                if done % every == 0:
                    checkpoints.append(live_size(path, done))
            if clock.now >= next_hour:
                next_hour += HOUR
                await asyncio.gather(*(renew(i) for i in range(users)))
                if sweeper:
                    swept += 1
                    try:
                        await server.sweep()
                    except sqlite3.Error as error:
                        # The deletions are committed before the vacuum and checkpoint that
                        # raise; the server's own sweeper logs this and carries on.
                        errors[str(error)] = errors.get(str(error), 0) + 1
        on_disk = file_bytes(path)
    vacuumed = vacuumed_size(path, log_ins)
    return Outcome(empty, checkpoints, vacuumed, on_disk, swept, errors)


def run_workload(path: Path, sweeper: bool, users: int, log_ins: int) -> Outcome:
    """One workload in this (child) process."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    return asyncio.run(workload(path, sweeper=sweeper, users=users, log_ins=log_ins))


def sweep_once(path: Path) -> str:
    """`mimi-reactive sweep` on a copy of the database; its one line of output."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "mimi_reactive", "sweep", "--database", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        # Its deletions are committed before a failing vacuum or checkpoint: report and go on.
        last = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return f"exit status {done.returncode}: {last[0]}"
    return done.stdout.strip()


def per(value: int, count: int) -> str:
    return f"{value / count:,.0f}"


def print_report(on: Outcome, off: Outcome, one_shot: Size, said: str, users: int) -> None:
    log_ins = on.vacuumed.log_ins
    print(
        f"\n{log_ins:,} anonymous log-ins by id, each logged out, by {users} users whose app"
        f" sessions renew hourly;\n{SIMULATED_HOURS} simulated hours; sweeper on: a sweep"
        f" every simulated hour ({on.swept} sweeps)"
    )
    print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}")
    width = 40
    print(f"\n{'database':<{width}}  {'sweeper on':>12}  {'sweeper off':>12}")
    print(f"{'empty (schema and signing key), bytes':<{width}}  {on.empty:>12,}  {off.empty:>12,}")
    for at_on, at_off in zip(on.checkpoints, off.checkpoints, strict=True):
        label = f"live bytes after {at_on.log_ins:,} log-ins"
        print(f"{label:<{width}}  {at_on.bytes:>12,}  {at_off.bytes:>12,}")
    label = "file and WAL on disk at the end, bytes"
    print(f"{label:<{width}}  {on.on_disk:>12,}  {off.on_disk:>12,}")
    print(f"{'after VACUUM, bytes':<{width}}  {on.vacuumed.bytes:>12,}  {off.vacuumed.bytes:>12,}")
    for table in TABLES:
        label = f"  {table} rows"
        print(f"{label:<{width}}  {on.vacuumed.rows[table]:>12,}  {off.vacuumed.rows[table]:>12,}")
    label = f"bytes per user ({users} users)"
    print(
        f"{label:<{width}}  {per(on.vacuumed.bytes, users):>12}"
        f"  {per(off.vacuumed.bytes, users):>12}"
    )
    label = "  above the empty database"
    print(
        f"{label:<{width}}  {per(on.vacuumed.bytes - on.empty, users):>12}"
        f"  {per(off.vacuumed.bytes - off.empty, users):>12}"
    )
    label = f"bytes per log-in ({log_ins:,})"
    print(
        f"{label:<{width}}  {on.vacuumed.bytes / log_ins:>12,.1f}"
        f"  {off.vacuumed.bytes / log_ins:>12,.1f}"
    )
    for error, times in on.sweep_errors.items():
        print(f"\n{times} of {on.swept} sweeps raised sqlite3 error {error!r} (after committing)")
    print(
        f"\nsweeper off, then one `mimi-reactive sweep` ({said}):"
        f"\n  {one_shot.bytes:,} bytes after VACUUM, {per(one_shot.bytes, users)} per user"
        f" ({', '.join(f'{t} {n:,}' for t, n in one_shot.rows.items())})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few log-ins: a smoke test")
    args = parser.parse_args(argv)
    users, log_ins = (QUICK_USERS, QUICK_LOG_INS) if args.quick else (USERS, LOG_INS)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        paths = {name: Path(directory) / f"{name}.sqlite3" for name in ("on", "off")}
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn) as pool:
            running = {
                name: pool.submit(run_workload, path, name == "on", users, log_ins)
                for name, path in paths.items()
            }
            on, off = running["on"].result(), running["off"].result()
        swept_path = Path(directory) / "off-swept.sqlite3"
        shutil.copyfile(paths["off"], swept_path)
        said = sweep_once(swept_path)
        one_shot = vacuumed_size(swept_path, log_ins)
    print_report(on, off, one_shot, said, users)
    print(f"\n{time.perf_counter() - started:.0f} s, load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
