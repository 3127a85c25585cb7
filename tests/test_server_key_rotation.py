"""Signing-key rotation: `mimi-reactive rotate-signing-key` stores a new key that running
servers publish at their next read of the keys (every key_reload_interval, or when they serve
the JWKS, at most once per KEY_READ_THROTTLE) and sign with from PUBLISH_LEAD later (taken up
at such a read), and the retired key stays
published for one access-token lifetime plus PUBLISH_MARGIN after it stopped signing so its
tokens keep verifying, after which a sweep deletes it. Over both stores, in-process and as
real processes."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import jwt
import pytest
import structlog

from mimi_reactive._server._stores import open_database
from mimi_reactive._server._tokens import (
    KEY_READ_THROTTLE,
    PUBLISH_LEAD,
    PUBLISH_MARGIN,
    new_signing_key,
)
from mimi_reactive.server import IdentityServer, ServerSettings
from mimi_reactive.verify import AccessTokenVerifier

from .conftest import CLIENT_ID
from .server_helpers import Caller, Clock, eventually, execute, run_command
from .test_server_workers import CLIENT, SECRET, serve
from .test_verify_jwks import access_token

KID_LINE = re.compile(
    r"^signing key (\S+) added; running servers publish it within 5 seconds and sign with it within"
    r" 2 minutes$"
)


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> str:
    """Each store, named so that a second opener (the rotation) sees the server's data: a
    SQLite file rather than :memory:, or this test's own PostgreSQL schema."""
    return str(tmp_path / "ids.sqlite3") if database_url == ":memory:" else database_url


