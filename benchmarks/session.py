"""What the session layer costs, beside what it is built on or compared with, and its goals.

Run: .venv/bin/pip install -e '.[bench]' && .venv/bin/python benchmarks/session.py
(`--quick` for a smoke run, which writes no plot unless given `--plot PATH`; `--plot PATH` to
choose where the PNG goes.)

Every row is measured interleaved in one run: each round runs a batch of ours and a batch of
each baseline, in rotating order, and a figure is the median over rounds, so machine noise hits
both sides alike.

- publish: a state through our Stream to N no-op subscribers vs BehaviorSubject.on_next;
- command: a log-in the guards answer "already logged in" (no network), awaited, vs one
  guarded trigger whose condition fails in transitions' AsyncMachine / Machine and in
  python-statemachine;
- switch: log in as the other of two users, on ScriptedBackend (no latency, but it makes
  tokens) and on a backend doing nothing (the core's own cost), vs AsyncMachine
  logging out then in (two triggers with an async callback each);
- log-in: client CPU (time.process_time; the server runs in a child process) and p50 wall
  latency of a user switch through HttpBackend vs raw aiohttp doing the same HTTP exchange;
- import: `import mimi_reactive` vs importing every module it pulls in, in fresh processes.
A plot of per-state publish cost against subscriber count goes to docs/publish-cost.png (a
full run; --quick: only to --plot PATH).

Where the time goes (callgrind instruction counts, which machine noise does not move, and
cProfile call counts; 2026-11-25). A switch on the backend doing nothing was about 270k
instructions: the revocation of the old session, a task of its own so the switch never waits
on the service, 18%; the keeper working out the next renewal, 9%; the access-token stream,
4%; the hop to the store's worker and back (a future and two turns of the loop, each with
an epoll call: 13 us in a bare asyncio loop) about a fifth; the rest the guards, two
effects, the reducer and the state stream, a few percent each. AsyncMachine runs its
triggers inline in the caller's task: no hop, no task.
Cut since (269k to 231-233k with PYTHONHASHSEED=0, 240 to 202 Python calls a switch): decide
asks a command only the guards that look at its type (5 of 13 for a log-in); the worker
waits on one future over a deque, not an asyncio.Queue (8k of it: 241k with the queue and
the other cuts, against 233k); the store holds the state it published instead of reading it
through two properties; debug events are built only when debug is on; a session change
against nobody skips attrs' equality. In runs interleaved with the code before, the rows
went from 0.38-0.39x to 0.29x of AsyncMachine (backend doing nothing) and from 0.55-0.58x to
0.48-0.49x on ScriptedBackend, whose tokens cost their own; five later runs of the same code
gave 0.29-0.43x (rounds' quartiles 0.26-0.37x), so the 0.33x goal now sits inside these
shared machines' noise rather than clearly met.
Since (2026-12-06): the checks that keep a session safe (a stored access token published only
while usable, a user with credentials never taken in by an anonymous-only core, a storage
failure reported) add 9 Python calls to a switch (187 to 196): 26 to 28-29 us on the backend
doing nothing in runs interleaved with the code before, 0.32x to 0.38x of AsyncMachine in the
table; kept, as the guarantees are worth more than the goal's last tenth.
Later checks (2026-12-07: the event loop a command is awaited on, the type and times of a
backend's answer, a storage write that close() waits for) took a switch from 195 to 208 calls
(cProfile, counted as the figure above; 209 on this file's NullBackend). Back to 198 (199)
with every check kept: a write is marked by a flag set inline rather than run through a
wrapper coroutine (2 calls), and Session.issued checks only the time, as the user and tokens
were checked when the backend built its BackendSession (8 calls). Left: the loop check, the
answer's type check, and the helper that issues a backend's session (1 call each).
Since (2026-12-07, instructions counted for the batch alone with callgrind_control, so
startup does not blur them): a command awaited on the loop with nothing ahead of it runs at
once in the worker's name (_eager.py does what Python 3.12's eager tasks do: current_task()
is the worker and the context is its own, so timeouts entered before the first wait cancel
the task that goes on with it) until it first waits, when the worker takes it over; on this
backend a switch never waits, so it takes no hop: 248k to 233k instructions, 0.357x to
0.336x of AsyncMachine's 694k (timed, in pairs of runs alternating with the code before:
0.336-0.342x to 0.304-0.309x). The revocation's task was then a quarter of what was left
(59k): a revocation asked for during such a run starts where a task's first step would have
come, in the name of a spare task that goes on with it only if it waits, so one that never
waits costs no task: 233k to 192k, 0.277x (ScriptedBackend 348k to 292k, 0.50x to 0.42x:
its tokens and users cost their own). Timed, two full runs after gave 0.24x and 0.20x on
the backend doing nothing, alternating with the code before at 0.50x and 0.24x: on these
shared machines the load moved the row more than the change did.
Over loopback, counted in instructions a switch took 982k in raw aiohttp, 1,010k through
HttpBackend alone (1.03x) and 1,188k through the core (1.21x); the cuts above take about 38k
off that path too (about 1.17x). Timed, the row moved from 1.37-1.49x to 1.21-1.23x in runs
interleaved with the code before the cuts (p50 latency 1.02-1.11x, goal 1.05x). What is left
of the gap is the hop (about 50k instructions, two turns of the loop) and the core's own
values and calls (about 90 Python calls a switch, none more than a few percent): without the
hop it would be about 1.12x, so the 1.15x goal is bounded by the hop on 3.11, and timed runs
on these shared machines move by more than the remaining distance.
Counted for the batch alone (2026-12-07), a loopback switch is 989k instructions in raw
aiohttp and 1,303k through the core (1.32x; client CPU timed 1.12-1.54x in this session's
runs, both sides' system time diluting it and the load moving it more than any change):
running at once moved it to 1,288-1,292k, no more, as a command over the network waits, and
its hop to the worker and back stays. The cProfile count is 748
Python calls a switch against raw aiohttp's 568; the 180 more are spread over the guards,
the effects and their values (attrs __init__ and validators), the reducer, four stream
publishes, the keeper's schedule and HttpBackend's bounded body read, a few each, none above
2% of the switch. A hop-free path over the network would have to shield each wait from the
caller's cancellation (a future per wait: what the hop costs), so the 1.15x goal is bounded
by the core's own calls and the hop on 3.11.
The import row: attrs compiled a repr for each of the 43 classes, a quarter of our own import; one
shared value_repr took that away (1.55x before, with our source also recompiled at each
import, to 1.09-1.20x). What is left of ours is attrs compiling each class's __init__,
__eq__ and __hash__ (11 of 25 ms).
Counted (2026-12-07, bytecode cached on both sides): the dependencies' modules take 406M
instructions and our own 103M on top (1.25x; timed 1.22-1.27x). Of ours, attrs building our
44 classes is 9.3-9.7 ms of 18-24 (compile() of each class's generated methods the largest
part), the import machinery for our 30 modules about 2 ms and unmarshalling their bytecode
0.8 ms. Loading the blocking API (_blocking, _manager, _results) only when first used would
take 5M (1.24x): not done, as it is not enough for the goal and the names are public; lazy
imports of dependencies would take them out of the baseline as well, which only raises the
ratio. The goal is bounded by attrs' class building.
Then (2026-12-07, counted the same way) equality and hash went the way of the repr: attrs
compiled an ``__eq__`` and a ``__hash__`` for each frozen class (22M of our 111M, with the
``__init__`` in one compile per class); one shared value_eq and value_hash (``_values.py``,
looked up, never compiled, comparing the same fields through one ``operator.attrgetter`` per
class) took that away: 1.25x to 1.21x counted. SessionState and MimiUser keep attrs'
equality: every publish compares a state with the last, and attrs' chain stops at the first
field that differs where value_eq builds both tuples (publish to 1 subscriber was 1.3-1.9x
with value_eq there, 0.66-0.73x without). Timed, four full runs that day gave 1.20x, 1.41x
(rounds IQR 1.19-1.53), 1.25x and 1.19x: the row is at its goal, and these machines move it
more than the margin. What is left of ours is attrs building each class (its ``__init__``
compiled, the slotted class made a second time), the import machinery and the collector
running during it.
Since (2026-12-08; callgrind, batch only, per switch with PYTHONHASHSEED=0, the loopback
server in its own process): making values was over a third of a switch on the backend doing
nothing (about 80k of 215k, measured one by one), most of it attrs' frozen ``__init__``,
which sets each field through ``object.__setattr__`` (about 1k instructions a field on this
interpreter; a slot's own setter takes half). The effect's
result is now a plain pair, GuardContext and HttpBackend's Answer plain slotted classes, and
the decision, effects, events, states and outcome a switch makes are built through their
slots' setters (``_made.py``); a revocation's first try builds no retrying closure; a
well-formed anonymous id passes its check in one match; ScriptedBackend answers an unscripted
call without a coroutine and draws a session's two tokens at once; the store's state and
session are attributes the keeper reads, not properties. Backend doing nothing: 215k to 180k;
ScriptedBackend: 255k to 214k, against AsyncMachine's 692k (0.37x to 0.31x).
Over loopback an answer is read in one read, not through aiohttp's chunk iterator (15k a
call), and a JSON object's bytes are decoded as UTF-8 without json.loads' look at them: 1,306k
to 1,218-1,231k, against raw aiohttp's 990-1,002k (1.31x to 1.22-1.24x; runs move by about
10k with how the loop's turns fall). The goal is on client CPU time, where both sides'
system time dilutes the gap; what is left of it is the core's own calls (about 95 Python
calls a switch on the backend doing nothing, spread over the guards, the effects, the
reducer, the streams and the keeper) and the hop to the worker and back. Timed once, with all
but the store's attributes, on 2 CPUs at load 3: the switch rows 0.31x (ScriptedBackend) and
0.23x, the loopback CPU 1.16x (rounds IQR 1.14-1.18), the import 1.20x. Import: the
blocking API, the manager and its results are imported at their first use (the package's
``__getattr__``), and the effect result and GuardContext are no attrs classes: 88.7M to 82.5M
on top of the dependencies' 494.6M (1.18x to 1.17x); what is left is still attrs building
each class.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import _serving
import aiohttp
import attrs
import matplotlib
import structlog
from reactivex.subject import BehaviorSubject
from statemachine import State, StateMachine
from transitions import Machine
from transitions.extensions.asyncio import AsyncMachine

from mimi_reactive import (
    AuthBackend,
    AuthRoute,
    AuthTokens,
    BackendCapabilities,
    BackendSession,
    ClientCredentials,
    LogInAnonymously,
    MimiConfiguration,
    MimiCore,
    MimiUser,
    Session,
    SessionState,
    Transition,
)
from mimi_reactive._stream import Stream
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.testing import ScriptedBackend

matplotlib.use("Agg")

CLIENT_ID = "bench"
CLIENT_SECRET = secrets.token_urlsafe(32)


# --- The library's entry points: adapt these (and only these) when the core changes. ---


def quiet_logging() -> None:
    """As an app that configured nothing: the library is silent, the server warns only."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def make_stream(initial: SessionState) -> Stream[SessionState]:
    """The stream the store publishes through (the only private entry point used)."""
    return Stream(initial)


