"""Two rotations of the signing key at once on one PostgreSQL database (two operators, or a
rotation job on each of two hosts): one key is left to sign and every other is retired, so the
JWKS and the sweep treat them as after one rotation. Over the real PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets

from mimi_reactive.server import IdentityServer

from .server_helpers import eventually, query_value
from .test_server_postgres_migrate import connected


async def test_two_rotations_at_once_leave_one_key_unretired(postgres_url: str) -> None:
    """Two rotations that run together, both held up by a transaction on the current key's
    row, leave exactly one key unretired: the one added last retires the other's."""
    await IdentityServer.rotate_signing_key(postgres_url)  # the schema and a current key
    name = f"rotation-{secrets.token_hex(4)}"  # the rotations' sessions, among other tests'
    rotating = f"{postgres_url}&application_name={name}"
    waiting = (
        "SELECT count(*) FROM pg_stat_activity"  # noqa: S608 (name is hex)
        f" WHERE application_name = '{name}' AND wait_event_type = 'Lock'"
    )
    async with connected(postgres_url) as holder:
        async with holder.transaction():
            await holder.execute("SELECT kid FROM signing_keys FOR UPDATE")
            rotations = [
                asyncio.ensure_future(IdentityServer.rotate_signing_key(rotating)) for _ in range(2)
            ]

            async def both_wait() -> bool:
                return int(await query_value(postgres_url, waiting)) == 2

            async with asyncio.timeout(30):
                await eventually(both_wait)
        added = await asyncio.gather(*rotations)
    unretired = await query_value(
        postgres_url, "SELECT array_agg(kid) FROM signing_keys WHERE retired_at IS NULL"
    )
    assert len(unretired) == 1
    assert unretired[0] in added
