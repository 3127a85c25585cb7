"""How much the session layer costs, beside what it is built on.

Run: .venv/bin/python benchmarks/session.py
Each row prints our figure and its baseline in the same run:
- publish: a state through StateStream (dedupe + isolated subscribers) vs a plain BehaviorSubject;
- command: a queued command the guards satisfy (no network) vs calling decide() directly;
- log-in: an anonymous log-in through MimiCore + HttpBackend vs a raw aiohttp POST, both to the
  reference server on loopback.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable

import aiohttp
import structlog
from reactivex.subject import BehaviorSubject

from mimi_reactive import (
    AuthRoute,
    BackendCapabilities,
    MimiConfiguration,
    MimiCore,
    MimiUser,
    SessionState,
    Transition,
)
from mimi_reactive._guards import GuardContext, decide
from mimi_reactive._stream import StateStream
from mimi_reactive.backends.http import HttpBackend
from mimi_reactive.server import IdentityServer

ANONYMOUS_ONLY = MimiConfiguration(allow_anonymous_user_only=True)


def per_call_us(run: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        run()
    return (time.perf_counter() - started) / count * 1e6


def row(name: str, ours: float, baseline: float, baseline_name: str) -> None:
    print(
        f"{name:<10} {ours:>10.1f} us   {baseline:>10.1f} us  {ours / baseline:>6.2f}x  "
        f"(baseline: {baseline_name})"
    )


def publish() -> None:
    count = 20_000
    users = [MimiUser(id=str(i)) for i in range(2)]
    states = [SessionState(users[i % 2], None, Transition.LOGGED_IN) for i in range(count)]
    stream = StateStream(SessionState(), logger=structlog.get_logger("bench"))
    subject = BehaviorSubject(SessionState())
    for _ in range(3):
        stream.observable.subscribe(lambda s: None)
        subject.subscribe(lambda s: None)
    ours = iter(states)
    theirs = iter(states)
    row(
        "publish",
        per_call_us(lambda: stream.publish(next(ours)), count),
        per_call_us(lambda: subject.on_next(next(theirs)), count),
        "BehaviorSubject.on_next",
    )


async def command_and_log_in() -> None:
    secret = secrets.token_urlsafe(32)
    async with (
        IdentityServer(client_id="bench", client_secret=secret) as server,
        MimiCore.start(
            client_id="bench",
            client_secret=secret,
            backend=HttpBackend(server.url),
            configuration=ANONYMOUS_ONLY,
        ) as core,
    ):
        user = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
        route = AuthRoute.log_in_anonymously(user.anonymous_id)
        count = 5_000
        started = time.perf_counter()
        for _ in range(count):
            await core.auth.run(route)
        ours = (time.perf_counter() - started) / count * 1e6
        context = GuardContext(core.auth.state, route, ANONYMOUS_ONLY, BackendCapabilities())
        row("command", ours, per_call_us(lambda: decide(context), count), "decide() alone")

        ids = []
        for _ in range(20):
            created = await core.auth.authenticate(AuthRoute.sign_up_anonymously())
            ids.append(created.anonymous_id)
        rounds = 200
        started = time.perf_counter()
        for i in range(rounds):
            await core.auth.run(AuthRoute.log_in_anonymously(ids[i % len(ids)]))
        ours = (time.perf_counter() - started) / rounds * 1e6

        auth = aiohttp.encode_basic_auth("bench", secret)
        async with aiohttp.ClientSession(headers={"Authorization": auth}) as http:
            started = time.perf_counter()
            for i in range(rounds):
                async with http.post(
                    server.url + "/v1/sessions/anonymous",
                    json={"anonymous_id": ids[i % len(ids)]},
                ) as response:
                    await response.json()
                # The core also revokes the user it replaces: one more call per switch.
                async with http.post(
                    server.url + "/v1/sessions/revoke", json={"token": "x"}
                ) as response:
                    await response.json()
            baseline = (time.perf_counter() - started) / rounds * 1e6
        row("log-in", ours, baseline, "raw aiohttp log-in + revoke")


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    print(f"{'':<10} {'ours':>13}   {'baseline':>13}  {'ratio':>7}")
    publish()
    asyncio.run(command_and_log_in())


if __name__ == "__main__":
    main()
