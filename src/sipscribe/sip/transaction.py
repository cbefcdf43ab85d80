"""SIP transactions (RFC 3261 §17 with the RFC 6026 corrections).

Theory of operation
-------------------
A transaction is one request and the responses to it, kept reliable over
an unreliable transport by retransmission timers. Each class here is a pure
state machine: it is fed messages and the clock (`now`), and it queues the
messages to transmit (:meth:`messages_to_send`) and the events to report
(:meth:`next_event`). Its owner (:class:`~sipscribe.sip.endpoint.SipEndpoint`)
decides *where* messages go and polls :meth:`next_timer` /
:meth:`handle_timer`.

The four machines::

    INVITE client      Calling -1xx-> Proceeding -2xx-> Accepted -M-> Terminated
      (A, B, D, M)        \\------300-699---> Completed -D-> Terminated
    INVITE server      Proceeding -2xx-> Accepted -L-> Terminated
      (G, H, I, L)        \\--300-699--> Completed -ACK-> Confirmed -I-> Terminated
    non-INVITE client  Trying -1xx-> Proceeding -final-> Completed -K-> Terminated (E, F, K)
    non-INVITE server  Trying -1xx-> Proceeding -final-> Completed -J-> Terminated (J)

RFC 6026 "Accepted" states replace RFC 3261's immediate termination on 2xx:
the server absorbs INVITE retransmissions while the *TU* (the dialog layer)
retransmits the 2xx until the ACK comes; the client passes every 2xx
(retransmitted or forked) up so the TU can ACK each.

Matching (§17.1.3, §17.2.3): an RFC 3261 request is identified by its top
Via branch (magic cookie ``z9hG4bK``) plus sent-by and method (ACK matches
its INVITE); requests from RFC 2543 clients fall back to Request-URI, From
tag, Call-ID, CSeq number and the whole top Via.
"""

from __future__ import annotations

import enum
from collections import deque

from sipscribe.sip.errors import SipStateError
from sipscribe.sip.events import Peer, SipEvent, TransactionTimedOut
from sipscribe.sip.message import Headers, Request, Response
from sipscribe.sip.timers import DEFAULT_TIMERS, TimerConfig

__all__ = [
    "ClientTransaction",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "ServerTransaction",
    "TransactionState",
    "client_transaction_key",
    "make_ack_for_non2xx",
    "make_cancel",
    "merge_key",
    "server_transaction_key",
]


