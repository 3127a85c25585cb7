"""Which address the limits count by behind a trusted proxy: seen through the sign-up limit
(one per hour per address) of a real server, for each shape of X-Forwarded-For."""

from __future__ import annotations

import secrets

from mimi_reactive.server import ServerSettings

from .server_helpers import Clock, calling

# (the first sign-up's X-Forwarded-For, the second's, whether both count as one address);
# a tuple is the header's lines in order
CASES: list[tuple[str | tuple[str, ...], str | tuple[str, ...], bool]] = [
    ("203.0.113.1", "203.0.113.2", False),
    ("203.0.113.1", "198.51.100.7, 203.0.113.1", True),  # the rightmost untrusted hop
    ("203.0.113.1, 127.0.0.1", "203.0.113.1", True),  # a trusted hop is skipped
    ("127.0.0.1, 127.0.0.1", "", True),  # only trusted hops: the peer
    (" 203.0.113.1 ", "203.0.113.1", True),  # spaces around a hop
    ("2001:db8::1", "2001:db8:0:0::1", True),  # one address, however written
    ("not-an-address", "", True),  # not an address: the peer
    ("203.0.113.1, not-an-address", "", True),  # it ends the trust, even with one beyond
    ("203.0.113.1, not-an-address", "203.0.113.1", False),
    # A proxy that appends a line of its own: the client's lines cannot choose the address.
    (("198.51.100.1", "203.0.113.1"), ("198.51.100.2", "203.0.113.1"), True),
    (("198.51.100.1", "203.0.113.1"), "203.0.113.1", True),
    (("198.51.100.1, 198.51.100.2", "203.0.113.1, 127.0.0.1"), "203.0.113.1", True),
    (("203.0.113.1", "127.0.0.1"), "203.0.113.1", True),  # trusted hops go on across lines
    (("203.0.113.1", "203.0.113.2"), "203.0.113.1", False),
    (("", "203.0.113.1"), "203.0.113.1", True),  # a blank line is no hop
    (("203.0.113.1,", " ,127.0.0.1"), "203.0.113.1", True),  # nor an empty element
    ("203.0.113.1,,, ", "203.0.113.1", True),
    (("not-an-address", "203.0.113.1"), "203.0.113.1", True),  # garbage left of the client
    (("203.0.113.1", "not-an-address"), "", True),  # garbage the proxy passed: the peer
    (("203.0.113.1", "garbage, 127.0.0.1"), "", True),
    (("2001:db8::1", "127.0.0.1"), "2001:DB8::1", True),  # IPv6 across lines
    (("2001:db8::1", "::1"), "2001:db8::2", False),  # ::1 is not a trusted proxy here
    ("203.0.113.1:4711", "203.0.113.1", True),  # a port some proxies add is not the address
    ("[2001:db8::1]:4711", "2001:db8::1", True),
    ("[2001:db8::1]", "2001:db8::1", True),
    ("203.0.113.1:http", "", True),  # not a port: not an address
    ("[2001:db8::1]x", "", True),
    ("203.0.113.1:1:2", "", True),
]


async def test_each_forwarded_for_counts_as_its_client_address() -> None:
    """Two sign-ups with these X-Forwarded-For headers from a trusted proxy share one limit
    exactly when they name one client address."""
    clock = Clock()
    settings = ServerSettings(
        clock=clock, max_anonymous_sign_ups_per_hour=1, trusted_proxies=frozenset({"127.0.0.1"})
    )
    secret = secrets.token_urlsafe(32)
    async with calling("proxied-app", secret, settings=settings) as (_, caller):
        for first, second, same in CASES:
            clock.now += 3600  # every limit of the case before has ended
            assert await caller.sign_up_forwarded_for(first) == 201, first
            expected = 429 if same else 201
            assert await caller.sign_up_forwarded_for(second) == expected, (first, second)
