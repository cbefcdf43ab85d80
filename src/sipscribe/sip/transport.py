"""The asyncio edge of the SIP endpoint: UDP, TCP and TLS sockets and one timer.

Everything SIP is decided in ``SipEndpoint`` (sans-I/O); this module moves bytes and
time. After every input (a datagram, stream bytes, the timer) it drains the endpoint's
events into the application's handler, flushes its output, and re-arms the timer.
The application calls ``pump()`` after acting on the endpoint (``respond``,
``send_request``) so its messages leave at once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from collections.abc import Callable
from dataclasses import replace

from sipscribe.sip.endpoint import SipEndpoint
from sipscribe.sip.events import ParseFailed, Peer, SipEvent

log = logging.getLogger(__name__)

EventHandler = Callable[[SipEvent], None]


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        owner = self.owner
        owner.endpoint.receive_datagram(data, (addr[0], addr[1]), owner.now())
        owner.pump()

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP UDP socket error: %s", exc)


class _Stream(asyncio.Protocol):
    def __init__(self, owner: SipTransport, kind: str) -> None:
        self.owner = owner
        self.kind = kind
        self.conn_id = next(owner._conn_ids)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.owner._streams[self.conn_id] = self
        self.owner.endpoint.connection_made(self.conn_id, (peer[0], peer[1]), transport=self.kind)

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        owner.endpoint.receive_stream_data(self.conn_id, data, owner.now())
        owner.pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._streams.pop(self.conn_id, None)
        self.owner.endpoint.connection_lost(self.conn_id)


class SipTransport:
    """Sockets for one ``SipEndpoint``; hands every ``SipEvent`` to ``on_event``."""

    def __init__(self, endpoint: SipEndpoint, on_event: EventHandler) -> None:
        self.endpoint = endpoint
        self.on_event = on_event
        self._loop = asyncio.get_running_loop()
        self._udp: asyncio.DatagramTransport | None = None
        self._servers: list[asyncio.Server] = []
        self._streams: dict[int, _Stream] = {}
        self._conn_ids = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._pumping = False
        self.udp_port: int | None = None
        self.tcp_port: int | None = None
        self.tls_port: int | None = None
        self._tls_context: ssl.SSLContext | None = None
        #: For connections we open over TLS; None: the system CAs.
        self.client_tls_context: ssl.SSLContext | None = None

    def now(self) -> float:
        return self._loop.time()

    # -- listening -----------------------------------------------------------------------
    async def listen(
        self,
        host: str,
        port: int,
        *,
        udp: bool = True,
        tcp: bool = True,
        tls_port: int | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """Bind UDP and TCP on ``port`` (0: one free port shared by both), TLS optionally."""
        if udp:
            transport, _ = await self._loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(host, port)
            )
            self._udp = transport  # type: ignore[assignment]
            self.udp_port = transport.get_extra_info("sockname")[1]
            if port == 0:
                port = self.udp_port
        if tcp:
            server = await self._loop.create_server(lambda: _Stream(self, "TCP"), host, port)
            self._servers.append(server)
            self.tcp_port = server.sockets[0].getsockname()[1]
        if tls_context is not None:
            self._tls_context = tls_context
            server = await self._loop.create_server(
                lambda: _Stream(self, "TLS"), host, tls_port or 0, ssl=tls_context
            )
            self._servers.append(server)
            self.tls_port = server.sockets[0].getsockname()[1]
        cfg = self.endpoint.config
        self.endpoint.config = replace(
            cfg,
            port=self.udp_port or self.tcp_port or cfg.port,
            tls_port=self.tls_port or cfg.tls_port,
        )

    # -- the pump ------------------------------------------------------------------------
    def pump(self) -> None:
        """Drain events to the handler, send what the endpoint wrote, re-arm the timer."""
        if self._pumping:  # a handler that calls pump() re-enters: the outer loop finishes
            return
        self._pumping = True
        try:
            while True:
                event = self.endpoint.next_event()
                if event is None:
                    break
                if isinstance(event, ParseFailed) and event.close_connection:
                    self._close_connection(event.source.connection_id)
                try:
                    self.on_event(event)
                except Exception:
                    log.exception("SIP event handler failed on %s", type(event).__name__)
            self._flush()
        finally:
            self._pumping = False
        self._flush()
        self._rearm()

    def _flush(self) -> None:
        if self._udp is not None:
            for data, addr in self.endpoint.datagrams_to_send():
                self._udp.sendto(data, addr)
        else:
            self.endpoint.datagrams_to_send()
        for peer, data in self.endpoint.stream_data_to_send():
            self._send_stream(peer, data)

    def _send_stream(self, peer: Peer, data: bytes) -> None:
        stream = self._streams.get(peer.connection_id) if peer.connection_id else None
        if stream is not None and stream.transport is not None:
            stream.transport.write(data)
            return
        # The connection is gone: RFC 3261 §18.2.2, open a new one to the address.
        self._loop.create_task(self._connect_and_send(peer, data))

    async def _connect_and_send(self, peer: Peer, data: bytes) -> None:
        kind = peer.transport
        try:
            ctx = None
            if kind == "TLS":
                ctx = self.client_tls_context or ssl.create_default_context()
            _, proto = await self._loop.create_connection(
                lambda: _Stream(self, kind), peer.address[0], peer.address[1], ssl=ctx
            )
        except OSError as exc:
            log.warning("cannot connect to %s %s:%s: %s", kind, *peer.address, exc)
            return
        assert isinstance(proto, _Stream) and proto.transport is not None
        proto.transport.write(data)

    def _close_connection(self, conn_id: int | None) -> None:
        stream = self._streams.pop(conn_id, None) if conn_id else None
        if stream is not None and stream.transport is not None:
            stream.transport.close()

    def _rearm(self) -> None:
        when = self.endpoint.next_timer()
        if self._timer is not None:
            if when is not None and abs(self._timer.when() - when) < 0.001:
                return
            self._timer.cancel()
            self._timer = None
        if when is not None:
            self._timer = self._loop.call_at(max(when, self._loop.time()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.endpoint.handle_timer(self.now())
        self.pump()

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._udp is not None:
            self._udp.close()
        for server in self._servers:
            server.close()
        for stream in list(self._streams.values()):
            if stream.transport is not None:
                stream.transport.close()
        for server in self._servers:
            await server.wait_closed()