@contextlib.asynccontextmanager
async def open_core(backend: AuthBackend) -> AsyncIterator[MimiCore]:
    """A started core on ``backend``; closed on exit."""
    async with MimiCore.start(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        backend=backend,
        configuration=MimiConfiguration(allow_anonymous_user_only=True),
    ) as core:
        yield core


def log_in_route(anonymous_id: str) -> AuthRoute:
    return AuthRoute.log_in_anonymously(anonymous_id)


# --- Measuring ---


T = TypeVar("T")

ROUNDS = 15
QUICK_ROUNDS = 3
PLOT_COUNTS = (1, 3, 10, 30, 100, 300, 1000)
ROW_COUNTS = (1, 10, 100)
FASTER_3X = 1 / 3


@attrs.frozen
class Row:
    """One line of the table: ``ours / baseline`` (medians of rounds) against a goal on that
    ratio, with the quartiles of the per-round ratios (each round's pair ran back to back)."""

    name: str
    ours: float
    baseline: float
    unit: str
    goal: float | None  # the highest ratio that meets it; None for a reference point
    goal_text: str
    spread: tuple[float, float]

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return "(reference)"
        return "met" if self.ratio <= self.goal else "not met"


def interleave(cases: Sequence[tuple[str, Callable[[], T]]], rounds: int) -> dict[str, list[T]]:
    """Run each case's batch once per round, rotating who goes first; round 0 warms up."""
    samples: dict[str, list[T]] = {name: [] for name, _ in cases}
    for index in range(rounds + 1):
        shift = index % len(cases)
        for name, batch in [*cases[shift:], *cases[:shift]]:
            gc.collect()
            sample = batch()
            if index:
                samples[name].append(sample)
    return samples


