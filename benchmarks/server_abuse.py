"""Anonymous log-in latency unloaded beside under a flood of wrong passwords (bounded Argon2).

The goal: the bounded Argon2 pool keeps honest log-ins fast while an attacker guesses."""

# Run: .venv/bin/python benchmarks/server_abuse.py  (`--quick` for a smoke run)
#
# Three processes: `mimi-reactive serve` (one per pool configuration), a flood process keeping
# 32 wrong-password log-ins in flight (each guess sent as soon as the last is answered, 503s
# included: an attacker does not wait), and this one, which logs in by anonymous id one at a
# time and times each answer. Rounds interleave: in each, every configuration is measured
# unloaded, then flooded, in rotating order, so machine noise hits every figure alike.
# - bounded: the default pool (`--password-hash-workers 1 --password-hash-queue 8`);
# - before: what the bounded pool replaced, hashing on asyncio.to_thread's default pool
#   (min(32, CPUs + 4) threads, no bound on waiting), emulated with as many workers and a
#   queue no flood of 32 fills.
# The per-IP failed log-in limit is off on both servers (`--max-failed-log-ins-per-minute 0`):
# it would answer most of the flood with 429 before any Argon2 work, and an attacker with many
# addresses gets past it; the pool is what is left.

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import _serving
import aiohttp
import attrs

CLIENT_ID = "bench"
CLIENT_SECRET = secrets.token_urlsafe(32)
VICTIM = "victim@example.test"
PASSWORD = "correct horse battery staple"  # noqa: S105 - the benchmark's own test user
FLOOD = 32
WARM_UP = 0.5  # seconds of flood before timing, so the pool is full
ROUNDS, PROBES, PROBE_SECONDS = 4, 100, 3.0
QUICK_ROUNDS, QUICK_PROBES, QUICK_PROBE_SECONDS = 1, 20, 1.0
BEFORE_WORKERS = min(32, (os.cpu_count() or 1) + 4)


@attrs.frozen
class Pool:
    """One server's Argon2 pool."""

    workers: int
    queue: int


@attrs.frozen
class Case:
    """What one column of figures measures: a server's pool, and how the flood behaves."""

    name: str
    pool: Pool
    polite: bool = False
    """The flood waits the Retry-After of a 503 (as our client library does; an attacker not)."""


BOUNDED, BEFORE = Pool(1, 8), Pool(BEFORE_WORKERS, 1000)
CASES = (
    Case("bounded pool (default: 1 worker, queue 8)", BOUNDED),
    Case(f"before: unbounded pool ({BEFORE_WORKERS} workers, queue 1000)", BEFORE),
    Case("bounded pool, flood waiting Retry-After on 503", BOUNDED, polite=True),
)


@attrs.define
class Figures:
    """One case's samples: latencies in seconds, and what the flood got."""

    unloaded: list[float] = attrs.Factory(list)
    flooded: list[float] = attrs.Factory(list)
    flood_answers: Counter[str] = attrs.Factory(Counter)
    flood_seconds: float = 0.0
    password_log_ins: list[tuple[str, float]] = attrs.Factory(list)
    """A real password log-in under the flood, once a round: its answer and latency."""


@contextlib.contextmanager
def identity_server(pool: Pool, directory: str) -> Iterator[str]:
    """`mimi-reactive serve` with this Argon2 pool in a child process; yields its URL."""
    argv = _serving.serve_command(
        CLIENT_ID,
        str(Path(directory) / f"identity-{pool.workers}-{pool.queue}.sqlite3"),
        *("--max-failed-log-ins-per-minute", "0", "--sweep-interval", "0"),
        *("--password-hash-workers", str(pool.workers)),
        *("--password-hash-queue", str(pool.queue)),
    )
    with _serving.serving(argv, secret=CLIENT_SECRET, stop_timeout=30) as url:
        yield url


