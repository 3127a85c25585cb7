"""schemathesis runs every check, the stateful phase included, against a real server, and the
served OpenAPI document is the one generated from the request models."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import pytest

from mimi_reactive._server._openapi import OPERATIONS, openapi_document
from mimi_reactive._server._stores import is_postgres
from mimi_reactive.server import IdentityServer, ServerSettings

from .conftest import CLIENT_ID, stores

# A schema-valid refresh token that was never issued, anonymous id of no user, or wrong email
# or password is refused 400 invalid_grant, as RFC 6749 section 5.2 says: tell the
# positive-data check that this answer is expected there.
CONFIG = """
[auth.openapi.client]
username = "{client_id}"
password = "{client_secret}"
""" + "".join(
    f"""
[[operations]]
include-operation-id = "{operation}"
checks.positive_data_acceptance.expected-statuses = ["200", "400", "401"]
"""
    for operation in ("refreshSession", "logIn", "logInAnonymously")
)


async def test_served_document_is_the_generated_one(server: IdentityServer) -> None:
    """GET /openapi.json serves exactly the document generated from the models and routes."""
    async with aiohttp.ClientSession() as http, http.get(server.url + "/openapi.json") as r:
        assert await r.json() == openapi_document()
    documented = {
        (method.upper(), path)
        for path, item in openapi_document()["paths"].items()
        for method in item
    }
    assert documented == {(op.method, op.path) for op in OPERATIONS}


@pytest.mark.slow
@pytest.mark.timeout(240)
@stores("sqlite-file", "postgresql")
async def test_schemathesis_finds_nothing(
    tmp_path: Path, client_secret: str, database_url: str
) -> None:
    """schemathesis with all checks and the coverage, fuzzing and stateful phases reports no
    failure against a real server (bounded examples, so it stays well under two minutes)."""
    # Examples per operation: the full run on SQLite; on PostgreSQL enough for every phase to
    # reach every route through the other store, in half the time (keeps the suite short).
    examples = 5 if is_postgres(database_url) else 20
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(client_id=CLIENT_ID, client_secret=client_secret))
    # The limits are tested on their own (test_server_limits.py); here they would turn the
    # fuzzer's thousands of calls from one address into 429s that hide the API's behaviour.
    unlimited = ServerSettings(
        max_anonymous_sign_ups_per_hour=0,
        max_credential_sign_ups_per_hour=0,
        max_failed_log_ins_per_minute=0,
    )
    async with IdentityServer(
        client_id=CLIENT_ID,
        client_secret=client_secret,
        database=database_url,
        settings=unlimited,
    ) as server:
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("st")),
            "--config-file",
            str(config),
            "run",
            server.url + "/openapi.json",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            str(examples),
            # One seed, so a run that fails fails again when replayed; MIMI_FUZZ_SEED explores.
            "--seed",
            os.environ.get("MIMI_FUZZ_SEED", "20261125"),
            "--no-color",
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 200)
    report = output.decode()
    assert process.returncode == 0, report
    assert "Stateful" in report
    assert "failures" not in report.lower().split("summary")[-1], report
