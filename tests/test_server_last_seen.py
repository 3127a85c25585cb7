"""When a user was last seen is kept to within an hour: what anonymous retention counts from."""

from __future__ import annotations

import aiohttp

from mimi_reactive._server._records import SEEN_PRECISION
from mimi_reactive.server import IdentityServer, ServerSettings

from .conftest import CLIENT_ID
from .server_helpers import Caller, Clock

DAY = 86400.0


async def test_last_seen_is_written_at_most_once_an_hour(
    database_url: str, client_secret: str
) -> None:
    """A log-in within the hour after the last recorded one is not recorded (so a log-in rarely
    writes the users table); one past the hour is, and keeps the user from retention."""
    clock = Clock()
    settings = ServerSettings(clock=clock, sweep_interval=0, anonymous_retention_days=30)
    async with (
        IdentityServer(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            database=database_url,
            settings=settings,
        ) as server,
        aiohttp.ClientSession() as http,
    ):
        caller = Caller(http, server.url, CLIENT_ID, client_secret)
        within = (await caller.anonymous_user())["user"]["anonymous_id"]
        past = (await caller.anonymous_user())["user"]["anonymous_id"]
        clock.now += SEEN_PRECISION / 2
        assert (await caller.log_in_anonymously(within))[0] == 200  # within the hour
        clock.now += SEEN_PRECISION
        assert (await caller.log_in_anonymously(past))[0] == 200  # past it: recorded
        # 30 days after creation plus a little: only the unrecorded log-in's user is past 30.
        clock.now += 30 * DAY - SEEN_PRECISION
        assert (await server.sweep()).users == 1
        assert (await caller.log_in_anonymously(within))[0] == 401
        assert (await caller.log_in_anonymously(past))[0] == 200
