"""Where the server listens, over real sockets: ``::`` takes IPv4 and IPv6 clients (dual
stack), a failure names the address as a URL writes it, and ``--host`` refuses a URL's form of
an address before anything starts."""

from __future__ import annotations

import secrets
import socket

import aiohttp
import pytest

from mimi_reactive.server import IdentityServer, ServerStartError

from .test_cli import run_cli


def has_ipv6_loopback() -> bool:
    """Whether this machine can listen on ``::1`` (a container may have no IPv6)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(
    not has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)"
)


def identity_server(host: str) -> IdentityServer:
    """An in-memory server for one client on ``host``, a free port."""
    return IdentityServer(client_id="app", client_secret=secrets.token_urlsafe(32), host=host)


@needs_ipv6
@pytest.mark.skipif(not socket.has_dualstack_ipv6(), reason="no dual-stack IPv6 sockets here")
async def test_the_unspecified_ipv6_address_takes_ipv4_and_ipv6_clients() -> None:
    """A server on ``::`` answers a client on 127.0.0.1 and one on ::1, as Python's
    http.server, gunicorn and Node do (not IPv6 only, which refused every IPv4 client)."""
    async with identity_server("::") as server, aiohttp.ClientSession() as http:
        port = server.url.rpartition(":")[2]
        assert server.url == f"http://[::]:{port}"
        for client in ("127.0.0.1", "[::1]"):
            async with http.get(f"http://{client}:{port}/health") as response:
                assert response.status == 200, client


@needs_ipv6
async def test_the_ipv6_loopback_takes_ipv6_clients_only() -> None:
    """A server on ``::1`` answers ::1 and is not reached on 127.0.0.1: only the unspecified
    address is made dual stack."""
    async with identity_server("::1") as server, aiohttp.ClientSession() as http:
        port = server.url.rpartition(":")[2]
        async with http.get(f"http://[::1]:{port}/health") as response:
            assert response.status == 200
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.get(f"http://127.0.0.1:{port}/health"):
                pass


@needs_ipv6
async def test_an_ipv6_address_that_cannot_be_listened_on_is_named_in_brackets() -> None:
    """An IPv6 address not of this machine (documentation prefix 2001:db8::) is a
    ServerStartError of one line naming ``[2001:db8::1]:0``, not the ambiguous
    ``2001:db8::1:0``."""
    with pytest.raises(ServerStartError) as raised:
        await identity_server("2001:db8::1").start()
    message = str(raised.value)
    assert message.startswith("cannot listen on [2001:db8::1]:0: "), message
    assert "\n" not in message
    assert not raised.value.refused


async def test_a_busy_port_is_a_one_line_start_error() -> None:
    """IdentityServer listening through the CLI's listen(): a port taken by another socket is
    a ServerStartError naming the address and port, and nothing is left listening."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = IdentityServer(client_id="app", client_secret=secrets.token_urlsafe(32), port=port)
        with pytest.raises(ServerStartError, match=f"^cannot listen on 127.0.0.1:{port}: "):
            await server.start()
    with pytest.raises(RuntimeError):
        server.url  # noqa: B018 (never started)


@pytest.mark.parametrize(
    "host",
    [
        "[::1]",
        "[::1]:8080",
        "http://127.0.0.1",
        "https://localhost",
        "127.0.0.1/32",
        "::1]",
        " 127.0.0.1",
        "127.0.0.1 ",
        "localhost\n",
        "a b",
        "exa mple.com",
        "local\thost",
        "local\x1bhost",
    ],
)
def test_serve_refuses_a_host_written_as_in_a_url(host: str) -> None:
    """`serve --host` with brackets, a scheme, a path, or a space or control character in it
    exits 2 with one line saying what it takes, before anything starts (the resolver's
    answer, "name or service not known", hid the mistake)."""
    done = run_cli("serve", "--client-id", "app", "--port", "0", "--host", host)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "--host: must be an IP address or a host name" in done.stderr
    assert "::1, not [::1]" in done.stderr
    assert done.stdout == ""
