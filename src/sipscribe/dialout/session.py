"""One dialled call's signalling state, sans-I/O: requests out, responses in, a verdict.

:class:`OutboundCall` builds the INVITE (and its authenticated retries), reads every
response to it and says what the caller must do next; the SIP endpoint does the
transactions and the dialog, the asyncio layer (``manager.py``) does the sockets and
timers. Keeping the decisions here makes every path (busy, auth, early media, a 2xx that
races our CANCEL) testable without a network.

States follow the telephony-connect convention: ``dialing`` (INVITE sent), ``ringing``
(a provisional response other than 100), ``connected`` (2xx), ``ended`` (with the final
SIP status and a reason: busy, no_answer, rejected, auth_failed, timeout, cancelled,
completed, error).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import StrEnum

from sipscribe.sip.digest import DigestAuthFailed, DigestClient, DigestError
from sipscribe.sip.events import Peer
from sipscribe.sip.headers import NameAddr, quote_string
from sipscribe.sip.message import Headers, Request, Response
from sipscribe.sip.uri import SipUri

__all__ = [
    "Answered",
    "CallState",
    "Early",
    "Ended",
    "Ignore",
    "OutboundCall",
    "Retry",
    "Ringing",
    "Step",
    "failure_reason",
]

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"


class CallState(StrEnum):
    DIALING = "dialing"
    RINGING = "ringing"
    CONNECTED = "connected"
    ENDED = "ended"


# -- what the caller must do after a response --------------------------------------------
@dataclass(frozen=True)
class Step:
    """Base of the verdicts ``on_response`` returns."""


@dataclass(frozen=True)
class Ignore(Step):
    """Nothing to do (100 Trying, a retransmission, a response after the end)."""


@dataclass(frozen=True)
class Ringing(Step):
    """The far end alerts (180/181/182/183): state is now ``ringing``."""

    status: int


@dataclass(frozen=True)
class Early(Step):
    """A provisional response carries SDP (early media, RFC 3960): start listening now."""

    status: int
    sdp: bytes


@dataclass(frozen=True)
class Retry(Step):
    """Send this INVITE (with credentials) as a new transaction."""

    request: Request


@dataclass(frozen=True)
class Answered(Step):
    """A 2xx: the dialog exists (the endpoint ACKs it); ``sdp`` is the answer."""

    sdp: bytes
    dialog_id: str | None


@dataclass(frozen=True)
class Ended(Step):
    """The call will not be established: final ``status`` and ``reason``."""

    status: int | None
    reason: str
    detail: str = ""


def failure_reason(status: int) -> str:
    """The convention's reason for a final failure status of our INVITE."""
    if status in (486, 600):
        return "busy"
    if status in (401, 407):
        return "auth_failed"
    if status in (408, 480):
        return "no_answer"
    if status == 487:
        return "cancelled"
    return "rejected"


@dataclass
class OutboundCall:
    """The INVITE side of one dialled call (RFC 3261 §13.2, digest auth §22)."""

    target: SipUri
    destination: Peer
    from_uri: SipUri
    contact: NameAddr
    offer: bytes
    display_name: str | None = None
    credentials: tuple[str, str] | None = None
    proxy: SipUri | None = None
    call_id: str = field(default_factory=lambda: f"{secrets.token_hex(12)}@sipscribe")
    from_tag: str = field(default_factory=lambda: secrets.token_hex(6))
    state: CallState = CallState.DIALING
    #: The status of the last provisional response (for the API).
    last_status: int | None = None
    cancelled: bool = False
    _cseq: int = 0
    _auth: DigestClient | None = None
    _auth_header: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if self.credentials is not None:
            self._auth = DigestClient(*self.credentials)

    # -- requests ------------------------------------------------------------------------
    def invite(self) -> Request:
        """The next INVITE (CSeq goes up with each authenticated retry, §22.2)."""
        self._cseq += 1
        from_value = f"<{self.from_uri}>;tag={self.from_tag}"
        if self.display_name:
            from_value = f"{quote_string(self.display_name)} {from_value}"
        fields: list[tuple[str, str]] = []
        if self.proxy is not None:
            fields.append(("Route", f"<{self.proxy.with_param('lr')}>"))
        fields += [
            ("From", from_value),
            ("To", f"<{self.target}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self._cseq} INVITE"),
            ("Contact", str(self.contact)),
            ("Allow", ALLOW),
            ("Supported", "timer"),
        ]
        if self._auth_header is not None:
            fields.append(self._auth_header)
        fields.append(("Content-Type", "application/sdp"))
        return Request("INVITE", self.target, Headers(fields), self.offer)

    # -- responses -----------------------------------------------------------------------
    def on_response(self, response: Response, dialog_id: str | None = None) -> Step:
        """What to do about a response to our (current) INVITE."""
        if self.state is CallState.ENDED:
            return Ignore()
        status = response.status
        if status == 100:
            return Ignore()
        if response.is_provisional:
            self.last_status = status
            if self.state is CallState.DIALING:
                self.state = CallState.RINGING
            if response.body and _is_sdp(response):
                return Early(status, response.body)
            return Ringing(status)
        if response.is_success:
            if self.state is CallState.CONNECTED:
                return Ignore()  # a retransmitted 2xx: the endpoint re-ACKs it
            self.state = CallState.CONNECTED
            self.last_status = status
            return Answered(response.body, dialog_id)
        if 300 <= status < 400:
            return self._end(status, "rejected", "redirects are not followed")
        if status in (401, 407) and not self.cancelled:
            return self._authenticate(response)
        reason = failure_reason(status)
        return self._end(status, reason, response.reason)

    def on_timeout(self) -> Ended:
        """Timer B: the far end never answered the INVITE at all."""
        return self._end(408, "timeout", "no response to the INVITE")

    def end(self, status: int | None, reason: str, detail: str = "") -> Ended:
        return self._end(status, reason, detail)

    # -- internals -----------------------------------------------------------------------
    def _authenticate(self, response: Response) -> Step:
        if self._auth is None:
            return self._end(response.status, "auth_failed", "credentials required, none set")
        try:
            name, value = self._auth.authorize("INVITE", str(self.target), response, self.offer)
        except DigestAuthFailed as exc:
            return self._end(response.status, "auth_failed", str(exc))
        except DigestError as exc:
            return self._end(response.status, "auth_failed", f"unusable challenge: {exc}")
        self._auth_header = (name, value)
        self.state = CallState.DIALING
        return Retry(self.invite())

    def authorize_in_dialog(self, method: str, uri: str, response: Response) -> tuple[str, str]:
        """Credentials for an in-dialog request (BYE, re-INVITE) the far end challenged."""
        if self._auth is None:
            raise DigestAuthFailed("credentials required, none set")
        return self._auth.authorize(method, uri, response)

    def _end(self, status: int | None, reason: str, detail: str) -> Ended:
        self.state = CallState.ENDED
        if status is not None:
            self.last_status = status
        return Ended(status, reason, detail)


def _is_sdp(response: Response) -> bool:
    ctype = response.content_type
    return ctype is not None and str(ctype).lower().startswith("application/sdp")
