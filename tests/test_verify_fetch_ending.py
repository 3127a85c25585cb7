"""A JWKS fetch of AccessTokenVerifier that does not end as fetches do: the caller that started
it gives up (cancelled), or the verifier is closed while it runs. Against the real server,
through a proxy that holds the JWKS answer until the test lets it go."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from mimi_reactive import CoreClosedError
from mimi_reactive.server import IdentityServer, ServerSettings
from mimi_reactive.verify import AccessTokenVerifier

from .conftest import CLIENT_ID
from .server_helpers import Caller, Clock
from .test_verify_jwks import JWKS, JwksProxy, access_token, forged_kid


class HeldJwksProxy(JwksProxy):
    """A ``JwksProxy`` whose JWKS answers wait until ``release`` is set (one whose caller
    left meanwhile is not forwarded); ``asked`` is set once a JWKS request has arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = asyncio.Event()
        self.release = asyncio.Event()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if request.path == JWKS:
            self.asked.set()
            await self.release.wait()
            if request.transport is None:  # the caller left: the server may be gone too
                return web.Response(status=204)
        return await super()._forward(request)


@pytest.fixture
async def proxy() -> AsyncIterator[HeldJwksProxy]:
    running = HeldJwksProxy()
    async with running:
        try:
            yield running
        finally:
            running.release.set()  # a held answer would keep the proxy's end waiting


@pytest.fixture
async def caller(proxy: HeldJwksProxy, client_secret: str, tmp_path: Path) -> AsyncIterator[Caller]:
    """A caller of the server, whose tokens name the proxy as their issuer."""
    settings = ServerSettings(issuer=proxy.url, clock=Clock(time.time()))
    async with (
        IdentityServer(
            client_id=CLIENT_ID,
            client_secret=client_secret,
            database=str(tmp_path / "ids.sqlite3"),
            settings=settings,
        ) as server,
        aiohttp.ClientSession() as http,
    ):
        proxy.forward_to(server.url)
        yield Caller(http, server.url, CLIENT_ID, client_secret)


@pytest.fixture
async def verifier(proxy: HeldJwksProxy) -> AsyncIterator[AccessTokenVerifier]:
    async with AccessTokenVerifier(proxy.url, clock=Clock()) as checking:
        yield checking


async def given_up_while_fetching(
    verifier: AccessTokenVerifier, proxy: HeldJwksProxy, token: str
) -> None:
    """A verify of ``token`` cancelled while the fetch of the JWKS it started is held."""
    verifying = asyncio.create_task(verifier.verify(token))
    await proxy.asked.wait()
    verifying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await verifying


async def test_a_caller_giving_up_leaves_the_fetch_to_the_others(
    caller: Caller, verifier: AccessTokenVerifier, proxy: HeldJwksProxy
) -> None:
    """A verify cancelled while its fetch of the JWKS runs (its client went away, a timeout)
    does not cancel the fetch: a genuine token verifies with it, with no second fetch, where
    it was refused as unknown_key for the whole refetch interval."""
    genuine = await access_token(caller)
    await given_up_while_fetching(verifier, proxy, genuine)
    proxy.release.set()
    assert (await verifier.verify(genuine)).client_id == CLIENT_ID
    assert proxy.requests == 1


async def test_callers_waiting_on_a_fetch_whose_starter_gave_up_get_its_keys(
    caller: Caller, verifier: AccessTokenVerifier, proxy: HeldJwksProxy
) -> None:
    """Callers that wait on the fetch another started verify with its keys when that one is
    cancelled; forged kids among them stay unknown_key, and the fetch is the only one."""
    genuine = await access_token(caller)
    first = asyncio.create_task(verifier.verify(genuine))
    await proxy.asked.wait()
    forged = [forged_kid(genuine) for _ in range(5)]
    waiting = asyncio.gather(
        *(verifier.verify(token) for token in [genuine] * 5 + forged), return_exceptions=True
    )
    await asyncio.sleep(0)  # one turn: each waiter reaches the fetch before its starter gives up
    first.cancel()
    proxy.release.set()
    outcomes = await waiting
    assert [getattr(outcome, "client_id", outcome) for outcome in outcomes[:5]] == [CLIENT_ID] * 5
    assert [getattr(outcome, "reason", outcome) for outcome in outcomes[5:]] == ["unknown_key"] * 5
    assert proxy.requests == 1


async def test_closing_during_a_fetch_raises_core_closed_and_logs_no_outage(
    caller: Caller,
    verifier: AccessTokenVerifier,
    proxy: HeldJwksProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A verify whose fetch is cut short by ``close()`` raises CoreClosedError, as any call
    after the close does, and logs no verify.jwks_unavailable: the issuer is not down."""
    genuine = await access_token(caller)
    caplog.set_level(logging.DEBUG, logger="mimi_reactive.verify")
    pending = asyncio.create_task(verifier.verify(genuine))
    await proxy.asked.wait()
    await verifier.close()
    with pytest.raises(CoreClosedError):
        await pending
    assert not [r for r in caplog.records if "jwks_unavailable" in r.getMessage()]


async def test_a_fetch_ended_by_close_after_its_callers_gave_up_reports_nothing(
    caller: Caller, verifier: AccessTokenVerifier, proxy: HeldJwksProxy
) -> None:
    """A fetch whose every caller was cancelled, then cut short by ``close()``, ends without
    asyncio's "exception never retrieved" report: nobody is left to hear its CoreClosedError."""
    reported: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        await given_up_while_fetching(verifier, proxy, await access_token(caller))
        await verifier.close()
        gc.collect()  # a task's unretrieved exception is reported as the task is collected
    finally:
        loop.set_exception_handler(None)
    assert reported == []