class Events:
    """The server's structlog events, kept in order; a waiter wakes on each new one."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self._new = asyncio.Event()
        self.logger = cast(
            structlog.typing.FilteringBoundLogger,
            structlog.wrap_logger(
                None,
                processors=[self._keep],
                wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
            ),
        )

    def _keep(self, _: Any, __: str, event: structlog.typing.EventDict) -> Any:
        self.seen.append(dict(event))
        self._new.set()
        raise structlog.DropEvent

    async def first(self, name: str) -> dict[str, Any]:
        """The first event called ``name``, waiting for it if it has not been logged yet."""
        async with asyncio.timeout(10):
            while True:
                for event in self.seen:
                    if event["event"] == name:
                        return event
                self._new.clear()
                await self._new.wait()


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def expiry_of(token: str) -> float:
    return float(jwt.decode(token, options={"verify_signature": False})["exp"])


async def published(http: aiohttp.ClientSession, url: str) -> list[str]:
    """The kids of the server's JWKS (asking for it also makes the server reload its keys, if
    it has not for KEY_READ_THROTTLE)."""
    async with http.get(url + "/.well-known/jwks.json") as response:
        assert response.status == 200
        return [key["kid"] for key in (await response.json())["keys"]]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_rotated_in_key_is_published_at_the_next_read_and_signs_from_the_lead(
    store: str, client_secret: str, http: aiohttp.ClientSession
) -> None:
    """After a rotation at T the JWKS holds both keys from its next read (within
    KEY_READ_THROTTLE) while tokens are still signed by the old key; from T + PUBLISH_LEAD (at
    the server's next read of its keys) they carry the new kid, and a verifier that fetched
    the JWKS just after the rotation verifies the first of them without fetching again (its
    clock stands still, so it may not)."""
    clock = Clock(time.time() - PUBLISH_LEAD)  # ends at the real now, which the verifier checks
    async with (
        IdentityServer(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            database=store,
            settings=ServerSettings(clock=clock),
        ) as server,
        AccessTokenVerifier(server.url, clock=Clock(0.0)) as verifier,
    ):
        caller = Caller(http, server.url, CLIENT_ID, client_secret)
        old = await access_token(caller)
        rotated_at = clock.now

        new_kid = await IdentityServer.rotate_signing_key(store, now=rotated_at)

        clock.now += KEY_READ_THROTTLE
        assert sorted(await published(http, server.url)) == sorted([kid_of(old), new_kid])
        assert (await verifier.verify(old)).client_id == CLIENT_ID  # fetches both keys
        clock.now = rotated_at + PUBLISH_LEAD - KEY_READ_THROTTLE
        await published(http, server.url)  # the server reads its keys again
        assert kid_of(await access_token(caller)) == kid_of(old)
        clock.now = rotated_at + PUBLISH_LEAD
        await published(http, server.url)
        new = await access_token(caller)
        assert kid_of(new) == new_kid
        assert (await verifier.verify(new)).client_id == CLIENT_ID
        assert (await verifier.verify(old)).client_id == CLIENT_ID


async def test_a_running_server_takes_up_the_new_key_on_its_timer(
    store: str, client_secret: str, http: aiohttp.ClientSession
) -> None:
    """Without anyone asking for the JWKS, the reload timer takes the rotated key up once its
    lead has passed and logs its kid; tokens issued from then on carry it; stopping the server
    ends the timer."""
    events = Events()
    clock = Clock(time.time())
    settings = ServerSettings(clock=clock, key_reload_interval=0.05)
    async with IdentityServer(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        database=store,
        settings=settings,
        logger=events.logger,
    ) as server:
        caller = Caller(http, server.url, CLIENT_ID, client_secret)
        old_kid = kid_of(await access_token(caller))

        new_kid = await IdentityServer.rotate_signing_key(store, now=clock.now)
        clock.now += PUBLISH_LEAD

        assert (await events.first("signing_key.taken_up"))["kid"] == new_kid
        assert kid_of(await access_token(caller)) == new_kid != old_kid
    timers = [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") == "_reload_keys"
    ]
    assert timers == []


async def test_the_retired_key_stays_published_until_every_token_it_signed_has_expired(
    store: str, client_secret: str, http: aiohttp.ClientSession
) -> None:
    """With the server clock moved by hand and the longest key_reload_interval: a server that
    has not read its keys since the rotation signs with the old key up to a reload interval
    after the new key's lead; the old key stays published until the last of those tokens has
    expired, one access-token lifetime plus PUBLISH_MARGIN after the new key started
    signing, and not a second longer."""
    clock = Clock(time.time())
    settings = ServerSettings(clock=clock, access_token_ttl=60, key_reload_interval=PUBLISH_MARGIN)
    async with IdentityServer(
        client_id=CLIENT_ID, client_secret=client_secret, database=store, settings=settings
    ) as server:
        caller = Caller(http, server.url, CLIENT_ID, client_secret)
        old_kid = kid_of(await access_token(caller))
        rotated_at = clock.now
        new_kid = await IdentityServer.rotate_signing_key(store, now=rotated_at)

        clock.now = rotated_at + PUBLISH_LEAD + settings.key_reload_interval - 1
        last = await access_token(caller)  # no read of the keys since the rotation
        assert kid_of(last) == old_kid
        clock.now = expiry_of(last)
        assert sorted(await published(http, server.url)) == sorted([old_kid, new_kid])

        clock.now = rotated_at + PUBLISH_LEAD + 60 + PUBLISH_MARGIN
        assert len(await published(http, server.url)) == 2
        clock.now += 1
        assert await published(http, server.url) == [new_kid]


async def test_a_key_added_by_a_clock_that_is_behind_still_signs(
    store: str, client_secret: str, http: aiohttp.ClientSession
) -> None:
    """A rotation run on a machine whose clock is an hour behind the server's: the new key
    signs all the same (the unretired key signs, whatever its creation time)."""
    clock = Clock(time.time())
    async with IdentityServer(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        database=store,
        settings=ServerSettings(clock=clock),
    ) as server:
        new_kid = await IdentityServer.rotate_signing_key(store, now=clock.now - 3600)
        clock.now += KEY_READ_THROTTLE
        assert new_kid in await published(http, server.url)
        created = await Caller(http, server.url, CLIENT_ID, client_secret).anonymous_user()
        assert kid_of(created["session"]["access_token"]) == new_kid


async def test_a_key_added_by_a_clock_that_is_ahead_signs_a_lead_after_the_server_read_it(
    store: str, client_secret: str, http: aiohttp.ClientSession
) -> None:
    """A rotation run on a machine whose clock is an hour ahead of the server's: the key is
    published at once and signs PUBLISH_LEAD after the server first read it, not an hour on."""
    clock = Clock(time.time())
    async with IdentityServer(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        database=store,
        settings=ServerSettings(clock=clock),
    ) as server:
        caller = Caller(http, server.url, CLIENT_ID, client_secret)
        old_kid = kid_of(await access_token(caller))
        new_kid = await IdentityServer.rotate_signing_key(store, now=clock.now + 3600)
        clock.now += KEY_READ_THROTTLE
        assert sorted(await published(http, server.url)) == sorted([old_kid, new_kid])
        assert kid_of(await access_token(caller)) == old_kid
        clock.now += PUBLISH_LEAD
        await published(http, server.url)  # the server reads its keys again
        assert kid_of(await access_token(caller)) == new_kid


@pytest.mark.parametrize("interval", [0, -1, PUBLISH_MARGIN + 1, float("nan")])
def test_a_reload_interval_past_the_margin_is_refused(interval: float) -> None:
    """A key reload interval must be positive and within PUBLISH_MARGIN: a worker slower than
    that could sign with a key the JWKS no longer publishes."""
    with pytest.raises(ValueError, match="key_reload_interval"):
        ServerSettings(key_reload_interval=interval)


async def test_the_command_adds_a_key_and_prints_only_its_kid(store: str, tmp_path: Path) -> None:
    """`rotate-signing-key --database` and `--config` each store a new key, retire the one
    before, exit 0 and print the new kid and never key material."""
    database = await open_database(store)
    try:
        await database.ensure_signing_key(new_signing_key(time.time()))
    finally:
        await database.close()
    config = tmp_path / "mimi.toml"
    config.write_text(f"[server]\ndatabase = {store!r}\n")

    printed, output = [], ""
    for args in (("--database", store), ("--config", str(config))):
        status, stdout, stderr = await run_command("rotate-signing-key", *args)
        assert status == 0, stderr
        assert stderr == ""
        match = KID_LINE.match(stdout.strip())
        assert match is not None, stdout
        printed.append(match.group(1))
        output += stdout

    database = await open_database(store)
    try:
        keys = await database.signing_keys()
    finally:
        await database.close()
    assert [key.kid for key in keys][:2] == printed[::-1]
    assert len(keys) == 3
    assert keys[0].retired_at is None
    assert all(key.retired_at is not None for key in keys[1:])
    for key in keys:
        pem_body = "".join(key.private_pem.splitlines()[1:-1])
        assert pem_body[:40] not in output.replace("\n", "")
    assert "PRIVATE KEY" not in output


@pytest.mark.parametrize(
    ("database", "named"),
    [
        ("{tmp}", "{tmp}"),
        ("postgresql://mimi:hunter2@127.0.0.1:1/db", "127.0.0.1:1/db"),
        ("postgresql://mimi:hunter2@127.0.0.1:99999/db", "127.0.0.1:99999/db: its port"),
    ],
    ids=["directory", "unreachable-postgresql", "postgresql-port-past-65535"],
)
async def test_the_command_that_cannot_open_the_database_says_why(
    tmp_path: Path, database: str, named: str
) -> None:
    """A database that cannot be opened: exit 1 with one line naming it (never a password)."""
    status, stdout, stderr = await run_command(
        "rotate-signing-key", "--database", database.format(tmp=tmp_path)
    )
    assert status == 1
    assert stdout == ""
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("mimi-reactive rotate-signing-key: cannot open the database")
    assert named.format(tmp=tmp_path) in stderr
    assert "hunter2" not in stderr


async def test_a_running_serve_takes_up_a_key_rotated_from_the_command_line(
    store: str, http: aiohttp.ClientSession
) -> None:
    """`serve` running while an operator runs `rotate-signing-key` on its database: its JWKS
    holds both keys at once while its tokens still carry the old kid; once the new key's lead
    has passed (its stored times moved back by it, the server's clock being real) its next
    tokens carry the new kid, and tokens of either key verify."""
    async with serve("--database", store) as running:
        caller = Caller(http, running.url, CLIENT, SECRET)
        old = await access_token(caller)
        status, stdout, stderr = await run_command("rotate-signing-key", "--database", store)
        assert status == 0, stderr
        match = KID_LINE.match(stdout.strip())
        assert match is not None, stdout
        new_kid = match.group(1)

        async def both_published() -> bool:
            return sorted(await published(http, running.url)) == sorted([kid_of(old), new_kid])

        async with asyncio.timeout(30):
            await eventually(both_published)  # its next read: within KEY_READ_THROTTLE
        assert kid_of(await access_token(caller)) == kid_of(old)
        await execute(
            store,
            f"UPDATE signing_keys SET created_at = created_at - {PUBLISH_LEAD},"  # noqa: S608
            f" retired_at = retired_at - {PUBLISH_LEAD}",
        )
        signed: list[str] = []

        async def signs_with_the_new_key() -> bool:
            await published(http, running.url)  # the server reads its keys again
            signed.append(await access_token(caller))
            return kid_of(signed[-1]) == new_kid

        # Each try signs up a user: slowly, well within the sign-up limit.
        async with asyncio.timeout(30):
            await eventually(signs_with_the_new_key, every=0.5)
        new = signed[-1]
        async with AccessTokenVerifier(running.url) as verifier:
            for token in (old, new):
                assert (await verifier.verify(token)).client_id == CLIENT


async def stored_kids(store: str) -> list[str]:
    """The kids of the store's signing keys, newest first, read by an opener of the test's own."""
    database = await open_database(store)
    try:
        return [key.kid for key in await database.signing_keys()]
    finally:
        await database.close()


async def test_a_sweep_deletes_retired_keys_once_nothing_they_signed_can_verify(
    store: str, client_secret: str, http: aiohttp.ClientSession
) -> None:
    """After two rotations, with the server clock past the first retired key's window, a sweep
    deletes that key (and logs it), keeps the signing key and the one retired a second ago;
    the JWKS serves both and tokens of both verify. The signing key outlives any window."""
    ttl = 600.0
    window = ttl + PUBLISH_MARGIN
    clock = Clock(time.time() - window - 2 * PUBLISH_LEAD)  # ends at the real now (verified)
    events = Events()
    settings = ServerSettings(clock=clock, access_token_ttl=ttl, sweep_interval=0)
    async with IdentityServer(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        database=store,
        settings=settings,
        logger=events.logger,
    ) as server:
        caller = Caller(http, server.url, CLIENT_ID, client_secret)
        first = kid_of(await access_token(caller))
        second = await IdentityServer.rotate_signing_key(store, now=clock.now)
        clock.now += PUBLISH_LEAD + window  # the first key's last published second
        assert (await server.sweep()).signing_keys == 0
        assert first in await published(http, server.url)
        signed_by_second = await access_token(caller)
        assert kid_of(signed_by_second) == second

        third = await IdentityServer.rotate_signing_key(store, now=clock.now)
        rotated_at = clock.now
        clock.now += KEY_READ_THROTTLE
        assert (await server.sweep()).signing_keys == 1
        assert [event["signing_keys"] for event in events.seen if "signing_keys" in event] == [0, 1]
        assert await stored_kids(store) == [third, second]
        assert sorted(await published(http, server.url)) == sorted([second, third])
        clock.now = rotated_at + PUBLISH_LEAD
        await published(http, server.url)  # the server reads its keys again
        signed_by_third = await access_token(caller)
        assert kid_of(signed_by_third) == third
        async with AccessTokenVerifier(server.url) as verifier:
            for token in (signed_by_second, signed_by_third):
                assert (await verifier.verify(token)).client_id == CLIENT_ID

        clock.now += 365 * 86400.0
        assert (await server.sweep()).signing_keys == 1
        assert await stored_kids(store) == [third]
        assert await published(http, server.url) == [third]


async def test_a_sweep_keeps_every_key_when_none_is_left_to_sign(
    store: str, client_secret: str
) -> None:
    """Keys that are all retired (no command does that) all stay: the sweep never deletes the
    last key a server could sign with."""
    clock = Clock(time.time())
    settings = ServerSettings(clock=clock, sweep_interval=0)
    async with IdentityServer(
        client_id=CLIENT_ID, client_secret=client_secret, database=store, settings=settings
    ) as server:
        await IdentityServer.rotate_signing_key(store, now=clock.now)
        await execute(store, f"UPDATE signing_keys SET retired_at = {clock.now}")  # noqa: S608
        clock.now += 365 * 86400.0
        assert (await server.sweep()).signing_keys == 0
        assert len(await stored_kids(store)) == 2


async def test_sweep_database_keeps_retired_keys_unless_told_to_delete_them(store: str) -> None:
    """`IdentityServer.sweep_database` keeps retired keys by default (its settings' lifetime
    may not be the servers'); with ``delete_retired_keys=True`` it deletes those past it."""
    await IdentityServer.migrate_database(store)
    long_ago = time.time() - 10 * 86400.0
    first = await IdentityServer.rotate_signing_key(store, now=long_ago)
    second = await IdentityServer.rotate_signing_key(store, now=long_ago)
    settings = ServerSettings(access_token_ttl=60)
    assert (await IdentityServer.sweep_database(store, settings)).signing_keys == 0
    assert await stored_kids(store) == [second, first]
    swept = await IdentityServer.sweep_database(store, settings, delete_retired_keys=True)
    assert swept.signing_keys == 1
    assert await stored_kids(store) == [second]
