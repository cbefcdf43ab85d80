"""Server-side request forgery guard, applied when connecting, not only when a URL is saved.

A webhook URL names a host; what matters is the address we end up connecting to. A name that
resolved to a public address when the target was created can later resolve to 127.0.0.1 or a
cloud metadata address (DNS rebinding), so the check happens in the connection itself: the
network backend of each target's HTTP transport resolves the host, refuses any address that is
not globally routable unless the tenant allows private targets, and connects to the address it
checked. TLS still verifies (and sends SNI for) the URL's host name, and the Host header is
still the URL's, because httpcore does both from the request's origin, not from the socket.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore

from sipscribe.delivery.errors import EndpointUnreachable, ForbiddenAddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]


def forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address (None when it is)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return forbidden_reason(address.ipv4_mapped)
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "reserved"
    return None


def check_address(address: str, *, allow_private: bool) -> IPAddress:
    """The parsed address, or ``ForbiddenAddress`` if it is not public and private targets are
    not allowed."""
    parsed = ipaddress.ip_address(address)
    reason = forbidden_reason(parsed)
    if reason is not None and not allow_private:
        raise ForbiddenAddress(
            f"address {address} is {reason}; the tenant setting allow_private_webhooks is off"
        )
    return parsed


def literal_address(host: str) -> IPAddress | None:
    """The address when ``host`` is an IP literal (brackets allowed), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (TCP), in its order."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise EndpointUnreachable(f"cannot resolve {host}: {exc.strerror or exc}") from exc
    seen: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        if address not in seen:
            seen.append(address)
    return seen


async def resolve_checked(
    host: str, port: int, *, allow_private: bool, resolver: Resolver = system_resolver
) -> list[str]:
    """The addresses to connect to for ``host``: all of them must pass ``check_address``.

    Refusing when *any* address is forbidden (rather than skipping it) keeps a name that mixes
    public and internal addresses from reaching the internal one on a retry.
    """
    literal = literal_address(host)
    addresses = [str(literal)] if literal is not None else await resolver(host, port)
    if not addresses:
        raise EndpointUnreachable(f"{host} resolved to no address")
    for address in addresses:
        check_address(address, allow_private=allow_private)
    return addresses


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that resolves, checks and then connects to the checked IP."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.resolver = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve_checked(
            host, port, allow_private=self.allow_private, resolver=self.resolver
        )
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise ForbiddenAddress(f"unix socket {path} is not a webhook target")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
