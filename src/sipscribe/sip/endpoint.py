"""A sans-I/O SIP endpoint: transactions, dialogs and transport rules in one object.

Theory of operation
-------------------
:class:`SipEndpoint` is to SIP what aioquic's ``QuicConnection`` is to QUIC:
bytes and the clock go in, events and bytes come out, and nothing here owns a
socket, a task or a timer. The asyncio edge (``sip/transport.py``) is a thin
shell around it::

    endpoint.receive_datagram(data, addr, now)          # UDP
    endpoint.connection_made(conn_id, addr, transport="TCP")
    endpoint.receive_stream_data(conn_id, data, now)    # TCP/TLS
    endpoint.connection_lost(conn_id)
    endpoint.handle_timer(now)                          # when next_timer() is due
    while (event := endpoint.next_event()) is not None: ...
    for data, addr in endpoint.datagrams_to_send(): udp.sendto(data, addr)
    for peer, data in endpoint.stream_data_to_send(): write to peer.connection_id
                                                       # (or connect to peer.address)
    rearm(endpoint.next_timer())

The application answers :class:`~sipscribe.sip.events.RequestReceived` with
:meth:`SipEndpoint.respond` (:meth:`SipEndpoint.make_response` fills in our
To tag and Contact) and originates requests with :meth:`send_request`,
:meth:`send_in_dialog`, :meth:`send_ack` and :meth:`cancel`.

What the endpoint does on its own, so every application gets it right:

* transport rules: Via ``received``/``rport`` on requests (RFC 3261 §18.2.1,
  RFC 3581), responses back over the same connection or to received/rport
  (§18.2.2), CRLF keep-alive pongs (RFC 5626), 400 with a Warning for
  readable malformed requests and silence for the rest (§18.3);
* transactions (§17, RFC 6026): retransmissions, absorption, timeouts;
  100 Trying for every INVITE;
* UAS core checks: 481 for unknown dialogs and unmatched CANCELs, 482 for
  merged requests (§8.2.2.2), 420 for unsupported Require tags (§8.2.2.3),
  500 for out-of-order CSeqs (§12.2.2), 200 + 487 for a CANCEL of an
  unanswered INVITE (§9.2), 422 for too-small session intervals (RFC 4028);
* dialogs: created by 2xx in both roles, our 2xx retransmitted until the ACK
  (§13.3.1.4), ACK re-sent for retransmitted 2xx (§13.2.2.4), session timers.
"""

from __future__ import annotations

import heapq
import logging
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from sipscribe.sip.dialog import (
    AnswerRetransmitter,
    Dialog,
    DialogState,
    dialog_id,
    dialog_id_for_request,
    dialog_id_for_response,
)
from sipscribe.sip.errors import SipParseError, SipStateError
from sipscribe.sip.events import (
    AckReceived,
    AckTimedOut,
    CancelReceived,
    KeepAlive,
    ParseFailed,
    Peer,
    RequestReceived,
    ResponseReceived,
    SessionExpired,
    SessionRefreshDue,
    SipEvent,
    TransactionTimedOut,
)
from sipscribe.sip.framing import PING, StreamFramer
from sipscribe.sip.headers import MAGIC_COOKIE, NameAddr, Via, split_header_values
from sipscribe.sip.message import (
    DEFAULT_LIMITS,
    Headers,
    ParseLimits,
    Request,
    Response,
    make_error_response,
    make_response,
    parse_message,
)
from sipscribe.sip.session_timer import (
    SessionTimer,
    SessionTimerPolicy,
    agreement_from_response,
    interval_too_small,
    negotiate_uas,
    reject_too_small,
)
from sipscribe.sip.timers import DEFAULT_TIMERS, TimerConfig
from sipscribe.sip.transaction import (
    ClientTransaction,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    ServerTransaction,
    TransactionState,
    client_transaction_key,
    make_cancel,
    merge_key,
    server_transaction_key,
)
from sipscribe.sip.uri import SipUri

__all__ = ["CallLogger", "EndpointConfig", "SipEndpoint"]

#: Kinds of timer owners, in the order handle_timer serves them.
_SERVER, _CLIENT, _DIALOG = 0, 1, 2

logger = logging.getLogger(__name__)


