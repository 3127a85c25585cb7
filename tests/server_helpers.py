"""Helpers for the server tests: a movable clock and a JSON caller over real HTTP."""

from __future__ import annotations

from typing import Any

import aiohttp


class Clock:
    """A server clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Caller:
    """Posts JSON to one server as one client and returns (status, body, headers)."""

    def __init__(self, http: aiohttp.ClientSession, url: str, client_id: str, secret: str) -> None:
        self.http, self.url = http, url
        self.auth = aiohttp.encode_basic_auth(client_id, secret)

    async def post(self, path: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
        async with self.http.post(
            self.url + path, json={} if body is None else body, headers={"Authorization": self.auth}
        ) as response:
            return response.status, await response.json(), dict(response.headers)

    async def anonymous_user(self) -> dict[str, Any]:
        status, created, _ = await self.post("/v1/anonymous-users")
        assert status == 201, created
        return created  # type: ignore[no-any-return]

    async def log_in_anonymously(self, anonymous_id: str) -> tuple[int, Any]:
        status, body, _ = await self.post("/v1/sessions/anonymous", {"anonymous_id": anonymous_id})
        return status, body

    async def refresh(self, refresh_token: str) -> tuple[int, Any]:
        status, body, _ = await self.post(
            "/v1/token", {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )
        return status, body