async def interleave_async(
    cases: Sequence[tuple[str, Callable[[], Awaitable[T]]]], rounds: int
) -> dict[str, list[T]]:
    """``interleave`` for batches that run on the event loop."""
    samples: dict[str, list[T]] = {name: [] for name, _ in cases}
    for index in range(rounds + 1):
        shift = index % len(cases)
        for name, batch in [*cases[shift:], *cases[:shift]]:
            gc.collect()
            sample = await batch()
            if index:
                samples[name].append(sample)
    return samples


def medians(samples: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in samples.items()}


UNITS = {"us": 1e6, "ms": 1e3}


def compare(
    name: str,
    ours: list[float],
    baseline: list[float],
    *,
    unit: str = "us",
    goal: float | None,
    goal_text: str,
) -> Row:
    """A row from per-round samples in seconds, ``ours[i]`` measured beside ``baseline[i]``."""
    ratios = [mine / theirs for mine, theirs in zip(ours, baseline, strict=True)]
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    scale = UNITS[unit]
    return Row(
        name,
        statistics.median(ours) * scale,
        statistics.median(baseline) * scale,
        unit,
        goal,
        goal_text,
        (quartiles[0], quartiles[-1]),
    )


async def settle(before: set[asyncio.Task[Any]]) -> None:
    """Wait for the tasks started since ``before`` (background revocations), so a batch pays
    for all the work it caused."""
    spawned = asyncio.all_tasks() - before
    if spawned:
        await asyncio.wait(spawned, timeout=10)


