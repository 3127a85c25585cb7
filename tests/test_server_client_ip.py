"""Which address the limits count by behind a trusted proxy: seen through the sign-up limit
(one per hour per address) of a real server, for each shape of X-Forwarded-For; an IPv6
client counts by its /64, an IPv4-mapped one as its IPv4 address."""

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
    (("2001:db8::1", "::1"), "2001:db8:0:1::1", False),  # ::1 is not a trusted proxy here
    ("203.0.113.1:4711", "203.0.113.1", True),  # a port some proxies add is not the address
    ("[2001:db8::1]:4711", "2001:db8::1", True),
    ("[2001:db8::1]", "2001:db8::1", True),
    ("203.0.113.1:http", "", True),  # not a port: not an address
    ("[2001:db8::1]x", "", True),
    ("203.0.113.1:1:2", "", True),
    # An IPv6 client counts by its /64, what one host or home is given at least.
    ("2001:db8:1:2::1", "2001:db8:1:2::2", True),
    ("2001:db8:1:2::", "2001:db8:1:2:ffff:ffff:ffff:ffff", True),
    ("2001:db8:1:2::1", "[2001:db8:1:2:abcd::1]:4711", True),
    ("2001:db8:1:2::1", "2001:db8:1:3::1", False),
    ("2001:db8:1:2::", "2001:db8:1:1:ffff:ffff:ffff:ffff", False),
    ("2001:db8:1:2::1", "2001:db9:1:2::1", False),
    # An IPv4-mapped IPv6 address is the IPv4 address it carries, not the /64 ::ffff:0:0/64.
    ("::ffff:203.0.113.1", "203.0.113.1", True),
    ("203.0.113.1", "[::ffff:cb00:7101]:4711", True),
    ("::ffff:203.0.113.1", "::ffff:203.0.113.2", False),
    ("::ffff:203.0.113.1", "203.0.113.2", False),
    # A trusted proxy seen as an IPv4-mapped address (a hop on both stacks) is still trusted.
    ("203.0.113.1, ::ffff:127.0.0.1", "203.0.113.1", True),
    (("203.0.113.1", "[::ffff:7f00:1]:4711"), "203.0.113.1", True),
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


# (the X-Forwarded-For of each of three wrong log-ins in a minute, past the limit of two);
# the third is refused exactly when the three count as one client
FAILURES: list[tuple[tuple[str, str, str], int]] = [
    (("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"), 429),
    (("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:3::1"), 400),
    (("::ffff:198.51.100.1", "198.51.100.1", "::ffff:198.51.100.1"), 429),
    (("::ffff:198.51.100.1", "198.51.100.1", "198.51.100.2"), 400),
]


async def test_failed_log_ins_count_by_the_client_network() -> None:
    """Wrong anonymous ids from addresses of one IPv6 /64 (or an IPv4 address, mapped or not)
    share one failed log-in limit; a third from another /64 or address is not refused."""
    clock = Clock()
    settings = ServerSettings(
        clock=clock, max_failed_log_ins_per_minute=2, trusted_proxies=frozenset({"127.0.0.1"})
    )
    wrong = {"anonymous_id": "w" * 43}
    async with calling("proxied-app", secrets.token_urlsafe(32), settings=settings) as (_, caller):
        for addresses, third in FAILURES:
            clock.now += 60  # every limit of the case before has ended
            for address in addresses[:2]:
                status = await caller.post_forwarded_for("/v1/sessions/anonymous", wrong, address)
                assert status == 400, addresses
            status = await caller.post_forwarded_for("/v1/sessions/anonymous", wrong, addresses[2])
            assert status == third, addresses