class CallLogger(logging.LoggerAdapter[logging.Logger]):
    """Prefixes log lines with the Call-ID they concern."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra.get('call_id', '-') if self.extra else '-'}] {msg}", kwargs


def _call_log(call_id: str) -> CallLogger:
    return CallLogger(logger, {"call_id": call_id})


@dataclass(frozen=True)
class EndpointConfig:
    """How the endpoint presents itself and which limits it applies.

    `host`/`port`/`tls_port` are our sent-by and Contact address. `supported`
    lists the option tags we accept in Require (anything else earns 420);
    ``siprec`` is there because SIPREC clients require it (RFC 7866).
    """

    host: str = "127.0.0.1"
    port: int = 5060
    tls_port: int = 5061
    timers: TimerConfig = DEFAULT_TIMERS
    limits: ParseLimits = DEFAULT_LIMITS
    supported: tuple[str, ...] = ("timer", "siprec")
    session_timer: SessionTimerPolicy | None = field(default_factory=SessionTimerPolicy)
    user_agent: str | None = "sipscribe"


@dataclass
class _ServerEntry:
    tx: ServerTransaction
    source: Peer
    response_peer: Peer
    to_tag: str
    dialog_id: str | None
    merge_key: tuple[str, str, int, str] | None


@dataclass
class _ClientEntry:
    tx: ClientTransaction
    destination: Peer
    auto_ack: bool
    dialog_id: str | None
    cancel_pending: bool = False


@dataclass
class _Connection:
    peer: Peer
    framer: StreamFramer


class SipEndpoint:
    """A UA's transaction and dialog layers, driven by bytes and `now`."""

    def __init__(
        self,
        config: EndpointConfig | None = None,
        *,
        token_factory: Callable[[], str] | None = None,
    ) -> None:
        self.config = config or EndpointConfig()
        self._token = token_factory or (lambda: secrets.token_hex(8))
        self._now = 0.0
        self._server: dict[str, _ServerEntry] = {}
        self._client: dict[str, _ClientEntry] = {}
        self._merged: dict[tuple[str, str, int, str], str] = {}
        self._dialogs: dict[str, Dialog] = {}
        self._connections: dict[int, _Connection] = {}
        self._datagrams: list[tuple[bytes, tuple[str, int]]] = []
        self._stream_out: list[tuple[Peer, bytes]] = []
        self._events: deque[SipEvent] = deque()
        # Timers: a heap of (deadline, kind, key) with at most one live entry per object
        # (``_scheduled``), so next_timer/handle_timer cost O(log n), not a scan of every
        # transaction and dialog. An entry may be earlier than its object's deadline (the
        # deadline moved later); it is re-checked when it reaches the top.
        self._timers: list[tuple[float, int, str]] = []
        self._scheduled: dict[tuple[int, str], float] = {}

    # --- what the edge calls ------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        """One UDP datagram from `addr`."""
        self._tick(now)
        peer = Peer("UDP", (addr[0], addr[1]))
        if not data.strip(b"\r\n"):
            self._events.append(KeepAlive(peer))
            return
        self._receive_message(data, peer, now, stream=False)

    def connection_made(
        self, connection_id: int, address: tuple[str, int], *, transport: str = "TCP"
    ) -> None:
        """A TCP/TLS connection (accepted or opened by us) is ready."""
        transport = transport.upper()
        if transport not in ("TCP", "TLS"):
            raise ValueError(f"stream transport must be TCP or TLS, not {transport}")
        peer = Peer(transport, (address[0], address[1]), connection_id)
        self._connections[connection_id] = _Connection(
            peer, StreamFramer(limits=self.config.limits)
        )

    def connection_lost(self, connection_id: int) -> None:
        """Forget a closed connection; later sends fall back to its address."""
        self._connections.pop(connection_id, None)

    def receive_stream_data(self, connection_id: int, data: bytes, now: float) -> None:
        """Bytes read from connection `connection_id`, split anywhere."""
        self._tick(now)
        conn = self._connections.get(connection_id)
        if conn is None:
            raise SipStateError(f"connection {connection_id} was never reported as made")
        conn.framer.feed(data)
        while True:
            try:
                item = conn.framer.next_item()
            except SipParseError as exc:
                self._events.append(
                    ParseFailed(exc.reason, conn.peer, exc.status, False, close_connection=True)
                )
                self._connections.pop(connection_id, None)
                return
            if item is None:
                return
            if item is PING:
                self._stream_out.append((conn.peer, b"\r\n"))
                self._events.append(KeepAlive(conn.peer))
                continue
            assert isinstance(item, bytes)
            self._receive_message(item, conn.peer, now, stream=True)

    def handle_timer(self, now: float) -> None:
        """Run every timer due at `now` (transactions, 2xx retransmission, session timers)."""
        self._tick(now)
        due: list[tuple[int, str]] = []
        while self._timers and self._timers[0][0] <= now:
            t, kind, key = heapq.heappop(self._timers)
            if self._scheduled.get((kind, key)) == t:
                del self._scheduled[(kind, key)]
                due.append((kind, key))
        due.sort(key=lambda item: item[0])  # servers, clients, dialogs; each by deadline
        for kind, key in due:
            if kind == _SERVER:
                if (server := self._server.get(key)) is not None:
                    server.tx.handle_timer(now)
                    self._flush_server(server)
            elif kind == _CLIENT:
                if (client := self._client.get(key)) is not None:
                    client.tx.handle_timer(now)
                    self._flush_client(client)
            elif (dialog := self._dialogs.get(key)) is not None:
                self._dialog_timers(dialog, now)
                self._schedule(_DIALOG, key)

    def next_timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called, or ``None``."""
        while self._timers:
            t, kind, key = self._timers[0]
            if self._scheduled.get((kind, key)) != t:  # superseded or forgotten
                heapq.heappop(self._timers)
                continue
            real = self._deadline(kind, key)
            if real == t:
                return t
            heapq.heappop(self._timers)  # the deadline moved: re-file it
            if real is None:
                del self._scheduled[(kind, key)]
            else:
                self._scheduled[(kind, key)] = real
                heapq.heappush(self._timers, (real, kind, key))
        return None

    def _deadline(self, kind: int, key: str) -> float | None:
        if kind == _SERVER:
            server = self._server.get(key)
            return server.tx.next_timer() if server is not None else None
        if kind == _CLIENT:
            client = self._client.get(key)
            return client.tx.next_timer() if client is not None else None
        dialog = self._dialogs.get(key)
        if dialog is None:
            return None
        deadlines: list[float] = []
        if dialog.answer is not None:
            deadlines.append(dialog.answer.next_timer())
        if dialog.session_timer is not None and (t := dialog.session_timer.next_timer()):
            deadlines.append(t)
        return min(deadlines, default=None)

    def _schedule(self, kind: int, key: str) -> None:
        """File the object's deadline after anything that may have made it earlier."""
        t = self._deadline(kind, key)
        if t is None:
            return
        old = self._scheduled.get((kind, key))
        if old is not None and old <= t:
            return  # the earlier entry is re-checked when it comes up
        self._scheduled[(kind, key)] = t
        heapq.heappush(self._timers, (t, kind, key))
        if len(self._timers) > 2 * len(self._scheduled) + 64:  # drop dead entries
            self._timers = [(t, k, key) for (k, key), t in self._scheduled.items()]
            heapq.heapify(self._timers)

    def _unschedule(self, kind: int, key: str) -> None:
        self._scheduled.pop((kind, key), None)

    def next_event(self) -> SipEvent | None:
        return self._events.popleft() if self._events else None

    def datagrams_to_send(self) -> list[tuple[bytes, tuple[str, int]]]:
        """UDP output as ``(data, addr)`` pairs; drained by the call."""
        out, self._datagrams = self._datagrams, []
        return out

    def stream_data_to_send(self) -> list[tuple[Peer, bytes]]:
        """TCP/TLS output as ``(peer, data)``; use ``peer.connection_id`` if it is
        still open, else connect to ``peer.address``. Drained by the call."""
        out, self._stream_out = self._stream_out, []
        return out

    # --- what the application calls ---------------------------------------------------------

    def dialog(self, dialog_id: str) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    @property
    def dialogs(self) -> dict[str, Dialog]:
        """Live dialogs by id (read-only use)."""
        return dict(self._dialogs)

    def contact(self, transport: str = "UDP") -> NameAddr:
        """Our Contact for `transport`."""
        port = self.config.tls_port if transport == "TLS" else self.config.port
        params: tuple[tuple[str, str | None], ...] = ()
        if transport != "UDP":
            params = (("transport", transport.lower()),)
        scheme = "sips" if transport == "TLS" else "sip"
        return NameAddr(SipUri(_bracket(self.config.host), scheme=scheme, port=port, params=params))

    def make_response(
        self,
        transaction_id: str,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Response:
        """A response to a pending request with our To tag (the same one for
        every response of the transaction), our Contact on dialog-creating
        responses and a Server header."""
        entry = self._server_entry(transaction_id)
        request = entry.tx.request
        extra = list(headers)
        names = {name.lower() for name, _ in extra}
        dialog_creating = request.method in ("INVITE", "UPDATE") and 100 < status < 300
        if dialog_creating and not names & {"contact", "m"}:
            extra.append(("Contact", str(self.contact(entry.source.transport))))
        if self.config.user_agent and status != 100 and "server" not in names:
            extra.append(("Server", self.config.user_agent))
        return make_response(
            request,
            status,
            reason,
            to_tag=entry.to_tag,
            headers=extra,
            body=body,
            content_type=content_type,
        )

    def respond(self, transaction_id: str, response: Response, now: float | None = None) -> None:
        """Send `response` on server transaction `transaction_id`.

        A final response without a To tag on a request without one gets the
        transaction's tag. A 2xx to an INVITE creates (or refreshes) the
        dialog, gets session-timer headers if we negotiate one, and is
        retransmitted until the ACK; a 2xx to BYE ends the dialog.

        Raises :class:`SipStateError` if the transaction is unknown, already
        over, or already has a final response — e.g. after
        :class:`~sipscribe.sip.events.CancelReceived`, when the endpoint has
        answered 487 itself.
        """
        now = self._tick(now)
        entry = self._server_entry(transaction_id)
        request = entry.tx.request
        if response.status > 100 and request.to.tag is None and response.to.tag is None:
            to_value = response.headers.get("To") or ""
            response = replace(
                response, headers=response.headers.set("To", f"{to_value};tag={entry.to_tag}")
            )
        policy = self.config.session_timer
        if (
            policy is not None
            and request.method in ("INVITE", "UPDATE")
            and response.is_success
            and response.session_expires is None
        ):
            agreement = negotiate_uas(request, policy)
            if agreement is not None:
                response = agreement.apply(response)
        entry.tx.send_response(response, now)
        self._flush_server(entry)
        if response.is_success:
            self._after_success_sent(entry, response, now)

    def send_request(
        self,
        request: Request,
        destination: Peer,
        now: float | None = None,
        *,
        auto_ack: bool = True,
    ) -> str:
        """Start a client transaction; returns its id.

        A Via with a fresh branch, Max-Forwards and User-Agent are added when
        missing. With `auto_ack`, a 2xx to an INVITE is ACKed at once (without
        a body); otherwise call :meth:`send_ack`.
        """
        now = self._tick(now)
        if request.method == "ACK":
            raise SipStateError("ACK is sent with send_ack(), not as a transaction")
        request = self._prepare_request(request, destination.transport)
        key = client_transaction_key(request)
        if key in self._client:
            raise SipStateError(f"a client transaction {key} already exists")
        tx: ClientTransaction
        if request.method == "INVITE":
            tx = InviteClientTransaction(key, request, destination, self.config.timers, now)
        else:
            tx = NonInviteClientTransaction(key, request, destination, self.config.timers, now)
        in_dialog = request.to.tag is not None and request.from_.tag is not None
        did = dialog_id(request.call_id, request.from_.tag or "", request.to.tag or "")
        entry = _ClientEntry(tx, destination, auto_ack, did if in_dialog else None)
        self._client[key] = entry
        _call_log(request.call_id).debug("sending %s to %s", request.method, destination)
        self._flush_client(entry)
        return key

    def send_in_dialog(
        self,
        dialog_id: str,
        method: str,
        now: float | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> str:
        """Build an in-dialog request (BYE, re-INVITE, UPDATE…) and send it to
        the dialog's next hop; returns the transaction id."""
        dialog = self._dialog(dialog_id)
        extra = list(headers)
        if method in ("INVITE", "UPDATE") and dialog.session_timer is not None:
            agreement = dialog.session_timer.agreement
            if dialog.session_timer.we_refresh:
                # Keep refreshing ourselves: as the UAC of this refresh we are "uac".
                extra += [("Session-Expires", f"{agreement.interval};refresher=uac")]
                extra += [("Supported", "timer")]
        request = dialog.create_request(method, headers=extra, body=body, content_type=content_type)
        return self.send_request(request, dialog.next_hop(), now)

    def send_ack(
        self,
        dialog_id: str,
        now: float | None = None,
        *,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> None:
        """ACK the 2xx our INVITE got in `dialog_id` (§13.2.2.4); it is
        re-sent automatically for every retransmission of that 2xx."""
        self._tick(now)
        dialog = self._dialog(dialog_id)
        if dialog.ack_cseq is None:
            raise SipStateError(f"dialog {dialog_id} has no 2xx awaiting an ACK")
        destination = dialog.next_hop()
        ack = dialog.create_ack(dialog.ack_cseq, body=body, content_type=content_type)
        ack = self._prepare_request(ack, destination.transport)
        dialog.last_ack = ack
        self._send(ack, destination)

    def cancel(self, transaction_id: str, now: float | None = None) -> str | None:
        """CANCEL our pending INVITE (§9.1).

        Returns the CANCEL's transaction id, or ``None`` when it must wait for
        a provisional response first (it is then sent automatically) or the
        INVITE already got a final response.
        """
        now = self._tick(now)
        entry = self._client.get(transaction_id)
        if entry is None or not isinstance(entry.tx, InviteClientTransaction):
            raise SipStateError(f"no pending INVITE client transaction {transaction_id}")
        entry.tx.cancel_started(now)
        self._schedule(_CLIENT, transaction_id)
        if entry.tx.state is TransactionState.CALLING:
            entry.cancel_pending = True
            return None
        if entry.tx.state is TransactionState.PROCEEDING:
            return self._send_cancel(entry, now)
        return None

    # --- inbound processing ----------------------------------------------------------------

    def _receive_message(self, data: bytes, source: Peer, now: float, *, stream: bool) -> None:
        try:
            message = parse_message(data, limits=self.config.limits, stream=stream)
        except SipParseError as exc:
            response = make_error_response(
                data, exc, agent=_bracket(self.config.host), to_tag=self._token()
            )
            if response is not None:
                self._send(response, source)
            logger.info("dropping malformed SIP from %s: %s", source.address, exc.reason)
            self._events.append(ParseFailed(exc.reason, source, exc.status, response is not None))
            return
        if isinstance(message, Request):
            self._receive_request(self._stamp_via(message, source), source, now)
        else:
            self._receive_response(message, now)

    def _stamp_via(self, request: Request, source: Peer) -> Request:
        """Add ``received`` (and fill ``rport``) to the top Via (§18.2.1, RFC 3581)."""
        via = request.top_via
        ip, port = source.address
        stamped = via
        if via.has_rport and via.rport is None:
            stamped = stamped.with_param("rport", str(port)).with_param("received", ip)
        elif via.host.strip("[]").lower() != ip.lower():
            stamped = stamped.with_param("received", ip)
        if stamped is via:
            return request
        items = list(request.headers)
        for i, (name, value) in enumerate(items):
            if name == "Via":
                parts = split_header_values(value, "Via")
                parts[0] = str(stamped)
                items[i] = ("Via", ", ".join(parts))
                break
        return replace(request, headers=Headers(items))

    def _response_peer(self, request: Request, source: Peer) -> Peer:
        """Where responses to `request` go (§18.2.2): back over the connection
        on streams; to received (or maddr) and rport or sent-by port on UDP."""
        if source.reliable:
            return source
        via = request.top_via
        host = via.maddr or via.received or via.host.strip("[]")
        port = via.rport or via.sent_by_port
        return Peer("UDP", (host, port))

    def _receive_request(self, request: Request, source: Peer, now: float) -> None:
        log = _call_log(request.call_id)
        if request.method == "ACK":
            self._receive_ack(request, source, now)
            return
        key = server_transaction_key(request)
        existing = self._server.get(key)
        if existing is not None:
            existing.tx.receive_request(request, now)  # a retransmission
            self._flush_server(existing)
            return
        if request.method == "CANCEL":
            self._receive_cancel(request, key, source, now)
            return
        in_dialog = request.to.tag is not None
        mkey = merge_key(request)
        if not in_dialog:
            other = self._merged.get(mkey)
            if other is not None and other in self._server:
                log.info("merged %s request: 482", request.method)
                self._auto_respond(request, key, source, now, 482)
                return
        unsupported = [tag for tag in request.require if tag not in self.config.supported]
        if unsupported:
            self._auto_respond(
                request, key, source, now, 420, [("Unsupported", ", ".join(unsupported))]
            )
            return
        did: str | None = None
        if in_dialog:
            did = dialog_id_for_request(request)
            dialog = self._dialogs.get(did)
            if dialog is None:
                self._auto_respond(request, key, source, now, 481)
                return
            if request.method == "INVITE" and dialog.answer is not None:
                # §14.2: a re-INVITE while our previous 2xx awaits its ACK.
                self._auto_respond(request, key, source, now, 500, [("Retry-After", "2")])
                return
            status = dialog.receive_request(request)
            if status is not None:
                self._auto_respond(request, key, source, now, status)
                return
        policy = self.config.session_timer
        if (
            policy is not None
            and request.method in ("INVITE", "UPDATE")
            and interval_too_small(request, policy)
        ):
            tag = request.to.tag or self._token()
            response = reject_too_small(request, policy, to_tag=tag)
            entry = self._new_server(request, key, source, now, None, tag)
            entry.tx.send_response(response, now)
            self._flush_server(entry)
            return
        entry = self._new_server(request, key, source, now, did, request.to.tag or self._token())
        if not in_dialog:
            entry.merge_key = mkey
            self._merged[mkey] = key
        log.debug("%s received from %s", request.method, source.address)
        self._events.append(RequestReceived(request, key, source, did))
        if request.method == "INVITE":
            entry.tx.send_response(make_response(request, 100), now)  # §17.2.1
            self._flush_server(entry)

    def _receive_ack(self, request: Request, source: Peer, now: float) -> None:
        entry = self._server.get(server_transaction_key(request))
        if entry is not None:
            passed_up = entry.tx.receive_request(request, now)
            self._flush_server(entry)
            if not passed_up:
                return  # ACK for our non-2xx: absorbed by the transaction
        dialog = self._dialogs.get(dialog_id_for_request(request))
        answer = dialog.answer if dialog is not None else None
        if dialog is None or answer is None or answer.cseq != request.cseq.number:
            return  # stray or retransmitted ACK (§13.3.2.5: nothing to do)
        dialog.answer = None
        self._events.append(AckReceived(request, dialog.id, source))

    def _receive_cancel(self, request: Request, key: str, source: Peer, now: float) -> None:
        invite = self._server.get(server_transaction_key(request, method="INVITE"))
        if invite is None or not isinstance(invite.tx, InviteServerTransaction):
            self._auto_respond(request, key, source, now, 481)
            return
        self._auto_respond(request, key, source, now, 200)
        if invite.tx.state is TransactionState.PROCEEDING:
            invite.tx.send_response(
                make_response(invite.tx.request, 487, to_tag=invite.to_tag), now
            )
            self._flush_server(invite)
            self._events.append(CancelReceived(request, invite.tx.id, source))

    def _receive_response(self, response: Response, now: float) -> None:
        entry = self._client.get(client_transaction_key(response))
        if entry is None:
            if response.cseq.method == "INVITE" and response.is_success:
                self._resend_ack(response)
            return  # §18.1.2: a response matching no transaction is dropped
        tx = entry.tx
        if not tx.receive_response(response, now):
            self._flush_client(entry)
            if response.is_success and tx.request.method == "INVITE":
                self._resend_ack(response)
            return
        self._flush_client(entry)
        method = tx.request.method
        if method == "INVITE" and response.is_success:
            self._invite_success(entry, response, now)
            return
        if method == "INVITE" and response.is_provisional and entry.cancel_pending:
            entry.cancel_pending = False
            self._send_cancel(entry, now)
        if response.status >= 200 and entry.dialog_id is not None:
            dialog = self._dialogs.get(entry.dialog_id)
            if dialog is not None:
                if method == "BYE" or response.status in (408, 481):
                    self._end_dialog(dialog)  # §12.2.1.2, §15.1.1
                elif method == "UPDATE" and response.is_success:
                    dialog.refresh_target(response)
                    self._set_session_timer(dialog, response, "uac", now)
        self._events.append(ResponseReceived(response, tx.id, entry.dialog_id))

    def _invite_success(self, entry: _ClientEntry, response: Response, now: float) -> None:
        did = dialog_id_for_response(response)
        dialog = self._dialogs.get(did)
        if dialog is not None and dialog.ack_cseq == response.cseq.number and dialog.last_ack:
            self._send(dialog.last_ack, dialog.next_hop())  # retransmitted 2xx
            return
        if dialog is None:
            dialog = Dialog.create_uac(entry.tx.request, response, entry.destination)
            self._dialogs[did] = dialog
        else:
            dialog.refresh_target(response)
        dialog.ack_cseq = response.cseq.number
        dialog.last_ack = None
        self._set_session_timer(dialog, response, "uac", now)
        self._events.append(ResponseReceived(response, entry.tx.id, did))
        if entry.auto_ack:
            self.send_ack(did, now)

    def _resend_ack(self, response: Response) -> None:
        dialog = self._dialogs.get(dialog_id_for_response(response))
        if dialog is None or dialog.last_ack is None:
            return
        if dialog.ack_cseq == response.cseq.number:
            self._send(dialog.last_ack, dialog.next_hop())

    # --- after we answered ------------------------------------------------------------------

    def _after_success_sent(self, entry: _ServerEntry, response: Response, now: float) -> None:
        request = entry.tx.request
        method = request.method
        if method == "INVITE":
            did = dialog_id(request.call_id, response.to.tag or "", request.from_.tag or "")
            dialog = self._dialogs.get(did)
            if dialog is None:
                if request.to.tag is not None:
                    return
                dialog = Dialog.create_uas(request, response, entry.source)
                self._dialogs[did] = dialog
                _call_log(request.call_id).info("dialog %s established (UAS)", did)
            else:
                dialog.refresh_target(request)
            dialog.answer = AnswerRetransmitter(
                response, entry.response_peer, self.config.timers, now
            )
            self._set_session_timer(dialog, response, "uas", now)
        elif entry.dialog_id is not None and (dialog := self._dialogs.get(entry.dialog_id)):
            if method == "BYE":
                self._end_dialog(dialog)
            elif method == "UPDATE":
                dialog.refresh_target(request)
                self._set_session_timer(dialog, response, "uas", now)

    def _set_session_timer(self, dialog: Dialog, response: Response, role: str, now: float) -> None:
        agreement = agreement_from_response(response)
        if agreement is None:
            dialog.session_timer = None
        else:
            dialog.session_timer = SessionTimer(
                agreement, role="uac" if role == "uac" else "uas", now=now
            )
        self._schedule(_DIALOG, dialog.id)

    def _dialog_timers(self, dialog: Dialog, now: float) -> None:
        answer = dialog.answer
        if answer is not None:
            action = answer.handle_timer(now)
            if action == "retransmit":
                self._send(answer.response, answer.peer)
            elif action == "timeout":
                dialog.answer = None
                self._events.append(AckTimedOut(dialog.id, dialog.call_id))
        timer = dialog.session_timer
        if timer is not None:
            action2 = timer.handle_timer(now)
            if action2 == "refresh":
                self._events.append(SessionRefreshDue(dialog.id, dialog.call_id))
            elif action2 == "expired":
                _call_log(dialog.call_id).info("session timer expired for %s", dialog.id)
                self._events.append(SessionExpired(dialog.id, dialog.call_id))

    def _end_dialog(self, dialog: Dialog) -> None:
        dialog.state = DialogState.TERMINATED
        dialog.answer = None
        dialog.session_timer = None
        self._dialogs.pop(dialog.id, None)
        self._unschedule(_DIALOG, dialog.id)

    # --- helpers -----------------------------------------------------------------------------

    def _tick(self, now: float | None) -> float:
        if now is not None:
            self._now = max(self._now, now)
        return self._now

    def _server_entry(self, transaction_id: str) -> _ServerEntry:
        entry = self._server.get(transaction_id)
        if entry is None or entry.tx.terminated:
            raise SipStateError(f"no pending server transaction {transaction_id}")
        return entry

    def _dialog(self, dialog_id: str) -> Dialog:
        dialog = self._dialogs.get(dialog_id)
        if dialog is None:
            raise SipStateError(f"no dialog {dialog_id}")
        return dialog

    def _new_server(
        self,
        request: Request,
        key: str,
        source: Peer,
        now: float,
        did: str | None,
        to_tag: str,
    ) -> _ServerEntry:
        tx: ServerTransaction
        if request.method == "INVITE":
            tx = InviteServerTransaction(key, request, source, self.config.timers, now)
        else:
            tx = NonInviteServerTransaction(key, request, source, self.config.timers, now)
        entry = _ServerEntry(tx, source, self._response_peer(request, source), to_tag, did, None)
        self._server[key] = entry
        self._schedule(_SERVER, key)
        return entry

    def _auto_respond(
        self,
        request: Request,
        key: str,
        source: Peer,
        now: float,
        status: int,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Answer in the endpoint itself, through a transaction so retransmitted
        requests get the same answer."""
        tag = request.to.tag or self._token()
        entry = self._new_server(request, key, source, now, None, tag)
        response = make_response(request, status, to_tag=tag, headers=list(headers))
        entry.tx.send_response(response, now)
        self._flush_server(entry)

    def _prepare_request(self, request: Request, transport: str) -> Request:
        headers = request.headers
        if "Via" not in headers:
            port = self.config.tls_port if transport == "TLS" else self.config.port
            branch = f"{MAGIC_COOKIE}{self._token()}"
            via = Via(
                transport, _bracket(self.config.host), port, (("branch", branch), ("rport", None))
            )
            headers = headers.add_first("Via", str(via))
        if "Max-Forwards" not in headers:
            headers = headers.add("Max-Forwards", "70")
        if self.config.user_agent and "User-Agent" not in headers and request.method != "ACK":
            headers = headers.add("User-Agent", self.config.user_agent)
        return request if headers is request.headers else replace(request, headers=headers)

    def _send_cancel(self, entry: _ClientEntry, now: float) -> str:
        cancel = make_cancel(entry.tx.request)
        key = client_transaction_key(cancel)
        tx = NonInviteClientTransaction(key, cancel, entry.destination, self.config.timers, now)
        cancel_entry = _ClientEntry(tx, entry.destination, False, None)
        self._client[key] = cancel_entry
        self._flush_client(cancel_entry)
        return key

    def _send(self, message: Request | Response, peer: Peer) -> None:
        data = bytes(message)
        if peer.transport == "UDP":
            self._datagrams.append((data, peer.address))
        else:
            self._stream_out.append((peer, data))

    def _flush_server(self, entry: _ServerEntry) -> None:
        for message in entry.tx.messages_to_send():
            self._send(message, entry.response_peer)
        while (event := entry.tx.next_event()) is not None:
            self._events.append(event)
        if entry.tx.terminated:
            self._drop_server(entry)
        else:
            self._schedule(_SERVER, entry.tx.id)

    def _flush_client(self, entry: _ClientEntry) -> None:
        for message in entry.tx.messages_to_send():
            self._send(message, entry.destination)
        while (event := entry.tx.next_event()) is not None:
            self._events.append(event)
            if isinstance(event, TransactionTimedOut) and entry.dialog_id is not None:
                dialog = self._dialogs.get(entry.dialog_id)
                if dialog is not None and entry.tx.request.method == "BYE":
                    self._end_dialog(dialog)
        if entry.tx.terminated:
            if self._client.get(entry.tx.id) is entry:
                del self._client[entry.tx.id]
                self._unschedule(_CLIENT, entry.tx.id)
        else:
            self._schedule(_CLIENT, entry.tx.id)

    def _drop_server(self, entry: _ServerEntry) -> None:
        key = entry.tx.id
        if self._server.get(key) is entry:
            del self._server[key]
            self._unschedule(_SERVER, key)
        if entry.merge_key is not None and self._merged.get(entry.merge_key) == key:
            del self._merged[entry.merge_key]


def _bracket(host: str) -> str:
    """IPv6 literals go in brackets in Via and URIs."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