def authorization(secret: str = CLIENT_SECRET) -> str:
    """The client's HTTP Basic credentials (a spawned process has its own CLIENT_SECRET)."""
    return aiohttp.encode_basic_auth(CLIENT_ID, secret)


async def post(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], auth: str | None = None
) -> tuple[int, Any]:
    """POST a JSON body as the benchmark's client; the status and the decoded answer."""
    headers = {"Authorization": auth or authorization()}
    async with http.post(url, json=body, headers=headers) as response:
        return response.status, await response.json()


# --- The flood: its own process, so its CPU is not the probe's ---


def flood_worker(commands: Connection) -> None:
    """Floods the URL it is sent until told to stop, then sends back the answers' statuses."""
    asyncio.run(_flood_commands(commands))


async def _flood_commands(commands: Connection) -> None:
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:
        while True:
            command = await loop.run_in_executor(None, commands.recv)
            if command is None:
                return
            url, auth, polite = command
            stop = asyncio.Event()
            answers: Counter[str] = Counter()
            guessers = [
                asyncio.create_task(_guess(http, (url, auth, polite), stop, answers, n))
                for n in range(FLOOD)
            ]
            await loop.run_in_executor(None, commands.recv)
            stop.set()  # each guesser ends once its guess is answered: the pool drains
            await asyncio.gather(*guessers)
            commands.send(dict(answers))


async def _guess(
    http: aiohttp.ClientSession,
    target: tuple[str, str, bool],
    stop: asyncio.Event,
    answers: Counter[str],
    n: int,
) -> None:
    url, auth, polite = target
    tries = 0
    while not stop.is_set():
        tries += 1
        body = {"email": VICTIM, "password": f"wrong guess {n}-{tries}"}
        status, answer = await post(http, url + "/v1/sessions", body, auth)
        answers[f"{status} {answer.get('error', {}).get('code', '')}".strip()] += 1
        if polite and status == 503:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)  # the server's Retry-After: 1


# --- The probe: anonymous log-ins one at a time ---


async def probe(
    http: aiohttp.ClientSession, url: str, anonymous_id: str, count: int, seconds: float
) -> list[float]:
    """Up to ``count`` log-ins by anonymous id (fewer if ``seconds`` run out); each latency."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(latencies) < count and time.perf_counter() < deadline:
        started = time.perf_counter()
        status, answer = await post(
            http, url + "/v1/sessions/anonymous", {"anonymous_id": anonymous_id}
        )
        latencies.append(time.perf_counter() - started)
        if status != 200:
            raise RuntimeError(f"anonymous log-in answered {status}: {answer}")
    return latencies


async def prepare(http: aiohttp.ClientSession, url: str) -> str:
    """The victim of the flood and an anonymous user to log in as; its anonymous id."""
    status, answer = await post(http, url + "/v1/users", {"email": VICTIM, "password": PASSWORD})
    if status != 201:
        raise RuntimeError(f"sign-up answered {status}: {answer}")
    status, answer = await post(http, url + "/v1/anonymous-users", {})
    if status != 201:
        raise RuntimeError(f"anonymous sign-up answered {status}: {answer}")
    anonymous_id: str = answer["user"]["anonymous_id"]
    await probe(http, url, anonymous_id, 10, 5.0)  # warm up the connection and the server
    return anonymous_id


async def password_log_in(http: aiohttp.ClientSession, url: str) -> tuple[str, float]:
    """One log-in with the victim's real password: its answer and latency."""
    started = time.perf_counter()
    status, answer = await post(http, url + "/v1/sessions", {"email": VICTIM, "password": PASSWORD})
    code = answer.get("error", {}).get("code", "") if status != 200 else ""
    return f"{status} {code}".strip(), time.perf_counter() - started


