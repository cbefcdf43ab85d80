"""SIP session timers (RFC 4028), mainly the UAS side.

A recorder must notice calls whose other end vanished without a BYE. RFC 4028
does that with periodic re-INVITE/UPDATE "refreshes": one side (the
*refresher*) refreshes every half interval; if the other side sees none before
the interval runs out, it ends the session with a BYE.

Negotiation when an INVITE arrives at us (RFC 4028 §9):

* ``Session-Expires`` below our ``Min-SE`` → ``422 Session Interval Too Small``
  carrying our ``Min-SE`` (:func:`interval_too_small`, :func:`reject_too_small`);
* ``Session-Expires`` present → keep the interval (lowered to our preferred
  one if larger, never below the request's ``Min-SE``), keep its refresher or,
  if it has none, pick one — ``uac`` only if the UAC supports ``timer``;
* absent, but the UAC supports ``timer`` → we may ask for one ourselves;
* refresher ``uac`` → our 2xx must carry ``Require: timer``.

:class:`SessionTimer` then tracks one dialog: with ``now`` passed in, it says
when a refresh is due (we refresh) or when the session has expired (they
refresh): at ``interval - min(32, interval / 3)`` after the last refresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sipscribe.sip.message import Headers, Request, Response, make_response

__all__ = [
    "Refresher",
    "SessionTimer",
    "SessionTimerAgreement",
    "SessionTimerPolicy",
    "agreement_from_response",
    "interval_too_small",
    "negotiate_uas",
    "reject_too_small",
    "session_timer_headers",
]

Refresher = Literal["uac", "uas"]

#: RFC 4028 §4: no Min-SE may be below 90 seconds.
ABSOLUTE_MIN_SE = 90


@dataclass(frozen=True)
class SessionTimerPolicy:
    """Our session-timer preferences as a UAS.

    `refresher` is who we pick when the request leaves it open; ``uac`` keeps
    the refresh work on the caller (the SRC, for a recorder) while we still
    detect dead sessions. `request_when_supported` makes us ask for a session
    timer when the UAC supports one but did not ask.
    """

    session_expires: int = 1800
    min_se: int = ABSOLUTE_MIN_SE
    refresher: Refresher = "uac"
    request_when_supported: bool = True

    def __post_init__(self) -> None:
        if self.min_se < ABSOLUTE_MIN_SE:
            raise ValueError(f"Min-SE must be at least {ABSOLUTE_MIN_SE} seconds")
        if self.session_expires < self.min_se:
            raise ValueError("Session-Expires must not be below Min-SE")


@dataclass(frozen=True)
class SessionTimerAgreement:
    """What one 2xx settles: the interval and who refreshes."""

    interval: int
    refresher: Refresher

    def apply(self, response: Response) -> Response:
        """Add ``Session-Expires`` (and ``Require: timer`` for a uac refresher,
        ``Supported: timer``) to our 2xx, unless the 2xx already has them."""
        headers = response.headers
        if "Session-Expires" not in headers:
            headers = headers.add("Session-Expires", f"{self.interval};refresher={self.refresher}")
        if self.refresher == "uac" and "timer" not in response.require:
            headers = headers.add("Require", "timer")
        if "timer" not in response.supported:
            headers = headers.add("Supported", "timer")
        return Response(response.status, response.reason, headers, response.body)


def _uac_supports_timer(request: Request) -> bool:
    return "timer" in request.supported or "timer" in request.require


def _request_min_se(request: Request) -> int:
    min_se = request.min_se
    return max(ABSOLUTE_MIN_SE, min_se.delta if min_se is not None else 0)


def interval_too_small(request: Request, policy: SessionTimerPolicy) -> bool:
    """Whether `request` asks for a shorter session interval than we accept."""
    se = request.session_expires
    return se is not None and se.delta < policy.min_se


def reject_too_small(request: Request, policy: SessionTimerPolicy, *, to_tag: str) -> Response:
    """``422 Session Interval Too Small`` with our ``Min-SE`` (RFC 4028 §6)."""
    return make_response(request, 422, to_tag=to_tag, headers=[("Min-SE", str(policy.min_se))])


def negotiate_uas(request: Request, policy: SessionTimerPolicy) -> SessionTimerAgreement | None:
    """Settle the session timer for our 2xx to `request` (an INVITE or UPDATE).

    ``None`` means no session timer. Call only when :func:`interval_too_small`
    is false (otherwise answer :func:`reject_too_small`).
    """
    se = request.session_expires
    supports = _uac_supports_timer(request)
    floor = max(_request_min_se(request), policy.min_se)
    if se is None:
        if not (supports and policy.request_when_supported):
            return None
        return SessionTimerAgreement(max(policy.session_expires, floor), policy.refresher)
    interval = se.delta
    if interval > policy.session_expires:
        interval = max(policy.session_expires, floor)
    refresher = se.refresher
    if refresher is None:
        refresher = policy.refresher if supports else "uas"
    return SessionTimerAgreement(interval, refresher)


def agreement_from_response(response: Response) -> SessionTimerAgreement | None:
    """The agreement a 2xx carries (what we sent as UAS, or got as UAC).

    A 2xx with ``Session-Expires`` but no refresher (an RFC 4028 violation)
    is read as refresher ``uas``: the side that answered must then refresh.
    """
    se = response.session_expires
    if se is None:
        return None
    return SessionTimerAgreement(se.delta, se.refresher or "uas")


class SessionTimer:
    """One dialog's session timer, on our clock.

    `role` is our role in the dialog ("uas" for the recorder answering an
    INVITE). :meth:`handle_timer` returns ``"refresh"`` once per interval when
    we are the refresher, and ``"expired"`` when the session must be ended.
    """

    def __init__(self, agreement: SessionTimerAgreement, *, role: Refresher, now: float) -> None:
        self.role = role
        self.expired = False
        self.refreshed(agreement, now)

    @property
    def we_refresh(self) -> bool:
        return self.agreement.refresher == self.role

    @property
    def expires_at(self) -> float:
        """When to give up: ``interval - min(32, interval/3)`` after the last refresh."""
        interval = self.agreement.interval
        return self._start + interval - min(32.0, interval / 3)

    def refreshed(self, agreement: SessionTimerAgreement, now: float) -> None:
        """A refresh (re-INVITE/UPDATE answered 2xx) happened at `now`."""
        self.agreement = agreement
        self.expired = False
        self._start = now
        self._refresh_at: float | None = (
            now + agreement.interval / 2 if agreement.refresher == self.role else None
        )

    def next_timer(self) -> float | None:
        if self.expired:
            return None
        if self._refresh_at is not None:
            return min(self._refresh_at, self.expires_at)
        return self.expires_at

    def handle_timer(self, now: float) -> Literal["refresh", "expired"] | None:
        if self.expired:
            return None
        if now >= self.expires_at:
            self._refresh_at = None
            self.expired = True
            return "expired"
        if self._refresh_at is not None and now >= self._refresh_at:
            self._refresh_at = None  # once per interval; refreshed() re-arms it
            return "refresh"
        return None


def session_timer_headers(agreement: SessionTimerAgreement) -> Headers:
    """Headers a refresher puts in its re-INVITE/UPDATE to keep the agreement."""
    return Headers(
        [
            ("Session-Expires", f"{agreement.interval};refresher={agreement.refresher}"),
            ("Supported", "timer"),
        ]
    )