class TransactionState(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


# --- matching keys ---------------------------------------------------------------------


def server_transaction_key(request: Request, *, method: str | None = None) -> str:
    """The server transaction a request belongs to (§17.2.3).

    ACK is keyed as INVITE so it finds the INVITE transaction; `method`
    overrides the method (a CANCEL looks up the INVITE it cancels).
    """
    via = request.top_via
    if method is None:
        method = "INVITE" if request.method == "ACK" else request.method
    if via.is_rfc3261_branch:
        return f"{via.branch}|{via.host.lower()}:{via.sent_by_port}|{method}"
    # RFC 2543 fallback. Our own received/rport additions are not part of what
    # the client sent, so they are left out of the Via comparison.
    sent_via = str(via.with_param("received").with_param("rport"))
    parts = (str(request.uri), request.from_.tag or "", request.call_id)
    return "2543|" + "|".join((*parts, str(request.cseq.number), sent_via, method))


def client_transaction_key(message: Request | Response) -> str:
    """The client transaction a response belongs to: branch + CSeq method (§17.1.3)."""
    return f"{message.top_via.branch}|{message.cseq.method}"


def merge_key(request: Request) -> tuple[str, str, int, str]:
    """From tag, Call-ID and CSeq: equal keys with different transactions mean
    a request that forked and merged back (§8.2.2.2, answered 482)."""
    return (request.from_.tag or "", request.call_id, request.cseq.number, request.cseq.method)


# --- messages the transaction layer builds ------------------------------------------------


def make_ack_for_non2xx(request: Request, response: Response) -> Request:
    """The ACK an INVITE client transaction sends for a 300-699 (§17.1.1.3).

    Same Request-URI, Call-ID, From, CSeq number and Route set, the response's
    To (with its tag), and the INVITE's top Via only (same branch).
    """
    fields = [
        ("Via", request.headers.values("Via")[0]),
        ("Max-Forwards", "70"),
        ("From", request.headers.get("From") or ""),
        ("To", response.headers.get("To") or ""),
        ("Call-ID", request.call_id),
        ("CSeq", f"{request.cseq.number} ACK"),
    ]
    fields += [("Route", v) for v in request.headers.get_all("Route")]
    return Request("ACK", request.uri, Headers(fields))


def make_cancel(request: Request) -> Request:
    """CANCEL for a pending INVITE (§9.1): same Request-URI, Call-ID, To, From,
    CSeq number, Route set and top Via (so the same branch)."""
    fields = [
        ("Via", request.headers.values("Via")[0]),
        ("Max-Forwards", "70"),
        ("From", request.headers.get("From") or ""),
        ("To", request.headers.get("To") or ""),
        ("Call-ID", request.call_id),
        ("CSeq", f"{request.cseq.number} CANCEL"),
    ]
    fields += [("Route", v) for v in request.headers.get_all("Route")]
    return Request("CANCEL", request.uri, Headers(fields))


# --- common machinery ----------------------------------------------------------------------


class _Transaction:
    """Timers, outbox and event queue shared by all four machines."""

    def __init__(
        self, id: str, request: Request, peer: Peer, timers: TimerConfig, state: TransactionState
    ) -> None:
        self.id = id
        self.request = request
        self.peer = peer
        self.timers = timers
        self.reliable = peer.reliable
        self.state = state
        self._deadlines: dict[str, float] = {}
        self._intervals: dict[str, float] = {}
        self._outbox: list[Request | Response] = []
        self._events: deque[SipEvent] = deque()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.state.value}>"

    @property
    def terminated(self) -> bool:
        return self.state is TransactionState.TERMINATED

    def next_timer(self) -> float | None:
        """The earliest pending deadline, or ``None`` when no timer runs."""
        return min(self._deadlines.values(), default=None)

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at `now`, earliest first."""
        while not self.terminated:
            due = [(t, name) for name, t in self._deadlines.items() if t <= now]
            if not due:
                return
            _, name = min(due)
            del self._deadlines[name]
            self._on_timer(name, now)

    def messages_to_send(self) -> list[Request | Response]:
        """Drain the messages to transmit (to :attr:`peer` or the response target)."""
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> SipEvent | None:
        return self._events.popleft() if self._events else None

    def _start(self, name: str, delay: float, now: float, *, interval: float | None = None) -> None:
        self._deadlines[name] = now + delay
        if interval is not None:
            self._intervals[name] = interval

    def _stop(self, *names: str) -> None:
        for name in names:
            self._deadlines.pop(name, None)

    def _terminate(self) -> None:
        self.state = TransactionState.TERMINATED
        self._deadlines.clear()

    def _wait_or_terminate(self, name: str, delay: float, now: float) -> None:
        """Start a lingering timer, or end at once when it would be zero (reliable)."""
        if delay <= 0:
            self._terminate()
        else:
            self._start(name, delay, now)

    def _time_out(self) -> None:
        self._events.append(TransactionTimedOut(self.id, self.request.method, self.request.call_id))
        self._terminate()

    def _on_timer(self, name: str, now: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


# --- server side -------------------------------------------------------------------------------


class ServerTransaction(_Transaction):
    """Common part of the server machines: the request and our last response."""

    def __init__(
        self, id: str, request: Request, peer: Peer, timers: TimerConfig, state: TransactionState
    ) -> None:
        super().__init__(id, request, peer, timers, state)
        self.last_response: Response | None = None

    @property
    def final_sent(self) -> bool:
        return self.last_response is not None and self.last_response.status >= 200

    def receive_request(self, request: Request, now: float) -> bool:  # pragma: no cover
        raise NotImplementedError

    def send_response(self, response: Response, now: float) -> None:  # pragma: no cover
        raise NotImplementedError


class InviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.1 / RFC 6026 §7.1: Proceeding, Completed, Confirmed, Accepted.

    Timer G retransmits a non-2xx final until the ACK (UDP), Timer H gives up
    waiting for that ACK, Timer I absorbs ACK retransmissions, Timer L keeps
    the Accepted state around to absorb INVITE retransmissions.
    """

    def __init__(
        self,
        id: str,
        request: Request,
        peer: Peer,
        timers: TimerConfig = DEFAULT_TIMERS,
        now: float = 0.0,
    ) -> None:
        super().__init__(id, request, peer, timers, TransactionState.PROCEEDING)

    def receive_request(self, request: Request, now: float) -> bool:
        """A retransmitted INVITE or an ACK. True: pass the ACK up to the TU."""
        state = self.state
        if request.method == "ACK":
            if state is TransactionState.COMPLETED:
                self.state = TransactionState.CONFIRMED
                self._stop("G", "H")
                self._wait_or_terminate("I", self.timers.timer_i(self.reliable), now)
                return False
            return state is TransactionState.ACCEPTED
        resend = state in (TransactionState.PROCEEDING, TransactionState.COMPLETED)
        if resend and self.last_response is not None:
            self._outbox.append(self.last_response)
        return False  # Accepted/Confirmed: absorbed (RFC 6026 §7.1)

    def send_response(self, response: Response, now: float) -> None:
        """Send a response from the TU; see the state diagram for what is allowed."""
        state = self.state
        if state is TransactionState.ACCEPTED and 200 <= response.status < 300:
            self._outbox.append(response)  # TU retransmitting its 2xx (RFC 6026)
            return
        if state is not TransactionState.PROCEEDING:
            raise SipStateError(f"cannot send {response.status} in state {state.value}")
        self.last_response = response
        self._outbox.append(response)
        if response.status < 200:
            return
        if response.status < 300:
            self.state = TransactionState.ACCEPTED
            self._start("L", self.timers.transaction_timeout, now)
            return
        self.state = TransactionState.COMPLETED
        if not self.reliable:
            self._start("G", self.timers.t1, now, interval=self.timers.t1)
        self._start("H", self.timers.transaction_timeout, now)

    def _on_timer(self, name: str, now: float) -> None:
        if name == "G" and self.last_response is not None:
            self._outbox.append(self.last_response)
            interval = self.timers.next_interval(self._intervals["G"])
            self._start("G", interval, now, interval=interval)
        elif name == "H":
            self._time_out()  # the ACK never came
        elif name in ("I", "L"):
            self._terminate()


class NonInviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.2: Trying, Proceeding, Completed; Timer J absorbs retransmissions."""

    def __init__(
        self,
        id: str,
        request: Request,
        peer: Peer,
        timers: TimerConfig = DEFAULT_TIMERS,
        now: float = 0.0,
    ) -> None:
        super().__init__(id, request, peer, timers, TransactionState.TRYING)

    def receive_request(self, request: Request, now: float) -> bool:
        """A retransmission: re-send our last response, if any. Never passed up."""
        if self.last_response is not None and self.state in (
            TransactionState.PROCEEDING,
            TransactionState.COMPLETED,
        ):
            self._outbox.append(self.last_response)
        return False

    def send_response(self, response: Response, now: float) -> None:
        if self.state not in (TransactionState.TRYING, TransactionState.PROCEEDING):
            raise SipStateError(f"cannot send {response.status} in state {self.state.value}")
        self.last_response = response
        self._outbox.append(response)
        if response.status < 200:
            self.state = TransactionState.PROCEEDING
        else:
            self.state = TransactionState.COMPLETED
            self._wait_or_terminate("J", self.timers.timer_j(self.reliable), now)

    def _on_timer(self, name: str, now: float) -> None:
        if name == "J":
            self._terminate()


# --- client side ------------------------------------------------------------------------------


class ClientTransaction(_Transaction):
    """Common part of the client machines: the request goes out at creation."""

    def __init__(
        self, id: str, request: Request, peer: Peer, timers: TimerConfig, state: TransactionState
    ) -> None:
        super().__init__(id, request, peer, timers, state)
        self._outbox.append(request)
        self.last_response: Response | None = None

    def receive_response(self, response: Response, now: float) -> bool:  # pragma: no cover
        raise NotImplementedError


class InviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.1 / RFC 6026 §7.2: Calling, Proceeding, Completed, Accepted.

    Timer A retransmits the INVITE (UDP, doubling without cap), Timer B gives
    up without any response, Timer D absorbs final-response retransmissions
    (re-sending our ACK), Timer M keeps Accepted around to pass every 2xx up.
    """

    def __init__(
        self,
        id: str,
        request: Request,
        peer: Peer,
        timers: TimerConfig = DEFAULT_TIMERS,
        now: float = 0.0,
    ) -> None:
        super().__init__(id, request, peer, timers, TransactionState.CALLING)
        self.ack: Request | None = None
        if not self.reliable:
            self._start("A", timers.t1, now, interval=timers.t1)
        self._start("B", timers.transaction_timeout, now)

    def receive_response(self, response: Response, now: float) -> bool:
        """True if the response must go up to the TU (retransmissions do not)."""
        state = self.state
        status = response.status
        if state in (TransactionState.CALLING, TransactionState.PROCEEDING):
            self.last_response = response
            self._stop("A", "B")
            if status < 200:
                self.state = TransactionState.PROCEEDING
            elif status < 300:
                self.state = TransactionState.ACCEPTED
                self._stop("cancel")
                self._start("M", self.timers.transaction_timeout, now)
            else:
                self.state = TransactionState.COMPLETED
                self._stop("cancel")
                self.ack = make_ack_for_non2xx(self.request, response)
                self._outbox.append(self.ack)
                self._wait_or_terminate("D", self.timers.timer_d(self.reliable), now)
            return True
        if state is TransactionState.ACCEPTED:
            return 200 <= status < 300  # retransmitted or forked 2xx: the TU ACKs each
        if state is TransactionState.COMPLETED and status >= 300 and self.ack is not None:
            self._outbox.append(self.ack)
        return False

    def cancel_started(self, now: float) -> None:
        """We sent a CANCEL: if no final response comes within 64*T1, give up
        (§9.1 — the transaction is then considered cancelled)."""
        if self.state in (TransactionState.CALLING, TransactionState.PROCEEDING):
            self._start("cancel", self.timers.transaction_timeout, now)

    def _on_timer(self, name: str, now: float) -> None:
        if name == "A":
            self._outbox.append(self.request)
            interval = self.timers.next_interval(self._intervals["A"], cap=False)
            self._start("A", interval, now, interval=interval)
        elif name in ("B", "cancel"):
            self._time_out()
        elif name in ("D", "M"):
            self._terminate()


class NonInviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.2: Trying, Proceeding, Completed.

    Timer E retransmits (UDP; doubling to T2 while Trying, every T2 once a
    provisional came), Timer F gives up, Timer K absorbs retransmitted finals.
    """

    def __init__(
        self,
        id: str,
        request: Request,
        peer: Peer,
        timers: TimerConfig = DEFAULT_TIMERS,
        now: float = 0.0,
    ) -> None:
        super().__init__(id, request, peer, timers, TransactionState.TRYING)
        if not self.reliable:
            self._start("E", timers.t1, now, interval=timers.t1)
        self._start("F", timers.transaction_timeout, now)

    def receive_response(self, response: Response, now: float) -> bool:
        if self.state not in (TransactionState.TRYING, TransactionState.PROCEEDING):
            return False
        self.last_response = response
        if response.status < 200:
            self.state = TransactionState.PROCEEDING
            return True
        self.state = TransactionState.COMPLETED
        self._stop("E", "F")
        self._wait_or_terminate("K", self.timers.timer_k(self.reliable), now)
        return True

    def _on_timer(self, name: str, now: float) -> None:
        if name == "E":
            self._outbox.append(self.request)
            if self.state is TransactionState.TRYING:
                interval = self.timers.next_interval(self._intervals["E"])
            else:
                interval = self.timers.t2
            self._start("E", interval, now, interval=interval)
        elif name == "F":
            self._time_out()
        elif name == "K":
            self._terminate()
