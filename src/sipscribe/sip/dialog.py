"""SIP dialogs (RFC 3261 §12-§15) for both roles.

A dialog is the peer-to-peer relationship an INVITE and its 2xx set up,
named by Call-ID plus both tags. It remembers what in-dialog requests need:
the remote target (Contact), the route set (Record-Route), both CSeq
counters and the session timer.

* UAS (the recorder answering an SRC): :meth:`Dialog.create_uas` from the
  INVITE and our 2xx — route set in Record-Route order (§12.1.1).
* UAC (dial-out): :meth:`Dialog.create_uac` from our INVITE and their 2xx —
  route set reversed (§12.1.2).

The UAS core also owns the 2xx retransmission that RFC 6026 takes away from
the transaction layer: :class:`AnswerRetransmitter` repeats our 2xx at T1,
2*T1 … capped at T2 until the ACK arrives, and gives up after 64*T1
(§13.3.1.4).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sipscribe.sip.errors import SipStateError
from sipscribe.sip.events import Peer
from sipscribe.sip.headers import NameAddr, Wildcard
from sipscribe.sip.message import Headers, Request, Response
from sipscribe.sip.session_timer import SessionTimer
from sipscribe.sip.timers import TimerConfig
from sipscribe.sip.uri import SipUri

__all__ = [
    "AnswerRetransmitter",
    "Dialog",
    "DialogState",
    "dialog_id",
    "dialog_id_for_request",
    "dialog_id_for_response",
]

#: Methods that refresh the remote target (§12.2, RFC 3311, RFC 6665).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})
#: URI parameters not allowed in a Request-URI, stripped when a strict
#: router's URI becomes one (§12.2.1.1, §19.1.1 table).
_NOT_IN_REQUEST_URI = ("method", "ttl")


def dialog_id(call_id: str, local_tag: str, remote_tag: str) -> str:
    """``"<Call-ID>;<local tag>;<remote tag>"``: neither part can hold ``;``."""
    return f"{call_id};{local_tag};{remote_tag}"


def dialog_id_for_request(request: Request) -> str:
    """The dialog an incoming in-dialog request names (we are the To side)."""
    return dialog_id(request.call_id, request.to.tag or "", request.from_.tag or "")


def dialog_id_for_response(response: Response) -> str:
    """The dialog a response to our request names (we are the From side)."""
    return dialog_id(response.call_id, response.from_.tag or "", response.to.tag or "")


class DialogState(enum.Enum):
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class AnswerRetransmitter:
    """Retransmits our 2xx to an INVITE until the ACK (RFC 3261 §13.3.1.4)."""

    def __init__(self, response: Response, peer: Peer, timers: TimerConfig, now: float) -> None:
        self.response = response
        self.peer = peer
        self.cseq = response.cseq.number
        self._timers = timers
        self._interval = timers.t1
        self._next = now + timers.t1
        self._give_up = now + timers.transaction_timeout

    def next_timer(self) -> float:
        return min(self._next, self._give_up)

    def handle_timer(self, now: float) -> Literal["retransmit", "timeout"] | None:
        """``"retransmit"``: send :attr:`response` again; ``"timeout"``: no ACK, give up."""
        if now >= self._give_up:
            return "timeout"
        if now >= self._next:
            self._interval = self._timers.next_interval(self._interval)
            self._next = now + self._interval
            return "retransmit"
        return None


@dataclass
class Dialog:
    """Dialog state (RFC 3261 §12.1). Mutable: CSeqs and targets move on."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddr
    remote_uri: NameAddr
    remote_target: SipUri
    role: Literal["uac", "uas"]
    route_set: tuple[NameAddr, ...] = ()
    local_cseq: int | None = None
    remote_cseq: int | None = None
    secure: bool = False
    local_contact: NameAddr | None = None
    #: Where the dialog's peer was last heard from (transport and connection).
    peer: Peer | None = None
    state: DialogState = DialogState.CONFIRMED
    session_timer: SessionTimer | None = None
    #: UAS: our 2xx awaiting its ACK.
    answer: AnswerRetransmitter | None = None
    #: UAC: CSeq number of the INVITE whose 2xx we must (or did) ACK, and that ACK.
    ack_cseq: int | None = None
    last_ack: Request | None = None

    @property
    def id(self) -> str:
        return dialog_id(self.call_id, self.local_tag, self.remote_tag)

    # --- creation -----------------------------------------------------------------

    @classmethod
    def create_uas(cls, request: Request, response: Response, peer: Peer | None = None) -> Dialog:
        """The dialog our 2xx to `request` establishes (§12.1.1)."""
        local_tag = response.to.tag
        if local_tag is None:
            raise SipStateError("a dialog-creating response needs a To tag")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag or "",
            local_uri=response.to,
            remote_uri=request.from_,
            remote_target=_target(request.contacts, request.uri),
            role="uas",
            route_set=request.record_route,
            local_cseq=None,
            remote_cseq=request.cseq.number,
            secure=request.uri.secure and (peer is None or peer.transport == "TLS"),
            local_contact=_first(response.contacts),
            peer=peer,
        )

    @classmethod
    def create_uac(cls, request: Request, response: Response, peer: Peer | None = None) -> Dialog:
        """The dialog a 2xx to our `request` establishes (§12.1.2)."""
        return cls(
            call_id=request.call_id,
            local_tag=request.from_.tag or "",
            remote_tag=response.to.tag or "",
            local_uri=request.from_,
            remote_uri=response.to,
            remote_target=_target(response.contacts, request.uri),
            role="uac",
            route_set=tuple(reversed(response.record_route)),
            local_cseq=request.cseq.number,
            remote_cseq=None,
            secure=request.uri.secure,
            local_contact=_first(request.contacts),
            peer=peer,
        )

    # --- incoming requests ----------------------------------------------------------

    def receive_request(self, request: Request) -> int | None:
        """Check an in-dialog request (§12.2.2); the error status to answer, or None.

        A CSeq lower than the last one is out of order: 500. ACK and CANCEL
        reuse their INVITE's CSeq and are not checked.
        """
        if request.method in ("ACK", "CANCEL"):
            return None
        number = request.cseq.number
        if self.remote_cseq is not None and number < self.remote_cseq:
            return 500
        self.remote_cseq = number
        return None

    def refresh_target(self, message: Request | Response) -> None:
        """Adopt a new remote target from a target-refresh request or its 2xx."""
        contacts = message.contacts
        if isinstance(contacts, tuple) and contacts and isinstance(contacts[0].uri, SipUri):
            self.remote_target = contacts[0].uri

    # --- outgoing requests ------------------------------------------------------------

    def next_hop(self) -> Peer:
        """Where in-dialog requests go: the first route, else the remote target.

        The transport defaults to the one the dialog came over; on a stream
        the connection it came on is preferred (the edge falls back to
        connecting to the address).
        """
        uri = self.route_set[0].uri if self.route_set else self.remote_target
        transport = self.peer.transport if self.peer is not None else "UDP"
        if isinstance(uri, SipUri):
            if uri.transport in ("UDP", "TCP", "TLS"):
                transport = uri.transport
            host = uri.param("maddr") or uri.host_address
            port = uri.port or (5061 if transport == "TLS" else 5060)
        elif self.peer is not None:
            host, port = self.peer.address
        else:  # pragma: no cover - routes are always URIs we parsed
            raise SipStateError("dialog has no routable next hop")
        connection = None
        if self.peer is not None and self.peer.reliable and transport == self.peer.transport:
            connection = self.peer.connection_id
        return Peer(transport, (host, port), connection)

    def _request_line_and_routes(self) -> tuple[SipUri, list[NameAddr]]:
        if not self.route_set:
            return self.remote_target, []
        first = self.route_set[0]
        if isinstance(first.uri, SipUri) and first.uri.lr:
            return self.remote_target, list(self.route_set)
        # Strict router (§12.2.1.1): its URI becomes the Request-URI and the
        # remote target goes to the end of the Route set.
        uri = first.uri
        if not isinstance(uri, SipUri):
            raise SipStateError("dialog's first route is not a SIP URI")
        for name in _NOT_IN_REQUEST_URI:
            uri = uri.without_param(name)
        return uri.without_headers(), [*self.route_set[1:], NameAddr(self.remote_target)]

    def _base_headers(self, method: str, cseq: int) -> list[tuple[str, str]]:
        _, routes = self._request_line_and_routes()
        fields = [
            ("Max-Forwards", "70"),
            ("From", str(self.local_uri.with_tag(self.local_tag))),
            ("To", str(_with_tag(self.remote_uri, self.remote_tag))),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        fields += [("Route", str(route)) for route in routes]
        return fields

    def create_request(
        self,
        method: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """A new in-dialog request (BYE, re-INVITE, UPDATE, INFO…) per §12.2.1.1.

        Increments the local CSeq. Target-refresh requests carry our Contact.
        The Via is added when the endpoint sends it.
        """
        if self.state is DialogState.TERMINATED:
            raise SipStateError(f"dialog {self.id} is terminated")
        if method in ("ACK", "CANCEL"):
            raise SipStateError(f"{method} is not built with create_request")
        self.local_cseq = 1 if self.local_cseq is None else self.local_cseq + 1
        uri, _ = self._request_line_and_routes()
        fields = self._base_headers(method, self.local_cseq)
        if method in TARGET_REFRESH_METHODS and self.local_contact is not None:
            fields.append(("Contact", str(self.local_contact)))
        fields += list(headers)
        if content_type is not None:
            fields.append(("Content-Type", content_type))
        return Request(method, uri, Headers(fields), body)

    def create_ack(
        self, cseq: int, *, body: bytes = b"", content_type: str | None = None
    ) -> Request:
        """The ACK for a 2xx to our INVITE number `cseq` (§13.2.2.4)."""
        uri, _ = self._request_line_and_routes()
        fields = self._base_headers("ACK", cseq)
        if content_type is not None:
            fields.append(("Content-Type", content_type))
        return Request("ACK", uri, Headers(fields), body)


def _with_tag(addr: NameAddr, tag: str) -> NameAddr:
    return addr.with_tag(tag) if tag else addr


def _first(contacts: tuple[NameAddr, ...] | Wildcard) -> NameAddr | None:
    if isinstance(contacts, tuple) and contacts:
        return contacts[0]
    return None


def _target(contacts: tuple[NameAddr, ...] | Wildcard, fallback: SipUri) -> SipUri:
    """The remote target: the Contact URI, or (for broken peers) a fallback."""
    first = _first(contacts)
    if first is not None and isinstance(first.uri, SipUri):
        return first.uri
    return fallback