async def measure(
    urls: dict[Pool, str], flood: Connection, rounds: int, probes: int, seconds: float
) -> dict[Case, Figures]:
    """Every round: each case unloaded then flooded, cases in rotating order."""
    figures = {case: Figures() for case in CASES}
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:
        ids = {pool: await prepare(http, url) for pool, url in urls.items()}
        for round_ in range(rounds):
            turn = round_ % len(CASES)
            for case in CASES[turn:] + CASES[:turn]:
                url, anonymous_id, each = urls[case.pool], ids[case.pool], figures[case]
                each.unloaded += await probe(http, url, anonymous_id, probes, seconds)
                flood.send((url, authorization(), case.polite))
                started = time.perf_counter()
                await asyncio.sleep(WARM_UP)
                each.flooded += await probe(http, url, anonymous_id, probes, seconds)
                each.password_log_ins.append(await password_log_in(http, url))
                flood.send("stop")
                answers: dict[str, int] = await loop.run_in_executor(None, flood.recv)
                each.flood_seconds += time.perf_counter() - started
                each.flood_answers.update(answers)
    return figures


# --- The table ---


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples) * 1000, cuts[98] * 1000


def answers_text(answers: Counter[str]) -> str:
    return ", ".join(f"{n:,} x {code}" for code, n in sorted(answers.items()))


def print_table(figures: dict[Case, Figures], rounds: int) -> None:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"\nanonymous log-in by id over loopback, one at a time, {rounds} interleaved rounds;"
        f" flood: {FLOOD} concurrent\nwrong-password log-ins (per-IP failed log-in limit off)."
        f" Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load}\n"
    )
    width = max(len(case.name) for case in figures)
    print(f"{'case':<{width}}  {'load':<8}  {'log-ins':>7}  {'p50 ms':>8}  {'p99 ms':>8}  flood")
    for case, each in figures.items():
        for name, samples in (("unloaded", each.unloaded), ("flooded", each.flooded)):
            p50, p99 = percentiles(samples)
            flood = ""
            if name == "flooded":
                total = sum(each.flood_answers.values())
                flood = f"{total / each.flood_seconds:,.0f} answers/s"
            label = case.name if name == "unloaded" else ""
            print(
                f"{label:<{width}}  {name:<8}  {len(samples):>7}  {p50:>8.1f}  {p99:>8.1f}  {flood}"
            )
    print("\nflooded beside unloaded, and what the flood and a real password log-in got:")
    for case, each in figures.items():
        (p50, p99), (base50, base99) = percentiles(each.flooded), percentiles(each.unloaded)
        busy = each.flood_answers.get("503 server_busy", 0)
        real = Counter(answer for answer, _ in each.password_log_ins)
        slowest = max(latency for _, latency in each.password_log_ins) * 1000
        print(
            f"- {case.name}:\n  p50 {p50 / base50:.1f}x, p99 {p99 / base99:.1f}x unloaded;"
            f" the flood got {busy:,} x 503 of {sum(each.flood_answers.values()):,} answers"
            f" ({answers_text(each.flood_answers)});\n  real password log-in under the flood:"
            f" {answers_text(real)}, slowest {slowest:,.0f} ms"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one short round: a smoke test")
    args = parser.parse_args(argv)
    rounds, probes, seconds = (
        (QUICK_ROUNDS, QUICK_PROBES, QUICK_PROBE_SECONDS)
        if args.quick
        else (ROUNDS, PROBES, PROBE_SECONDS)
    )
    started = time.perf_counter()
    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    worker = multiprocessing.get_context("spawn").Process(target=flood_worker, args=(theirs,))
    worker.start()
    try:
        with (
            tempfile.TemporaryDirectory() as directory,
            contextlib.ExitStack() as servers,
        ):
            pools = dict.fromkeys(case.pool for case in CASES)
            urls = {pool: servers.enter_context(identity_server(pool, directory)) for pool in pools}
            figures = asyncio.run(measure(urls, ours, rounds, probes, seconds))
    finally:
        ours.send(None)
        worker.join(timeout=30)
        if worker.is_alive():
            worker.terminate()
    print_table(figures, rounds)
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
