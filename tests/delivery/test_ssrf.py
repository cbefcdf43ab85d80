from __future__ import annotations

import asyncio
import ipaddress
import ssl

import httpx
import pytest

from sipscribe.delivery.errors import EndpointUnreachable, ForbiddenAddress, map_exceptions
from sipscribe.delivery.ssrf import (
    GuardedNetworkBackend,
    check_address,
    forbidden_reason,
    resolve_checked,
)
from sipscribe.delivery.webhooks import GuardedTransport


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.10.0.5", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
    ],
)
def test_forbidden_reason(address: str, reason: str | None) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


def test_check_address_message_and_allow() -> None:
    with pytest.raises(
        ForbiddenAddress,
        match=r"^address 10.0.0.7 is private; the tenant setting allow_private_webhooks is off$",
    ):
        check_address("10.0.0.7", allow_private=False)
    assert str(check_address("10.0.0.7", allow_private=True)) == "10.0.0.7"


def _resolver(table: dict[str, list[str]]):
    async def resolve(host: str, port: int) -> list[str]:
        return table[host]

    return resolve


async def test_a_name_is_refused_if_any_of_its_addresses_is_internal() -> None:
    resolver = _resolver({"mixed.example": ["93.184.216.34", "10.0.0.1"]})
    with pytest.raises(ForbiddenAddress, match=r"address 10.0.0.1 is private"):
        await resolve_checked("mixed.example", 443, allow_private=False, resolver=resolver)
    assert await resolve_checked("mixed.example", 443, allow_private=True, resolver=resolver) == [
        "93.184.216.34",
        "10.0.0.1",
    ]


async def test_literals_skip_dns_and_unresolvable_names_are_unreachable() -> None:
    async def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError("a literal must not be resolved")

    assert await resolve_checked("[::1]", 80, allow_private=True, resolver=no_dns) == ["::1"]
    with pytest.raises(EndpointUnreachable, match="resolved to no address"):
        await resolve_checked(
            "empty.example", 80, allow_private=True, resolver=_resolver({"empty.example": []})
        )


class _Recorder(asyncio.Protocol):
    def __init__(self, seen: list[bytes]) -> None:
        self.seen = seen

    def data_received(self, data: bytes) -> None:
        self.seen.append(data)


async def _listener() -> tuple[asyncio.Server, int, list[bytes]]:
    seen: list[bytes] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Recorder(seen), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


def _client(*, allow_private: bool, resolver=None) -> httpx.AsyncClient:
    kwargs = {} if resolver is None else {"resolver": resolver}
    transport = GuardedTransport(
        verify=ssl.create_default_context(),
        allow_private=allow_private,
        max_connections=2,
        **kwargs,
    )
    return httpx.AsyncClient(transport=transport, timeout=2.0)


async def test_refused_before_connecting_when_private_is_not_allowed() -> None:
    server, port, seen = await _listener()
    try:
        async with _client(allow_private=False) as client:
            with (
                pytest.raises(ForbiddenAddress, match=r"address 127.0.0.1 is loopback"),
                map_exceptions("POST"),
            ):
                await client.post(f"http://127.0.0.1:{port}/hook", content=b"{}")
        await asyncio.sleep(0.05)
        assert seen == []
    finally:
        server.close()
        await server.wait_closed()


async def test_dns_rebinding_name_is_checked_at_connect_time() -> None:
    """A public-looking name that resolves to loopback now is refused; the Host header keeps
    the name when the tenant allows private targets and we connect to the checked address."""
    server, port, seen = await _listener()
    rebind = _resolver({"hooks.example": ["127.0.0.1"]})
    try:
        async with _client(allow_private=False, resolver=rebind) as client:
            with pytest.raises(ForbiddenAddress):
                await client.post(f"http://hooks.example:{port}/x", content=b"{}")
        async with _client(allow_private=True, resolver=rebind) as client:
            with pytest.raises(httpx.TransportError):
                await client.post(f"http://hooks.example:{port}/x", content=b"{}", timeout=0.3)
        request = b"".join(seen)
        assert request.startswith(b"POST /x HTTP/1.1\r\n")
        assert f"host: hooks.example:{port}\r\n".encode() in request.lower()
    finally:
        server.close()
        await server.wait_closed()


async def test_unix_sockets_are_refused() -> None:
    backend = GuardedNetworkBackend(allow_private=True)
    with pytest.raises(ForbiddenAddress, match="unix socket /tmp/x is not a webhook target"):
        await backend.connect_unix_socket("/tmp/x")