# --- 1. publish: our Stream vs BehaviorSubject vs a bare callback loop ---

USER_A = MimiUser(id="a", anonymous_id="anonymous-a")
USER_B = MimiUser(id="b", anonymous_id="anonymous-b")
# Consecutive states differ, so Stream[SessionState]'s dedupe lets each one through.
STATE_A = SessionState(USER_A, USER_B, Transition.SWITCHED_USER)
STATE_B = SessionState(USER_B, USER_A, Transition.SWITCHED_USER)


def _ignore(state: SessionState) -> None:
    pass


def publish_batch(publish: Callable[[SessionState], object], count: int) -> float:
    """Seconds per state, alternating two states."""
    pairs = count // 2
    started = time.perf_counter()
    for _ in range(pairs):
        publish(STATE_A)
        publish(STATE_B)
    return (time.perf_counter() - started) / (pairs * 2)


def publish_costs(subscribers: int, rounds: int) -> dict[str, list[float]]:
    stream = make_stream(SessionState())
    subject: BehaviorSubject[SessionState] = BehaviorSubject(SessionState())
    callbacks: list[Callable[[SessionState], None]] = []
    for _ in range(subscribers):
        stream.observable.subscribe(_ignore)
        subject.subscribe(_ignore)
        callbacks.append(_ignore)

    def call_each(state: SessionState) -> None:
        for callback in callbacks:
            callback(state)

    count = max(20, 20_000 // (subscribers + 4))
    return interleave(
        [
            ("our Stream", lambda: publish_batch(stream.publish, count)),
            ("BehaviorSubject", lambda: publish_batch(subject.on_next, count)),
            ("callback loop", lambda: publish_batch(call_each, count)),
        ],
        rounds,
    )


def publish_rows(costs: dict[int, dict[str, list[float]]]) -> list[Row]:
    return [
        compare(
            f"publish to {n} subscriber{'s' if n > 1 else ''} vs BehaviorSubject.on_next",
            costs[n]["our Stream"],
            costs[n]["BehaviorSubject"],
            goal=1.3,
            goal_text="<=1.30x",
        )
        for n in ROW_COUNTS
    ]


def plot(samples: dict[int, dict[str, list[float]]], path: Path) -> None:
    import matplotlib.pyplot as plt

    costs = {n: medians(by_series) for n, by_series in samples.items()}
    counts = sorted(costs)
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for series, marker in (
        ("our Stream", "o"),
        ("BehaviorSubject", "s"),
        ("callback loop", "^"),
    ):
        axes.plot(counts, [costs[n][series] * 1e6 for n in counts], marker=marker, label=series)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("subscribers")
    axes.set_ylabel("time per published state (µs)")
    axes.set_title("Publishing one state, median of interleaved rounds")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


# --- 2. a satisfied command; 3. a user switch: vs transitions and python-statemachine ---


def _not_needed() -> bool:
    """The guard: the user is already logged in, so nothing to do."""
    return False


async def _call_service() -> None:
    """An async callback that returns at once, like ScriptedBackend with no latency."""


class _LogInModel:
    log_in: Callable[[], bool]  # bound by transitions' Machine


class _AsyncLogInModel:
    log_in: Callable[[], Awaitable[bool]]  # bound by transitions' AsyncMachine


class _AsyncSwitchModel:
    log_out: Callable[[], Awaitable[bool]]  # bound by transitions' AsyncMachine
    log_in: Callable[[], Awaitable[bool]]


def _guarded_log_in() -> list[dict[str, Any]]:
    return [{"trigger": "log_in", "source": "*", "dest": "logged_in", "conditions": [_not_needed]}]


class _Session(StateMachine):
    """python-statemachine: a log-in whose condition fails is ignored, not an error."""

    allow_event_without_transition = True
    logged_in = State(initial=True)
    anonymous = State()
    log_in = logged_in.to(logged_in, cond="needs_log_in") | anonymous.to(
        logged_in, cond="needs_log_in"
    )
    log_out = logged_in.to(anonymous)

    def needs_log_in(self) -> bool:
        return False


class _AsyncSession(StateMachine):
    """The same with an async condition, which makes python-statemachine run its async engine."""

    allow_event_without_transition = True
    logged_in = State(initial=True)
    anonymous = State()
    log_in = logged_in.to(logged_in, cond="needs_log_in") | anonymous.to(
        logged_in, cond="needs_log_in"
    )
    log_out = logged_in.to(anonymous)

    async def needs_log_in(self) -> bool:
        return False


class NullBackend:
    """A backend whose calls cost nothing: the core's own cost of a switch, as AsyncMachine's
    no-op callbacks measure only the state machine's."""

    capabilities = BackendCapabilities()

    def __init__(self) -> None:
        self.sessions = {
            f"anonymous-id-{n:020d}": BackendSession(
                MimiUser(f"user-{n}", f"anonymous-id-{n:020d}"),
                AuthTokens("access", "refresh", 3600.0),
            )
            for n in (0, 1)
        }

    async def open(self, client: ClientCredentials) -> None:
        pass

    async def close(self) -> None:
        pass

    async def authenticate(self, route: AuthRoute, session: Session | None) -> BackendSession:
        assert isinstance(route, LogInAnonymously)
        return self.sessions[route.anonymous_id or ""]

    async def refresh(self, session: Session) -> BackendSession:
        raise NotImplementedError

    async def revoke(self, session: Session, *, everywhere: bool = False) -> None:
        pass


async def no_network_rows(rounds: int) -> list[Row]:
    backend = ScriptedBackend()
    async with open_core(backend) as core:
        user_a = backend.add_anonymous_user()
        user_b = backend.add_anonymous_user()
        assert user_a.anonymous_id is not None
        assert user_b.anonymous_id is not None
        await core.auth.run(log_in_route(user_a.anonymous_id))
        rows = [
            *await command_rows(core, user_a.anonymous_id, rounds),
            await switch_row(
                core,
                (user_b.anonymous_id, user_a.anonymous_id),
                rounds,
                "switch user on ScriptedBackend vs AsyncMachine log out + log in",
            ),
        ]
    null = NullBackend()
    async with open_core(null) as core:
        first, second = null.sessions
        await core.auth.run(log_in_route(first))
        rows.append(
            await switch_row(
                core,
                (second, first),
                rounds,
                "switch user, backend doing nothing, vs AsyncMachine log out + log in",
            )
        )
    return rows


async def command_rows(core: MimiCore, logged_in_id: str, rounds: int) -> list[Row]:
    route = log_in_route(logged_in_id)
    sync_model = _LogInModel()
    Machine(
        model=sync_model,
        states=["anonymous", "logged_in"],
        initial="logged_in",
        transitions=_guarded_log_in(),
    )
    async_model = _AsyncLogInModel()
    AsyncMachine(
        model=async_model,
        states=["anonymous", "logged_in"],
        initial="logged_in",
        transitions=_guarded_log_in(),
    )
    chart = _Session()
    async_chart = _AsyncSession()
    await async_chart.activate_initial_state()
    count = 400

    async def ours() -> float:
        started = time.perf_counter()
        for _ in range(count):
            await core.auth.run(route)
        return (time.perf_counter() - started) / count

    async def async_machine() -> float:
        started = time.perf_counter()
        for _ in range(count):
            await async_model.log_in()
        return (time.perf_counter() - started) / count

    async def machine() -> float:
        started = time.perf_counter()
        for _ in range(count):
            sync_model.log_in()
        return (time.perf_counter() - started) / count

    async def statechart() -> float:
        started = time.perf_counter()
        for _ in range(count):
            chart.log_in()
        return (time.perf_counter() - started) / count

    async def async_statechart() -> float:
        started = time.perf_counter()
        for _ in range(count):
            await async_chart.log_in()
        return (time.perf_counter() - started) / count

    samples = await interleave_async(
        [
            ("ours", ours),
            ("AsyncMachine", async_machine),
            ("Machine", machine),
            ("statemachine", statechart),
            ("async statemachine", async_statechart),
        ],
        rounds,
    )
    assert core.auth.state.transition is Transition.LOGGED_IN, core.auth.state
    name = "command, already logged in, vs {}"
    ours_samples = samples["ours"]
    return [
        compare(
            name.format("transitions AsyncMachine"),
            ours_samples,
            samples["AsyncMachine"],
            goal=FASTER_3X,
            goal_text=">=3x faster",
        ),
        compare(
            name.format("transitions Machine (sync)"),
            ours_samples,
            samples["Machine"],
            goal=2.0,
            goal_text="<=2.00x",
        ),
        compare(
            name.format("python-statemachine (sync)"),
            ours_samples,
            samples["statemachine"],
            goal=None,
            goal_text="-",
        ),
        compare(
            name.format("python-statemachine (async)"),
            ours_samples,
            samples["async statemachine"],
            goal=None,
            goal_text="-",
        ),
    ]


async def switch_row(core: MimiCore, ids: tuple[str, str], rounds: int, name: str) -> Row:
    """``ids[1]`` is logged in; each batch logs in ``ids[0]``, ``ids[1]``, ... an even number
    of times, so every command is a switch."""
    model = _AsyncSwitchModel()
    AsyncMachine(
        model=model,
        states=["logged_in", "logged_out"],
        initial="logged_in",
        transitions=[
            {
                "trigger": "log_out",
                "source": "logged_in",
                "dest": "logged_out",
                "after": _call_service,
            },
            {
                "trigger": "log_in",
                "source": "logged_out",
                "dest": "logged_in",
                "after": _call_service,
            },
        ],
    )
    routes = [log_in_route(anonymous_id) for anonymous_id in ids]
    count = 200

    async def ours() -> float:
        before = asyncio.all_tasks()
        started = time.perf_counter()
        for index in range(count):
            await core.auth.run(routes[index % 2])
        await settle(before)
        return (time.perf_counter() - started) / count

    async def async_machine() -> float:
        started = time.perf_counter()
        for _ in range(count):
            await model.log_out()
            await model.log_in()
        return (time.perf_counter() - started) / count

    samples = await interleave_async([("ours", ours), ("AsyncMachine", async_machine)], rounds)
    assert core.auth.state.transition is Transition.SWITCHED_USER, core.auth.state
    return compare(
        name,
        samples["ours"],
        samples["AsyncMachine"],
        goal=FASTER_3X,
        goal_text=">=3x faster",
    )


# --- 4. an anonymous log-in over loopback: HttpBackend vs raw aiohttp ---


@contextlib.contextmanager
def identity_server() -> Iterator[str]:
    """The reference server in a child process (so this process's CPU time is the client's);
    yields its URL."""
    with tempfile.TemporaryDirectory() as directory:
        database = str(Path(directory) / "identity.sqlite3")
        argv = _serving.serve_command(CLIENT_ID, database)
        with _serving.serving(argv, secret=CLIENT_SECRET, stop_timeout=10) as url:
            yield url


class RawClient:
    """The HTTP exchange HttpBackend makes for a user switch, written directly on aiohttp:
    revoke the current session's refresh token in the background (the core revokes after
    logging the old user out, without waiting), then POST the anonymous log-in."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self._http = http
        self._url = url
        self._refresh_token: str | None = None
        self._revocations: set[asyncio.Task[Any]] = set()

    async def post(self, path: str, payload: dict[str, Any]) -> Any:
        async with self._http.post(self._url + path, json=payload) as response:
            status = response.status
            answer = await response.json(content_type=None)
        if status >= 400:
            raise RuntimeError(f"{path} answered {status}: {answer}")
        return answer

    async def switch(self, anonymous_id: str) -> None:
        if self._refresh_token is not None:
            revoke = self.post("/v1/sessions/revoke", {"token": self._refresh_token})
            task = asyncio.get_running_loop().create_task(revoke)
            self._revocations.add(task)
            task.add_done_callback(self._revocations.discard)
        answer = await self.post("/v1/sessions/anonymous", {"anonymous_id": anonymous_id})
        self._refresh_token = answer["session"]["refresh_token"]


async def switch_batch(
    switch: Callable[[str], Awaitable[object]], ids: tuple[str, str], count: int
) -> tuple[float, float]:
    """Client CPU seconds per switch and the batch's median wall latency."""
    latencies = []
    before = asyncio.all_tasks()
    cpu = time.process_time()
    for index in range(count):
        started = time.perf_counter()
        await switch(ids[index % 2])
        latencies.append(time.perf_counter() - started)
    await settle(before)
    return (time.process_time() - cpu) / count, statistics.median(latencies)


async def loopback_rows(url: str, rounds: int) -> list[Row]:
    timeout = aiohttp.ClientTimeout(total=10)
    headers = {"Authorization": aiohttp.encode_basic_auth(CLIENT_ID, CLIENT_SECRET)}
    async with (
        aiohttp.ClientSession(headers=headers, timeout=timeout, raise_for_status=False) as http,
        open_core(HttpBackend(url)) as core,
    ):
        raw = RawClient(http, url)
        created = [await raw.post("/v1/anonymous-users", {}) for _ in range(2)]
        first, second = (str(answer["user"]["anonymous_id"]) for answer in created)
        await raw.switch(first)
        await core.auth.run(log_in_route(first))
        ids = (second, first)
        count = 60

        async def ours_switch(anonymous_id: str) -> None:
            await core.auth.run(log_in_route(anonymous_id))

        samples = await interleave_async(
            [
                ("ours", lambda: switch_batch(ours_switch, ids, count)),
                ("raw", lambda: switch_batch(raw.switch, ids, count)),
            ],
            rounds,
        )
        assert core.auth.state.transition is Transition.SWITCHED_USER, core.auth.state
    cpu = {name: [sample[0] for sample in values] for name, values in samples.items()}
    p50 = {name: [sample[1] for sample in values] for name, values in samples.items()}
    return [
        compare(
            "log-in over loopback: client CPU vs raw aiohttp",
            cpu["ours"],
            cpu["raw"],
            goal=1.15,
            goal_text="<=1.15x",
        ),
        compare(
            "log-in over loopback: p50 latency vs raw aiohttp",
            p50["ours"],
            p50["raw"],
            goal=1.05,
            goal_text="<=1.05x",
        ),
    ]


# --- 5. import time ---

_PULLED_IN = """\
import sys
before = set(sys.modules)
import mimi_reactive
added = [m for m in sys.modules if m not in before]
print("\\n".join(m for m in added if m.partition(".")[0] != "mimi_reactive"))
"""

_TIMED = """\
import time
started = time.perf_counter()
{}
print(time.perf_counter() - started)
"""


def _python(code: str, environment: dict[str, str] | None = None) -> str:
    return subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environment
    ).stdout


