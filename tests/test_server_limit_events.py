"""An operator sees an attack: each failed log-in is an info event ``log_in.failed`` saying
why in a word, and each refusal past a limit an info event ``rate_limit.refused`` naming the
limit, both with the client's address (and client id, once known), never the email,
password, anonymous id or secret tried."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from mimi_reactive.server import ServerSettings

from .conftest import CLIENT_ID
from .server_helpers import Caller, Clock, calling
from .test_server_logs import capturing_logger

FAILURES = 2
EMAIL, PASSWORD = "victim@example.test", "correct horse battery"
WRONG_PASSWORD = "guess number one"


async def wrong_password(caller: Caller) -> int:
    return (await caller.post("/v1/sessions", {"email": EMAIL, "password": WRONG_PASSWORD}))[0]


async def wrong_anonymous_id(caller: Caller) -> int:
    return (await caller.log_in_anonymously(secrets.token_urlsafe(32)))[0]


async def taken_email(caller: Caller) -> int:
    return (await caller.post("/v1/users", {"email": EMAIL, "password": WRONG_PASSWORD}))[0]


async def wrong_client_secret(caller: Caller) -> int:
    wrong = Caller(caller.http, caller.url, CLIENT_ID, WRONG_PASSWORD)
    return (await wrong.post("/v1/anonymous-users"))[0]


CASES = [
    pytest.param(wrong_password, 400, "password", True, id="password"),
    pytest.param(wrong_anonymous_id, 400, "anonymous_id", True, id="anonymous_id"),
    pytest.param(taken_email, 409, "email_taken", True, id="email_taken"),
    pytest.param(wrong_client_secret, 401, "client_credentials", False, id="client_secret"),
]


@pytest.mark.parametrize(("fail", "status", "reason", "client_known"), CASES)
async def test_failed_log_ins_and_refusals_are_logged_without_secrets(
    client_secret: str, fail: Any, status: int, reason: str, client_known: bool
) -> None:
    """Each failure logs one info log_in.failed with its reason and the address (and the
    client id where the client is known); the one past the limit logs one info
    rate_limit.refused naming the limit; no event holds the email, password, id or secret."""
    captured, logger = capturing_logger()
    settings = ServerSettings(clock=Clock(), max_failed_log_ins_per_minute=FAILURES)
    async with calling(CLIENT_ID, client_secret, settings=settings, logger=logger) as (_, caller):
        created = await caller.post("/v1/users", {"email": EMAIL, "password": PASSWORD})
        assert created[0] == 201
        assert [await fail(caller) for _ in range(FAILURES + 1)] == [status] * FAILURES + [429]
    failed = [e for e in captured.entries if e["event"] == "log_in.failed"]
    refused = [e for e in captured.entries if e["event"] == "rate_limit.refused"]
    who = {"client_id": CLIENT_ID} if client_known else {}
    expected = {"log_level": "info", "reason": reason, **who, "ip": "127.0.0.1"}
    assert [{k: v for k, v in e.items() if k != "event"} for e in failed] == [expected] * FAILURES
    assert [(e["log_level"], e["limit"], e["ip"]) for e in refused] == [
        ("info", "failed_log_ins", "127.0.0.1")
    ]
    logged = repr(captured.entries)
    for secret in (EMAIL, PASSWORD, WRONG_PASSWORD, client_secret):
        assert secret not in logged


async def test_a_refused_anonymous_sign_up_is_logged_naming_its_limit(client_secret: str) -> None:
    """An anonymous sign-up past its hourly limit logs one info rate_limit.refused naming
    anonymous_sign_ups, and none before it."""
    captured, logger = capturing_logger()
    settings = ServerSettings(clock=Clock(), max_anonymous_sign_ups_per_hour=1)
    async with calling(CLIENT_ID, client_secret, settings=settings, logger=logger) as (_, caller):
        assert [(await caller.post("/v1/anonymous-users"))[0] for _ in range(2)] == [201, 429]
    refused = [e for e in captured.entries if e["event"] == "rate_limit.refused"]
    assert [(e["log_level"], e["limit"]) for e in refused] == [("info", "anonymous_sign_ups")]
