"""The dial-out INVITE state machine, response by response, without a network."""

from __future__ import annotations

from sipscribe.dialout.session import (
    Answered,
    CallState,
    Early,
    Ended,
    Ignore,
    OutboundCall,
    Retry,
    Ringing,
    failure_reason,
)
from sipscribe.sip.events import Peer
from sipscribe.sip.headers import NameAddr
from sipscribe.sip.message import Request, Response, make_response
from sipscribe.sip.uri import SipUri

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 5004 RTP/AVP 0\r\n"
)


def _call(**kw) -> OutboundCall:  # type: ignore[no-untyped-def]
    return OutboundCall(
        target=SipUri.parse("sip:bob@127.0.0.1:5070"),
        destination=Peer("UDP", ("127.0.0.1", 5070)),
        from_uri=SipUri.parse("sip:sipscribe@127.0.0.1"),
        contact=NameAddr(SipUri.parse("sip:127.0.0.1:5060")),
        offer=SDP,
        **kw,
    )


def _with_via(req: Request) -> Request:
    # The endpoint adds the Via when it sends; responses echo it.
    from dataclasses import replace

    return replace(
        req, headers=req.headers.add_first("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx")
    )


def _resp(req: Request, status: int, *, headers=(), body=b"", ctype=None) -> Response:  # type: ignore[no-untyped-def]
    return make_response(
        _with_via(req), status, to_tag="far", headers=list(headers), body=body, content_type=ctype
    )


def test_invite_carries_what_the_far_end_needs() -> None:
    call = _call(display_name="Note Taker", proxy=SipUri.parse("sip:proxy.example.com"))
    inv = call.invite()
    assert inv.method == "INVITE" and str(inv.uri) == "sip:bob@127.0.0.1:5070"
    assert inv.headers.get("Route") == "<sip:proxy.example.com;lr>"
    assert inv.from_.tag == call.from_tag and '"Note Taker"' in (inv.headers.get("From") or "")
    assert inv.cseq.number == 1 and inv.body == SDP
    assert inv.headers.get("Content-Type") == "application/sdp"
    assert "timer" in inv.supported


def test_ringing_early_media_then_answer() -> None:
    call = _call()
    inv = call.invite()
    assert isinstance(call.on_response(_resp(inv, 100)), Ignore)
    assert call.state is CallState.DIALING
    step = call.on_response(_resp(inv, 180))
    assert isinstance(step, Ringing) and call.state is CallState.RINGING
    step = call.on_response(_resp(inv, 183, body=SDP, ctype="application/sdp"))
    assert isinstance(step, Early) and step.sdp == SDP
    step = call.on_response(_resp(inv, 200, body=SDP, ctype="application/sdp"), "d1")
    assert isinstance(step, Answered) and step.dialog_id == "d1"
    assert call.state is CallState.CONNECTED
    assert isinstance(call.on_response(_resp(inv, 200)), Ignore)  # retransmission


def test_failures_map_to_the_conventions_reasons() -> None:
    for status, reason in [
        (486, "busy"),
        (600, "busy"),
        (480, "no_answer"),
        (404, "rejected"),
        (503, "rejected"),
        (603, "rejected"),
        (487, "cancelled"),
    ]:
        call = _call()
        step = call.on_response(_resp(call.invite(), status))
        assert isinstance(step, Ended) and step.reason == reason and step.status == status
        assert call.state is CallState.ENDED
        assert failure_reason(status) == reason
    call = _call()
    assert call.on_timeout().reason == "timeout"
    step = _call().on_response(_resp(_call().invite(), 302))
    assert isinstance(step, Ended) and step.reason == "rejected"


def test_digest_challenge_is_answered_once_then_auth_failed() -> None:
    call = _call(credentials=("bob", "secret"))
    inv = call.invite()
    challenge = [("WWW-Authenticate", 'Digest realm="t", nonce="n1", algorithm=MD5, qop="auth"')]
    step = call.on_response(_resp(inv, 401, headers=challenge))
    assert isinstance(step, Retry)
    retry = step.request
    assert retry.cseq.number == 2 and retry.call_id == inv.call_id
    assert retry.from_.tag == inv.from_.tag
    auth = retry.headers.get("Authorization") or ""
    assert auth.startswith("Digest ") and 'username="bob"' in auth and "qop=auth" in auth
    # The same nonce again (not stale): the password is wrong.
    step = call.on_response(_resp(retry, 401, headers=challenge))
    assert isinstance(step, Ended) and step.reason == "auth_failed" and step.status == 401


def test_proxy_challenge_uses_proxy_authorization() -> None:
    call = _call(credentials=("bob", "secret"))
    inv = call.invite()
    challenge = [("Proxy-Authenticate", 'Digest realm="p", nonce="n2", algorithm=SHA-256')]
    step = call.on_response(_resp(inv, 407, headers=challenge))
    assert isinstance(step, Retry)
    assert (step.request.headers.get("Proxy-Authorization") or "").startswith("Digest ")


def test_challenge_without_credentials_fails_clearly() -> None:
    call = _call()
    step = call.on_response(
        _resp(call.invite(), 401, headers=[("WWW-Authenticate", 'Digest realm="t", nonce="n"')])
    )
    assert isinstance(step, Ended) and step.reason == "auth_failed"
    assert "none set" in step.detail