def _with_bytecode(cache: str) -> dict[str, str]:
    """The environment of an installed package: bytecode compiled once and read after, for us
    as for the dependencies (pip compiles at install; an editable checkout run with
    PYTHONDONTWRITEBYTECODE would recompile our source at every import and not theirs)."""
    environment = {**os.environ, "PYTHONPYCACHEPREFIX": cache}
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    return environment


def import_row(runs: int) -> tuple[Row, list[str]]:
    """Each import in a fresh interpreter; the baseline imports every module that
    ``import mimi_reactive`` adds to ``sys.modules`` (its dependencies and the standard
    library modules they and it use), in the order they were first imported. Both sides read
    bytecode compiled by a first, untimed run."""
    with tempfile.TemporaryDirectory() as cache:
        environment = _with_bytecode(cache)
        modules = _python(_PULLED_IN, environment).split()
        baseline = (
            f"for name in {modules!r}:\n"
            "    try:\n        __import__(name)\n    except ImportError:\n        pass"
        )

        def ours() -> float:
            return float(_python(_TIMED.format("import mimi_reactive"), environment))

        def dependencies() -> float:
            return float(_python(_TIMED.format(baseline), environment))

        ours(), dependencies()  # compiles the bytecode both sides then read
        samples = interleave([("ours", ours), ("dependencies", dependencies)], runs)
    top_level = {name.partition(".")[0] for name in modules}
    third_party = sorted(top_level - sys.stdlib_module_names)
    row = compare(
        "import mimi_reactive vs the modules it pulls in",
        samples["ours"],
        samples["dependencies"],
        unit="ms",
        goal=1.2,
        goal_text="<=1.20x",
    )
    return row, third_party


