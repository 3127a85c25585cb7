"""Telling which emails exist costs what guessing passwords does: every 409 ``email_taken``
(sign-up or promotion) counts as a failed log-in of the client IP, and credential sign-ups
have a per-IP hourly limit of their own, on either store."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from mimi_reactive._server._workers import WorkersRefusedError, check_workers
from mimi_reactive.server import IdentityServer, ServerSettings

from .conftest import CLIENT_ID
from .server_helpers import Caller, Clock

SECRET = secrets.token_urlsafe(32)
FAILURES = 3  # failed log-ins per minute
SIGN_UPS = 6  # credential sign-ups per hour (more than any other test here makes)
PASSWORD = "the victim's passphrase"


@pytest.fixture
def clock() -> Clock:
    return Clock(3600.0 * 1000)  # the start of an hour and of a minute


async def limited(
    clock: Clock, database: str, *, failures: int = FAILURES, sign_ups: int = SIGN_UPS
) -> IdentityServer:
    settings = ServerSettings(
        clock=clock,
        max_failed_log_ins_per_minute=failures,
        max_credential_sign_ups_per_hour=sign_ups,
    )
    return IdentityServer(
        client_id=CLIENT_ID, client_secret=SECRET, settings=settings, database=database
    )


@pytest.fixture
async def server(clock: Clock, database_url: str) -> AsyncIterator[IdentityServer]:
    async with await limited(clock, database_url) as running:
        yield running


@pytest.fixture
async def caller(server: IdentityServer) -> AsyncIterator[Caller]:
    async with aiohttp.ClientSession() as http:
        yield Caller(http, server.url, CLIENT_ID, SECRET)


def new_email() -> str:
    return f"user-{secrets.token_hex(4)}@example.test"


async def sign_up(caller: Caller, email: str) -> tuple[int, str | None]:
    """The status of a credential sign-up, and its error code if refused."""
    status, answer, _ = await caller.post("/v1/users", {"email": email, "password": PASSWORD})
    return status, answer.get("error", {}).get("code")


Probe = Callable[[Caller, str], Awaitable[tuple[int, str | None]]]


async def sign_up_probe(caller: Caller) -> Probe:
    return sign_up


async def promote_probe(caller: Caller) -> Probe:
    """Promotion of one anonymous user, asked again for each email (a 409 leaves it anonymous)."""
    access_token = (await caller.anonymous_user())["session"]["access_token"]

    async def promote(caller: Caller, email: str) -> tuple[int, str | None]:
        body = {"access_token": access_token, "email": email, "password": "attacker's pw"}
        status, answer, _ = await caller.post("/v1/users/promote", body)
        return status, answer.get("error", {}).get("code")

    return promote


# Each route whose answer tells that an email is registered.
PROBES: dict[str, Callable[[Caller], Awaitable[Probe]]] = {
    "sign_up": sign_up_probe,
    "promote": promote_probe,
}


@pytest.mark.parametrize("make_probe", PROBES.values(), ids=PROBES)
async def test_each_email_taken_answer_counts_as_a_failed_log_in(
    caller: Caller, clock: Clock, make_probe: Callable[[Caller], Awaitable[Probe]]
) -> None:
    """3 answers email_taken in a minute, then 429 with Retry-After, for probes and the victim's
    own log-in from that IP alike; the next minute answers again."""
    victim = new_email()
    assert await sign_up(caller, victim) == (201, None)
    probe = await make_probe(caller)
    for _ in range(FAILURES):
        assert await probe(caller, victim) == (409, "email_taken")
    assert await probe(caller, victim) == (429, "rate_limited")
    status, _, headers = await caller.post("/v1/sessions", {"email": victim, "password": PASSWORD})
    assert (status, int(headers["Retry-After"])) == (429, 60)
    clock.now += 60
    assert await probe(caller, victim) == (409, "email_taken")


async def test_failures_of_every_kind_count_together(caller: Caller) -> None:
    """A wrong password, a taken email at sign-up and one at promotion use up one budget."""
    victim = new_email()
    assert await sign_up(caller, victim) == (201, None)
    wrong = {"email": victim, "password": "not the passphrase"}
    assert (await caller.post("/v1/sessions", wrong))[0] == 400
    assert await sign_up(caller, victim) == (409, "email_taken")
    assert await (await promote_probe(caller))(caller, victim) == (409, "email_taken")
    assert await sign_up(caller, new_email()) == (429, "rate_limited")


async def test_credential_sign_ups_past_the_hourly_limit_get_429(
    caller: Caller, clock: Clock
) -> None:
    """The 7th credential sign-up in an hour is 429 with Retry-After, whether or not its email
    is free; anonymous sign-ups are not counted; the next hour is open."""
    for _ in range(SIGN_UPS):
        assert await sign_up(caller, new_email()) == (201, None)
    await caller.anonymous_user()
    clock.now += 600
    status, answer, headers = await caller.post(
        "/v1/users", {"email": new_email(), "password": PASSWORD}
    )
    assert (status, answer["error"]["code"], int(headers["Retry-After"])) == (
        429,
        "rate_limited",
        3000,
    )
    clock.now += 3000
    assert await sign_up(caller, new_email()) == (201, None)


@pytest.mark.parametrize(
    ("failures", "sign_ups", "answers"),
    [
        (0, 0, [(201, None)] + [(409, "email_taken")] * 6),
        (0, 2, [(201, None)] + [(409, "email_taken")] + [(429, "rate_limited")] * 5),
        (2, 0, [(201, None)] + [(409, "email_taken")] * 2 + [(429, "rate_limited")] * 4),
    ],
    ids=["both_off", "sign_up_limit_only", "failure_limit_only"],
)
async def test_a_limit_set_to_zero_is_off(
    clock: Clock,
    database_url: str,
    failures: int,
    sign_ups: int,
    answers: list[tuple[int, str | None]],
) -> None:
    """Each limit works alone, and 0 turns it off: sign-ups with one email, answered in turn."""
    email = new_email()
    async with (
        await limited(clock, database_url, failures=failures, sign_ups=sign_ups) as server,
        aiohttp.ClientSession() as http,
    ):
        caller = Caller(http, server.url, CLIENT_ID, SECRET)
        assert [await sign_up(caller, email) for _ in answers] == answers


@pytest.mark.parametrize(
    ("limits", "refused"),
    [
        ({"max_credential_sign_ups_per_hour": 5}, True),
        ({"max_anonymous_sign_ups_per_hour": 5}, True),
        ({"max_failed_log_ins_per_minute": 5}, True),
        ({}, False),
    ],
    ids=["credential_sign_ups", "anonymous_sign_ups", "failed_log_ins", "all_off"],
)
def test_several_workers_need_shared_counts_for_any_limit(
    limits: dict[str, int], refused: bool
) -> None:
    """Per-process counts with several workers are refused while any limit is on."""
    off = {
        "max_credential_sign_ups_per_hour": 0,
        "max_anonymous_sign_ups_per_hour": 0,
        "max_failed_log_ins_per_minute": 0,
    }
    settings = ServerSettings(**{**off, **limits})  # type: ignore[arg-type]
    database = "postgresql://mimi@127.0.0.1:5432/identity"
    if refused:
        with pytest.raises(WorkersRefusedError, match="--rate-limit-storage"):
            check_workers(2, database, settings)
    else:
        check_workers(2, database, settings)
