"""Dialog creation in both roles, in-dialog requests and 2xx retransmission."""

from __future__ import annotations

import pytest

from sipscribe.sip.dialog import (
    AnswerRetransmitter,
    Dialog,
    DialogState,
    dialog_id,
    dialog_id_for_request,
    dialog_id_for_response,
)
from sipscribe.sip.errors import SipStateError
from sipscribe.sip.events import Peer
from sipscribe.sip.headers import NameAddr
from sipscribe.sip.message import Request, Response, make_response, parse_message
from sipscribe.sip.timers import TimerConfig
from sipscribe.sip.uri import SipUri

INVITE_DATA = (
    b"INVITE sip:srs@srs.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP p2.example.com;branch=z9hG4bKp2\r\n"
    b"Via: SIP/2.0/UDP src.example.com;branch=z9hG4bKsrc\r\n"
    b"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n"
    b"From: <sip:src@example.com>;tag=src-tag\r\n"
    b"To: <sip:srs@example.com>\r\n"
    b"Call-ID: dlg-1\r\n"
    b"CSeq: 10 INVITE\r\n"
    b"Contact: <sip:src@192.0.2.20:5080;transport=tcp>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def parsed(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


INVITE = parsed(INVITE_DATA)
OK = make_response(INVITE, 200, to_tag="srs-tag", headers=[("Contact", "<sip:srs@192.0.2.10>")])


def test_dialog_ids() -> None:
    assert dialog_id("c", "l", "r") == "c;l;r"
    assert dialog_id_for_response(OK) == "dlg-1;src-tag;srs-tag"
    bye = parsed(
        INVITE_DATA.replace(b"INVITE", b"BYE").replace(
            b"To: <sip:srs@example.com>", b"To: <sip:srs@example.com>;tag=srs-tag"
        )
    )
    assert dialog_id_for_request(bye) == "dlg-1;srs-tag;src-tag"


def test_uas_dialog_from_invite() -> None:
    peer = Peer("TCP", ("192.0.2.30", 40001), 9)
    dialog = Dialog.create_uas(INVITE, OK, peer)
    assert dialog.id == "dlg-1;srs-tag;src-tag"
    assert dialog.role == "uas" and dialog.state is DialogState.CONFIRMED
    assert dialog.remote_target == SipUri(
        "192.0.2.20", user="src", port=5080, params=(("transport", "tcp"),)
    )
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p2.example.com;lr",
        "sip:p1.example.com;lr",
    ]
    assert (dialog.remote_cseq, dialog.local_cseq) == (10, None)
    assert dialog.local_contact == NameAddr(SipUri("192.0.2.10", user="srs"))
    assert not dialog.secure
    # The next hop is the first route, over the transport the dialog came on.
    assert dialog.next_hop() == Peer("TCP", ("p2.example.com", 5060), 9)
    with pytest.raises(SipStateError, match=r"needs a To tag"):
        Dialog.create_uas(INVITE, make_response(INVITE, 200))


def test_uac_dialog_reverses_route_set() -> None:
    uac = Dialog.create_uac(
        INVITE, OK.__class__(200, "OK", OK.headers.add("Record-Route", "<sip:p3.example.com;lr>"))
    )
    assert uac.id == "dlg-1;src-tag;srs-tag"
    assert uac.role == "uac" and uac.local_cseq == 10 and uac.remote_cseq is None
    assert [str(r.uri) for r in uac.route_set] == ["sip:p3.example.com;lr"]
    assert uac.remote_target == SipUri("192.0.2.10", user="srs")
    response = Response(
        200,
        "OK",
        OK.headers.add("Record-Route", "<sip:a;lr>, <sip:b;lr>").add("Record-Route", "<sip:c;lr>"),
    )
    assert [str(r.uri.host) for r in Dialog.create_uac(INVITE, response).route_set] == [
        "c",
        "b",
        "a",
    ]