# --- The table ---


def print_table(rows: Sequence[Row]) -> None:
    width = max(len(row.name) for row in rows)
    print(
        f"{'row':<{width}}  {'ours':>11}  {'baseline':>11}  {'ratio':>7}  "
        f"{'rounds IQR':>11}  {'goal':<12}  result"
    )
    for row in rows:
        ours = f"{row.ours:.1f} {row.unit}"
        baseline = f"{row.baseline:.1f} {row.unit}"
        spread = f"{row.spread[0]:.2f}-{row.spread[1]:.2f}"
        print(
            f"{row.name:<{width}}  {ours:>11}  {baseline:>11}  {row.ratio:>6.2f}x  "
            f"{spread:>11}  {row.goal_text:<12}  {row.verdict}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke test")
    parser.add_argument(
        "--plot",
        type=Path,
        help="where to write the publish-cost plot (default: docs/publish-cost.png; with"
        " --quick, none, so a smoke run never replaces the committed plot)",
    )
    args = parser.parse_args(argv)
    plot_path: Path | None = args.plot
    if plot_path is None and not args.quick:
        plot_path = Path(__file__).resolve().parent.parent / "docs" / "publish-cost.png"
    quiet_logging()
    rounds = QUICK_ROUNDS if args.quick else ROUNDS
    started = time.perf_counter()

    def progress(what: str) -> None:
        print(f"[{time.perf_counter() - started:5.1f}s] {what}", file=sys.stderr, flush=True)

    progress("publish")
    costs = {n: publish_costs(n, rounds) for n in PLOT_COUNTS}
    rows = publish_rows(costs)
    progress("command and switch")
    rows += asyncio.run(no_network_rows(rounds))
    progress("log-in over loopback")
    with identity_server() as url:
        rows += asyncio.run(loopback_rows(url, rounds))
    progress("import")
    row, third_party = import_row(QUICK_ROUNDS if args.quick else ROUNDS)
    rows.append(row)
    if plot_path is not None:
        plot(costs, plot_path)
    progress("done")

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"\nmedians of {rounds} interleaved rounds (ratio: of the medians; rounds IQR: quartiles "
        f"of the per-round ratios)\nPython {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load average {load}"
    )
    print_table(rows)
    print(f"\nimport baseline: {', '.join(third_party)} and the standard library they and we use")
    print(f"plot: {plot_path}" if plot_path else "plot: none (--quick; --plot PATH draws one)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
