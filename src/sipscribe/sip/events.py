"""What the SIP endpoint tells its application, and where messages go.

:class:`~sipscribe.sip.endpoint.SipEndpoint` reports everything that happened
as one of these small frozen dataclasses, drained with ``next_event()`` (as
aioquic's ``QuicConnection`` does). Identifiers are plain strings so an
application can keep them in dicts and logs:

* a *transaction id* names one server or client transaction; answer a
  :class:`RequestReceived` with ``endpoint.respond(transaction_id, response)``;
* a *dialog id* is ``"<Call-ID>;<local tag>;<remote tag>"`` (RFC 3261 §12).
"""

from __future__ import annotations

from dataclasses import dataclass

from sipscribe.sip.message import Request, Response

__all__ = [
    "AckReceived",
    "AckTimedOut",
    "CancelReceived",
    "KeepAlive",
    "ParseFailed",
    "Peer",
    "RequestReceived",
    "ResponseReceived",
    "SessionExpired",
    "SessionRefreshDue",
    "SipEvent",
    "TransactionTimedOut",
]


@dataclass(frozen=True)
class Peer:
    """The other end of a message: where it came from or where it must go.

    `transport` is ``"UDP"``, ``"TCP"`` or ``"TLS"``. On a stream transport
    `connection_id` names the connection to use when it is still open; the
    edge falls back to connecting to `address` otherwise (RFC 3261 §18.2.2).
    """

    transport: str
    address: tuple[str, int]
    connection_id: int | None = None

    @property
    def reliable(self) -> bool:
        """Stream transports do not lose messages, so nothing is retransmitted."""
        return self.transport != "UDP"


class SipEvent:
    """Base class of everything :meth:`SipEndpoint.next_event` returns."""


@dataclass(frozen=True)
class RequestReceived(SipEvent):
    """A new request the application must answer with ``respond()``.

    Retransmissions, ACKs, CANCELs, and requests the endpoint answered itself
    (481, 482, 420, 422, 500) never appear here.
    """

    request: Request
    #: Pass to ``respond()``; names the server transaction.
    transaction_id: str
    #: Where it came from (after Via received/rport processing).
    source: Peer
    #: The dialog an in-dialog request belongs to; ``None`` for initial requests.
    dialog_id: str | None = None


@dataclass(frozen=True)
class AckReceived(SipEvent):
    """The ACK for our 2xx to an INVITE arrived; 2xx retransmission stopped."""

    request: Request
    dialog_id: str
    source: Peer


@dataclass(frozen=True)
class CancelReceived(SipEvent):
    """A CANCEL matched an INVITE we had not answered finally.

    The endpoint already sent ``200 OK`` to the CANCEL and ``487 Request
    Terminated`` to the INVITE named by `transaction_id`.
    """

    request: Request
    #: The cancelled INVITE's server transaction.
    transaction_id: str
    source: Peer


@dataclass(frozen=True)
class TransactionTimedOut(SipEvent):
    """A transaction gave up (Timer B/F: no final response; Timer H: no ACK
    for our non-2xx; or a CANCELled INVITE that never ended). For a client
    transaction treat it as a ``408 Request Timeout``."""

    transaction_id: str
    method: str
    call_id: str


@dataclass(frozen=True)
class AckTimedOut(SipEvent):
    """Our 2xx to an INVITE went unacknowledged for 64*T1 (RFC 3261
    §13.3.1.4): the dialog is confirmed but the session should be ended with
    a BYE."""

    dialog_id: str
    call_id: str


@dataclass(frozen=True)
class ResponseReceived(SipEvent):
    """A response to a request we sent (retransmissions are absorbed)."""

    response: Response
    transaction_id: str
    #: Set for a 2xx that created or belongs to a dialog.
    dialog_id: str | None = None


@dataclass(frozen=True)
class SessionRefreshDue(SipEvent):
    """We are the session-timer refresher (RFC 4028) and half the session
    interval has passed: send a re-INVITE or UPDATE now."""

    dialog_id: str
    call_id: str


@dataclass(frozen=True)
class SessionExpired(SipEvent):
    """No session refresh arrived in time (RFC 4028 §10): send a BYE."""

    dialog_id: str
    call_id: str


@dataclass(frozen=True)
class KeepAlive(SipEvent):
    """A CRLF keep-alive (RFC 5626); on streams the CRLF pong is already queued."""

    source: Peer


@dataclass(frozen=True)
class ParseFailed(SipEvent):
    """Input that was not a valid SIP message.

    If it was a readable request the endpoint already answered with `status`
    and a Warning (`responded`); otherwise it was dropped (RFC 3261 §18.3). On
    a stream a framing error loses sync for good: `close_connection` says the
    edge must close it.
    """

    reason: str
    source: Peer
    status: int = 400
    responded: bool = False
    close_connection: bool = False