def test_in_dialog_requests_with_loose_routing() -> None:
    dialog = Dialog.create_uas(INVITE, OK)
    bye = dialog.create_request("BYE", headers=[("Reason", "SIP;cause=200")])
    assert bytes(bye) == (
        b"BYE sip:src@192.0.2.20:5080;transport=tcp SIP/2.0\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:srs@example.com>;tag=srs-tag\r\n"
        b"To: <sip:src@example.com>;tag=src-tag\r\n"
        b"Call-ID: dlg-1\r\n"
        b"CSeq: 1 BYE\r\n"
        b"Route: <sip:p2.example.com;lr>\r\n"
        b"Route: <sip:p1.example.com;lr>\r\n"
        b"Reason: SIP;cause=200\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    reinvite = dialog.create_request("INVITE", body=b"v=0\r\n", content_type="application/sdp")
    assert reinvite.cseq.number == 2
    assert reinvite.contacts == (NameAddr(SipUri("192.0.2.10", user="srs")),)
    assert reinvite.headers.get("Content-Type") == "application/sdp"
    ack = dialog.create_ack(2)
    assert (ack.method, ack.cseq.number, ack.cseq.method) == ("ACK", 2, "ACK")
    assert dialog.local_cseq == 2  # ACK does not consume a CSeq
    with pytest.raises(SipStateError, match=r"ACK is not built with create_request"):
        dialog.create_request("ACK")


def test_strict_router_becomes_request_uri() -> None:
    invite = parsed(
        INVITE_DATA.replace(b"<sip:p2.example.com;lr>, ", b"<sip:p2.example.com;method=INVITE>, ")
    )
    dialog = Dialog.create_uas(invite, OK)
    bye = dialog.create_request("BYE")
    assert str(bye.uri) == "sip:p2.example.com"
    assert [str(r) for r in bye.route] == [
        "<sip:p1.example.com;lr>",
        "<sip:src@192.0.2.20:5080;transport=tcp>",
    ]


def test_next_hop_without_routes_uses_remote_target() -> None:
    invite = parsed(
        INVITE_DATA.replace(
            b"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n", b""
        )
    )
    dialog = Dialog.create_uas(invite, OK, Peer("UDP", ("192.0.2.20", 5080)))
    assert dialog.next_hop() == Peer("TCP", ("192.0.2.20", 5080), None)  # transport=tcp wins
    dialog.remote_target = SipUri("[2001:db8::5]", params=(("maddr", "192.0.2.99"),))
    assert dialog.next_hop() == Peer("UDP", ("192.0.2.99", 5060))
    dialog.remote_target = SipUri("[2001:db8::5]", port=5070)
    assert dialog.next_hop() == Peer("UDP", ("2001:db8::5", 5070))


def test_incoming_cseq_and_target_refresh() -> None:
    dialog = Dialog.create_uas(INVITE, OK)
    info = parsed(
        INVITE_DATA.replace(b"CSeq: 10 INVITE", b"CSeq: 11 INFO").replace(
            b"INVITE sip", b"INFO sip"
        )
    )
    assert dialog.receive_request(info) is None and dialog.remote_cseq == 11
    old = parsed(
        INVITE_DATA.replace(b"CSeq: 10 INVITE", b"CSeq: 9 INFO").replace(b"INVITE sip", b"INFO sip")
    )
    assert dialog.receive_request(old) == 500
    ack = parsed(
        INVITE_DATA.replace(b"CSeq: 10 INVITE", b"CSeq: 1 ACK").replace(b"INVITE sip", b"ACK sip")
    )
    assert dialog.receive_request(ack) is None and dialog.remote_cseq == 11
    moved = parsed(INVITE_DATA.replace(b"192.0.2.20:5080;transport=tcp", b"192.0.2.21"))
    dialog.refresh_target(moved)
    assert dialog.remote_target == SipUri("192.0.2.21", user="src")


def test_terminated_dialog_refuses_requests() -> None:
    dialog = Dialog.create_uas(INVITE, OK)
    dialog.state = DialogState.TERMINATED
    with pytest.raises(SipStateError, match=r"is terminated"):
        dialog.create_request("BYE")


def test_answer_retransmitter_backoff_and_timeout() -> None:
    answer = AnswerRetransmitter(OK, Peer("UDP", ("192.0.2.20", 5080)), TimerConfig(), 10.0)
    assert answer.cseq == 10
    times = []
    while True:
        deadline = answer.next_timer()
        action = answer.handle_timer(deadline)
        if action == "timeout":
            break
        assert action == "retransmit"
        times.append(deadline - 10.0)
    assert times[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]
    assert deadline == 42.0  # 64*T1 after the first send
    assert answer.handle_timer(10.2) is None
