"""RFC 4028 session timer negotiation (UAS side) and expiry tracking."""

from __future__ import annotations

import pytest

from sipscribe.sip.message import Request, make_response, parse_message
from sipscribe.sip.session_timer import (
    SessionTimer,
    SessionTimerAgreement,
    SessionTimerPolicy,
    agreement_from_response,
    interval_too_small,
    negotiate_uas,
    reject_too_small,
    session_timer_headers,
)

POLICY = SessionTimerPolicy()


def invite(*headers: str) -> Request:
    data = (
        "INVITE sip:srs@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP src.example.com;branch=z9hG4bK1\r\n"
        "From: <sip:src@example.com>;tag=1\r\nTo: <sip:srs@example.com>\r\n"
        "Call-ID: st-1\r\nCSeq: 1 INVITE\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"
    )
    message = parse_message(data.encode())
    assert isinstance(message, Request)
    return message


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        # No timer asked for, UAC supports it: we ask, and let the UAC refresh.
        (("Supported: timer",), SessionTimerAgreement(1800, "uac")),
        (("Supported: timer", "Min-SE: 2000"), SessionTimerAgreement(2000, "uac")),
        # Asked for, refresher chosen by the UAC: kept.
        (
            ("Supported: timer", "Session-Expires: 600;refresher=uas"),
            SessionTimerAgreement(600, "uas"),
        ),
        # Asked for without refresher: our preference if the UAC supports timer, else uas.
        (("Supported: timer", "Session-Expires: 600"), SessionTimerAgreement(600, "uac")),
        (("Session-Expires: 600",), SessionTimerAgreement(600, "uas")),
        # Larger than we like: reduced, never below the request's Min-SE.
        (
            ("Supported: timer", "Session-Expires: 7200;refresher=uac"),
            SessionTimerAgreement(1800, "uac"),
        ),
        (("Session-Expires: 7200", "Min-SE: 3600"), SessionTimerAgreement(3600, "uas")),
        # No support, no request: no timer.
        ((), None),
    ],
)
def test_negotiation(headers: tuple[str, ...], expected: SessionTimerAgreement | None) -> None:
    request = invite(*headers)
    assert not interval_too_small(request, POLICY)
    assert negotiate_uas(request, POLICY) == expected


def test_policy_preferring_uas_refresh_and_not_asking() -> None:
    policy = SessionTimerPolicy(
        session_expires=900, min_se=120, refresher="uas", request_when_supported=False
    )
    assert negotiate_uas(invite("Supported: timer"), policy) is None
    assert negotiate_uas(
        invite("Supported: timer", "Session-Expires: 600"), policy
    ) == SessionTimerAgreement(600, "uas")
    with pytest.raises(ValueError, match=r"at least 90"):
        SessionTimerPolicy(min_se=60)
    with pytest.raises(ValueError, match=r"not be below Min-SE"):
        SessionTimerPolicy(session_expires=100, min_se=200)


def test_422_when_interval_too_small() -> None:
    request = invite("Supported: timer", "Session-Expires: 60")
    assert interval_too_small(request, POLICY)
    response = reject_too_small(
        request, SessionTimerPolicy(min_se=120, session_expires=1800), to_tag="t"
    )
    assert (response.status, response.reason) == (422, "Session Interval Too Small")
    assert response.headers.get("Min-SE") == "120" and response.to.tag == "t"


def test_apply_adds_headers_to_2xx() -> None:
    request = invite("Supported: timer")
    ok = SessionTimerAgreement(1800, "uac").apply(make_response(request, 200, to_tag="t"))
    assert ok.headers.get("Session-Expires") == "1800;refresher=uac"
    assert ok.require == ("timer",) and ok.supported == ("timer",)
    uas = SessionTimerAgreement(600, "uas").apply(make_response(request, 200, to_tag="t"))
    assert uas.require == () and uas.headers.get("Session-Expires") == "600;refresher=uas"
    again = SessionTimerAgreement(90, "uac").apply(ok)
    assert again.headers.get_all("Session-Expires") == ["1800;refresher=uac"]
    assert again.headers.get_all("Require") == ["timer"]
    assert agreement_from_response(ok) == SessionTimerAgreement(1800, "uac")
    assert agreement_from_response(make_response(request, 200)) is None
    bare = make_response(request, 200, headers=[("Session-Expires", "300")])
    assert agreement_from_response(bare) == SessionTimerAgreement(300, "uas")
    assert list(session_timer_headers(SessionTimerAgreement(300, "uac"))) == [
        ("Session-Expires", "300;refresher=uac"),
        ("Supported", "timer"),
    ]


def test_non_refresher_expires_before_the_interval() -> None:
    timer = SessionTimer(SessionTimerAgreement(120, "uac"), role="uas", now=100.0)
    assert not timer.we_refresh
    assert timer.expires_at == 188.0  # 120 - min(32, 40)
    assert timer.next_timer() == 188.0
    assert timer.handle_timer(187.9) is None
    assert timer.handle_timer(188.0) == "expired"
    assert timer.next_timer() is None and timer.handle_timer(300.0) is None
    short = SessionTimer(SessionTimerAgreement(90, "uac"), role="uas", now=0.0)
    assert short.expires_at == 60.0  # 90 - min(32, 30)


def test_refresher_is_told_at_half_interval_and_refresh_rearms() -> None:
    timer = SessionTimer(SessionTimerAgreement(1800, "uas"), role="uas", now=0.0)
    assert timer.we_refresh and timer.next_timer() == 900.0
    assert timer.handle_timer(900.0) == "refresh"
    assert timer.handle_timer(901.0) is None  # once per interval
    assert timer.next_timer() == 1768.0
    timer.refreshed(SessionTimerAgreement(1800, "uas"), 950.0)
    assert timer.next_timer() == 1850.0
    assert timer.handle_timer(2718.0) == "expired"  # never refreshed again
