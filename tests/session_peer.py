"""Another process sharing a session file, driven over stdin and reporting on stdout.

Run as ``python -m tests.session_peer URL PATH`` with ``MIMI_CLIENT_SECRET`` set. Prints one
JSON line per published state; reads commands (``sign_up``, ``log_out``, ``token``, ``refresh``,
which reports the access token renewed, ``quit``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import structlog

from mimi_reactive import (
    AuthRoute,
    FileSessionStorage,
    MimiConfiguration,
    MimiCore,
    RefreshPolicy,
    RetryPolicy,
    SessionState,
)
from mimi_reactive.backends.http import HttpBackend


def report(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def on_state(state: SessionState) -> None:
    report(transition=state.transition.value, user=state.user.id if state.user else None)


async def main(url: str, path: str) -> None:
    configuration = MimiConfiguration(
        allow_anonymous_user_only=True,
        refresh=RefreshPolicy(ahead=0.5),
        retry=RetryPolicy(initial_delay=0.05, max_delay=0.2),
    )
    async with MimiCore.start(
        client_id="test-app",
        client_secret=os.environ["MIMI_CLIENT_SECRET"],
        backend=HttpBackend(url),
        configuration=configuration,
        storage=FileSessionStorage(path, poll_interval=0.1),
    ) as core:
        core.auth.states.subscribe(on_state)
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while command := (await reader.readline()).decode().strip():
            if command == "sign_up":
                await core.auth.authenticate(AuthRoute.sign_up_anonymously())
            elif command == "log_out":
                await core.auth.log_out()
            elif command == "token":
                report(token=await core.auth.access_token())
            elif command == "refresh":
                await core.auth.refresh()
                report(refreshed=await core.auth.access_token())
            elif command == "quit":
                break


if __name__ == "__main__":
    # This process is an app: it routes the library's logs away from its report stream.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    asyncio.run(main(sys.argv[1], sys.argv[2]))
