"""Two SipEndpoints (a UAC and a UAS) driven through an in-memory link with fake time."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import pytest

from sipscribe.sip.endpoint import EndpointConfig, SipEndpoint
from sipscribe.sip.errors import SipStateError
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
    TransactionTimedOut,
)
from sipscribe.sip.message import Headers, Request, Response, parse_message
from sipscribe.sip.session_timer import SessionTimerPolicy
from sipscribe.sip.uri import SipUri

DATA = pathlib.Path(__file__).resolve().parent.parent / "data" / "sip"
UAC_ADDR = ("127.0.0.1", 5070)
UAS_ADDR = ("127.0.0.1", 5060)
TO_UAS = Peer("UDP", UAS_ADDR)
TO_UAC = Peer("UDP", UAC_ADDR)
SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"


def invite(
    *, call_id: str = "call-1", from_tag: str = "uac-tag", extra: tuple[tuple[str, str], ...] = ()
) -> Request:
    headers = Headers(
        [
            ("From", f"<sip:src@127.0.0.1:5070>;tag={from_tag}"),
            ("To", "<sip:srs@127.0.0.1:5060>"),
            ("Call-ID", call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", "<sip:src@127.0.0.1:5070>"),
            ("Content-Type", "application/sdp"),
            *extra,
        ]
    )
    return Request("INVITE", SipUri("127.0.0.1", user="srs", port=5060), headers, SDP)


def options(call_id: str = "opt-1") -> Request:
    headers = Headers(
        [
            ("From", "<sip:src@127.0.0.1:5070>;tag=o1"),
            ("To", "<sip:srs@127.0.0.1:5060>"),
            ("Call-ID", call_id),
            ("CSeq", "7 OPTIONS"),
        ]
    )
    return Request("OPTIONS", SipUri("127.0.0.1", port=5060), headers)


def only(events: list, kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def establish(net, now: float = 0.0, *, extra: tuple[tuple[str, str], ...] = ()):
    """INVITE -> 100 -> 200 -> ACK; returns (uac dialog id, uas dialog id)."""
    net.uac.send_request(invite(extra=extra), TO_UAS, now)
    net.transfer(now)
    (received,) = only(net.events("uas"), RequestReceived)
    response = net.uas.make_response(
        received.transaction_id, 200, body=SDP, content_type="application/sdp"
    )
    net.uas.respond(received.transaction_id, response, now)
    net.transfer(now)
    uac_events = net.events("uac")
    (ok,) = [e for e in only(uac_events, ResponseReceived) if e.response.status == 200]
    (ack,) = only(net.events("uas"), AckReceived)
    return ok.dialog_id, ack.dialog_id


def run_timers(endpoint: SipEndpoint, until: float) -> list[float]:
    """Fire every timer up to `until`; returns the times handle_timer ran."""
    fired = []
    while (deadline := endpoint.next_timer()) is not None and deadline <= until:
        endpoint.handle_timer(deadline)
        fired.append(deadline)
    return fired


# --- the basic call ------------------------------------------------------------------------------


def test_invite_100_180_200_ack(network) -> None:
    net = network
    tid = net.uac.send_request(invite(), TO_UAS, 0.0)
    net.transfer(0.0)
    (received,) = net.events("uas")
    assert isinstance(received, RequestReceived)
    assert received.request.method == "INVITE" and received.dialog_id is None
    assert received.source == Peer("UDP", UAC_ADDR)
    # RFC 3581: the UAC asked for rport, so received and rport are filled in.
    via = received.request.top_via
    assert via.rport == 5070 and via.received == "127.0.0.1"
    (trying,) = net.events("uac")
    assert isinstance(trying, ResponseReceived) and trying.response.status == 100
    assert trying.transaction_id == tid

    ringing = net.uas.make_response(received.transaction_id, 180)
    net.uas.respond(received.transaction_id, ringing, 0.1)
    ok = net.uas.make_response(
        received.transaction_id, 200, body=SDP, content_type="application/sdp"
    )
    net.uas.respond(received.transaction_id, ok, 0.2)
    net.transfer(0.2)

    events = net.events("uac")
    assert [e.response.status for e in events] == [180, 200]
    assert events[0].response.to.tag == events[1].response.to.tag  # one tag per transaction
    dialog_id = events[1].dialog_id
    assert dialog_id == f"call-1;uac-tag;{events[1].response.to.tag}"
    (ack,) = net.events("uas")
    assert isinstance(ack, AckReceived) and ack.request.method == "ACK"
    assert ack.dialog_id == f"call-1;{events[1].response.to.tag};uac-tag"
    assert ack.request.cseq.number == 1
    assert ack.request.top_via.branch != received.request.top_via.branch  # 2xx ACK: new branch

    uac_dialog = net.uac.dialog(dialog_id)
    uas_dialog = net.uas.dialog(ack.dialog_id)
    assert uac_dialog is not None and uas_dialog is not None
    assert uac_dialog.remote_target == SipUri("127.0.0.1", port=5060)  # our auto Contact
    assert uas_dialog.remote_target == SipUri("127.0.0.1", user="src", port=5070)
    assert uas_dialog.remote_cseq == 1 and uac_dialog.local_cseq == 1
    # 2xx retransmission stopped: nothing more is ever sent.
    run_timers(net.uas, 100.0)
    assert net.uas.datagrams_to_send() == []


def test_retransmitted_invite_is_absorbed(network) -> None:
    net = network
    net.uac.send_request(invite(), TO_UAS, 0.0)
    ((data, _),) = net.uac.datagrams_to_send()
    net.uas.receive_datagram(data, UAC_ADDR, 0.0)
    net.uas.receive_datagram(data, UAC_ADDR, 0.5)  # Timer A retransmission
    net.uas.receive_datagram(data, UAC_ADDR, 1.5)
    assert len(only(net.events("uas"), RequestReceived)) == 1
    replies = [parse_message(d) for d, _ in net.uas.datagrams_to_send()]
    assert [r.status for r in replies] == [100, 100, 100]  # last response re-sent


def test_invite_client_timer_a_doubles_and_b_times_out(network) -> None:
    net = network
    tid = net.uac.send_request(invite(), TO_UAS, 0.0)
    net.uac.datagrams_to_send()
    fired = run_timers(net.uac, 100.0)
    assert fired == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 32.0]  # A: no T2 cap; B = 64*T1
    assert len(net.uac.datagrams_to_send()) == 6
    (timeout,) = net.events("uac")
    assert timeout == TransactionTimedOut(tid, "INVITE", "call-1")
    assert net.uac.next_timer() is None


def test_2xx_retransmitted_with_backoff_until_ack(network) -> None:
    net = network
    net.uac.send_request(invite(), TO_UAS, 0.0)
    net.transfer(0.0)
    (received,) = only(net.events("uas"), RequestReceived)
    ok = net.uas.make_response(
        received.transaction_id, 200, body=SDP, content_type="application/sdp"
    )
    net.uas.respond(received.transaction_id, ok, 1.0)
    first = net.uas.datagrams_to_send()
    assert len(first) == 1
    fired = run_timers(net.uas, 13.0)
    assert fired == [1.5, 2.5, 4.5, 8.5, 12.5]  # T1, 2T1, 4T1, then capped at T2
    copies = net.uas.datagrams_to_send()
    assert [d for d, _ in copies] == [first[0][0]] * 5
    # The 2xx finally gets through; the UAC ACKs it and retransmission stops.
    net.uac.receive_datagram(first[0][0], UAS_ADDR, 13.0)
    net.transfer(13.0)
    assert len(only(net.events("uas"), AckReceived)) == 1
    run_timers(net.uas, 100.0)
    assert net.uas.datagrams_to_send() == []
    assert only(net.events("uas"), AckTimedOut) == []


def test_uac_resends_ack_for_each_retransmitted_2xx(network) -> None:
    net = network
    establish(net)
    ok = next(d for sender, d in net.log if sender == "uas" and d.startswith(b"SIP/2.0 200"))
    net.uac.receive_datagram(ok, UAS_ADDR, 1.0)
    ((ack, _),) = net.uac.datagrams_to_send()
    assert ack == next(d for sender, d in net.log if sender == "uac" and d.startswith(b"ACK"))
    assert net.events("uac") == []  # not reported twice


def test_no_ack_times_out_after_64_t1(network) -> None:
    net = network
    net.uac.send_request(invite(), TO_UAS, 0.0)
    net.transfer(0.0)
    (received,) = only(net.events("uas"), RequestReceived)
    net.uas.respond(
        received.transaction_id, net.uas.make_response(received.transaction_id, 200), 2.0
    )
    net.uas.datagrams_to_send()
    run_timers(net.uas, 200.0)
    (timeout,) = only(net.events("uas"), AckTimedOut)
    retransmissions = net.uas.datagrams_to_send()
    assert len(retransmissions) == 10  # 0.5+1+2+4*7 = 31.5 < 32 s
    dialog = net.uas.dialog(timeout.dialog_id)
    assert dialog is not None and dialog.answer is None  # confirmed; the app sends BYE


# --- CANCEL --------------------------------------------------------------------------------------


def test_cancel_before_answer(network) -> None:
    net = network
    tid = net.uac.send_request(invite(), TO_UAS, 0.0)
    net.transfer(0.0)
    (received,) = only(net.events("uas"), RequestReceived)
    net.events("uac")
    cancel_tid = net.uac.cancel(tid, 0.3)
    assert cancel_tid is not None
    net.transfer(0.3)
    (cancelled,) = net.events("uas")
    assert isinstance(cancelled, CancelReceived)
    assert cancelled.transaction_id == received.transaction_id
    statuses = {(e.response.cseq.method, e.response.status) for e in net.events("uac")}
    assert statuses == {("CANCEL", 200), ("INVITE", 487)}
    acks = [d for sender, d in net.log if sender == "uac" and d.startswith(b"ACK")]
    assert len(acks) == 1
    ack = parse_message(acks[0])
    assert ack.top_via.branch == received.request.top_via.branch  # non-2xx ACK: same branch
    with pytest.raises(SipStateError):
        net.uas.respond(
            received.transaction_id, net.uas.make_response(received.transaction_id, 200)
        )
    # The INVITE server transaction absorbed the ACK and ends after Timer I.
    run_timers(net.uas, 100.0)
    assert only(net.events("uas"), TransactionTimedOut) == []
    assert net.uas.next_timer() is None


def test_cancel_waits_for_provisional_response(network) -> None:
    net = network
    net.drop = lambda sender, data: True
    tid = net.uac.send_request(invite(), TO_UAS, 0.0)
    net.transfer(0.0)
    assert net.uac.cancel(tid, 0.1) is None  # §9.1: not before a provisional
    assert net.uac.datagrams_to_send() == []
    net.drop = lambda sender, data: False
    net.uac.handle_timer(0.5)  # Timer A resends the INVITE
    net.transfer(0.5)
    assert any(d.startswith(b"CANCEL") for s, d in net.log if s == "uac")
    assert len(only(net.events("uas"), CancelReceived)) == 1


def test_cancel_without_matching_invite_gets_481(network) -> None:
    net = network
    request = invite()
    cancel = Request(
        "CANCEL",
        request.uri,
        Headers(
            [
                ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKnothere"),
                ("From", request.headers.get("From") or ""),
                ("To", request.headers.get("To") or ""),
                ("Call-ID", "call-1"),
                ("CSeq", "1 CANCEL"),
            ]
        ),
    )
    net.uas.receive_datagram(bytes(cancel), UAC_ADDR, 0.0)
    ((data, addr),) = net.uas.datagrams_to_send()
    response = parse_message(data)
    assert (response.status, response.reason, addr) == (
        481,
        "Call/Transaction Does Not Exist",
        UAC_ADDR,
    )
    assert net.events("uas") == []


# --- UAS core checks -----------------------------------------------------------------------------


def test_merged_request_gets_482(network) -> None:
    net = network
    net.uac.send_request(invite(), TO_UAS, 0.0)
    ((data, _),) = net.uac.datagrams_to_send()
    net.uas.receive_datagram(data, UAC_ADDR, 0.0)
    forked = data.replace(b"branch=z9hG4bKc1", b"branch=z9hG4bKfork2")
    assert forked != data
    net.uas.receive_datagram(forked, ("127.0.0.1", 5080), 0.1)
    assert len(only(net.events("uas"), RequestReceived)) == 1
    statuses = [parse_message(d).status for d, _ in net.uas.datagrams_to_send()]
    assert statuses == [100, 482]


def test_bye_in_dialog_gets_200_and_ends_dialogs(network) -> None:
    net = network
    uac_dialog, uas_dialog = establish(net)
    bye_tid = net.uac.send_in_dialog(uac_dialog, "BYE", 5.0)
    net.transfer(5.0)
    (bye,) = net.events("uas")
    assert isinstance(bye, RequestReceived)
    assert bye.request.method == "BYE" and bye.dialog_id == uas_dialog
    assert bye.request.cseq.number == 2
    net.uas.respond(bye.transaction_id, net.uas.make_response(bye.transaction_id, 200), 5.0)
    net.transfer(5.0)
    (done,) = net.events("uac")
    assert done.transaction_id == bye_tid and done.response.status == 200
    assert done.dialog_id == uac_dialog
    assert net.uac.dialog(uac_dialog) is None and net.uas.dialog(uas_dialog) is None


def test_bye_for_unknown_dialog_gets_481(network) -> None:
    net = network
    uac_dialog, uas_dialog = establish(net)
    dialog = net.uac.dialog(uac_dialog)
    assert dialog is not None
    dialog.remote_tag = "no-such-tag"  # the UAS has no dialog with this tag
    net.uac._dialogs[dialog.id] = dialog  # re-key under the altered id
    net.uac.send_in_dialog(dialog.id, "BYE", 1.0)
    net.transfer(1.0)
    (response,) = net.events("uac")
    assert response.response.status == 481
    assert net.events("uas") == []
    assert net.uac.dialog(dialog.id) is None  # §12.2.1.2: 481 ends the dialog
    assert net.uas.dialog(uas_dialog) is not None


def test_out_of_order_cseq_gets_500(network) -> None:
    net = network
    uac_dialog, _uas_dialog = establish(net)
    dialog = net.uac.dialog(uac_dialog)
    assert dialog is not None
    net.uac.send_in_dialog(uac_dialog, "INFO", 1.0)  # CSeq 2
    net.transfer(1.0)
    (info,) = net.events("uas")
    net.uas.respond(info.transaction_id, net.uas.make_response(info.transaction_id, 200), 1.0)
    dialog.local_cseq = 0  # next request goes out with CSeq 1 < 2
    net.uac.send_in_dialog(uac_dialog, "INFO", 2.0)
    net.transfer(2.0)
    statuses = [e.response.status for e in only(net.events("uac"), ResponseReceived)]
    assert statuses == [200, 500]
    assert net.events("uas") == []


def test_reinvite_while_ack_pending_gets_500_with_retry_after(network) -> None:
    net = network
    net.drop = lambda sender, data: sender == "uac" and data.startswith(b"ACK")
    uac_dialog = establish_without_ack(net)
    net.uac.send_in_dialog(uac_dialog, "INVITE", 1.0, body=SDP, content_type="application/sdp")
    net.transfer(1.0)
    responses = [e.response for e in only(net.events("uac"), ResponseReceived)]
    assert responses[-1].status == 500 and responses[-1].headers.get("Retry-After") == "2"


def establish_without_ack(net) -> str:
    net.uac.send_request(invite(), TO_UAS, 0.0)
    net.transfer(0.0)
    (received,) = only(net.events("uas"), RequestReceived)
    net.uas.respond(
        received.transaction_id, net.uas.make_response(received.transaction_id, 200), 0.0
    )
    net.transfer(0.0)
    (ok,) = [e for e in only(net.events("uac"), ResponseReceived) if e.response.status == 200]
    return ok.dialog_id


def test_unsupported_require_gets_420(network, load) -> None:
    net = network
    net.uas.receive_datagram(load("bext01"), UAC_ADDR, 0.0)
    ((data, _),) = net.uas.datagrams_to_send()
    response = parse_message(data)
    assert response.status == 420
    assert response.unsupported == ("nothingSupportsThis", "nothingSupportsThisEither")
    assert response.to.tag is not None
    assert net.events("uas") == []


def test_siprec_require_is_supported(network) -> None:
    net = network
    net.uac.send_request(invite(extra=(("Require", "siprec"),)), TO_UAS, 0.0)
    net.transfer(0.0)
    assert len(only(net.events("uas"), RequestReceived)) == 1


# --- session timers ------------------------------------------------------------------------------


def test_session_interval_too_small_gets_422(network) -> None:
    net = network
    net.uac.send_request(invite(extra=(("Session-Expires", "60"),)), TO_UAS, 0.0)
    net.transfer(0.0)
    (response,) = only(net.events("uac"), ResponseReceived)
    assert response.response.status == 422
    assert response.response.min_se is not None and response.response.min_se.delta == 90
    assert net.events("uas") == []


def test_session_timer_expiry_event(network) -> None:
    net = network
    extra = (("Supported", "timer"), ("Session-Expires", "120;refresher=uac"))
    uac_dialog, uas_dialog = establish(net, 10.0, extra=extra)
    ok = parse_message(next(d for s, d in net.log if s == "uas" and d.startswith(b"SIP/2.0 200")))
    assert str(ok.session_expires) == "120;refresher=uac"
    assert "timer" in ok.require  # refresher uac => Require: timer (RFC 4028 §9)
    # The UAC is the refresher: half the interval later it is told to refresh.
    run_timers(net.uac, 70.0)
    assert net.events("uac") == [SessionRefreshDue(uac_dialog, "call-1")]
    # The UAS, not refreshing, gives up at 120 - min(32, 120/3) = 88 s after the 2xx.
    timer = net.uas.dialog(uas_dialog).session_timer
    assert timer is not None and timer.next_timer() == pytest.approx(98.0)
    run_timers(net.uas, 97.9)
    assert net.events("uas") == []
    run_timers(net.uas, 98.0)
    assert net.events("uas") == [SessionExpired(uas_dialog, "call-1")]


def test_session_refresh_postpones_expiry(network) -> None:
    net = network
    extra = (("Supported", "timer"), ("Session-Expires", "120;refresher=uac"))
    uac_dialog, uas_dialog = establish(net, 0.0, extra=extra)
    run_timers(net.uac, 60.0)
    assert net.events("uac") == [SessionRefreshDue(uac_dialog, "call-1")]
    net.uac.send_in_dialog(uac_dialog, "UPDATE", 60.0)
    net.transfer(60.0)
    (update,) = net.events("uas")
    assert update.request.session_expires is not None
    assert update.request.session_expires.refresher == "uac"
    net.uas.respond(update.transaction_id, net.uas.make_response(update.transaction_id, 200), 60.0)
    net.transfer(60.0)
    timer = net.uas.dialog(uas_dialog).session_timer
    assert timer is not None and timer.next_timer() == pytest.approx(60.0 + 88.0)
    run_timers(net.uas, 140.0)
    assert net.events("uas") == []


def test_uas_requests_session_timer_when_supported(network) -> None:
    net = network
    establish(net, extra=(("Supported", "timer"),))
    ok = parse_message(next(d for s, d in net.log if s == "uas" and d.startswith(b"SIP/2.0 200")))
    assert str(ok.session_expires) == "1800;refresher=uac"


def test_no_session_timer_without_support(make_network: Callable) -> None:
    net = make_network(session_timer=None)
    establish(net, extra=(("Session-Expires", "30"),))  # no policy: not even 422
    ok = parse_message(next(d for s, d in net.log if s == "uas" and d.startswith(b"SIP/2.0 200")))
    assert ok.session_expires is None
    assert isinstance(net.uas.config.session_timer, type(None))
    assert SessionTimerPolicy().min_se == 90


# --- non-INVITE transactions ---------------------------------------------------------------------


def test_non_invite_client_timers_e_and_f(network) -> None:
    net = network
    tid = net.uac.send_request(options(), TO_UAS, 0.0)
    net.uac.datagrams_to_send()
    fired = run_timers(net.uac, 40.0)
    assert fired[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]  # E doubles to T2 = 4 s
    assert fired[-1] == 32.0  # F = 64*T1
    assert len(net.uac.datagrams_to_send()) == len(fired) - 1
    assert net.events("uac") == [TransactionTimedOut(tid, "OPTIONS", "opt-1")]


def test_non_invite_timer_e_after_provisional_is_t2(network) -> None:
    net = network
    net.uac.send_request(options(), TO_UAS, 0.0)
    net.transfer(0.0)
    (received,) = net.events("uas")
    net.uas.respond(
        received.transaction_id, net.uas.make_response(received.transaction_id, 183), 0.1
    )
    net.transfer(0.1)
    net.drop = lambda sender, data: True
    fired = run_timers(net.uac, 20.0)
    assert fired[:3] == [0.5, 4.5, 8.5]  # once Proceeding, every T2


def test_non_invite_timers_k_and_j(network) -> None:
    net = network
    tid = net.uac.send_request(options(), TO_UAS, 0.0)
    ((data, _),) = net.uac.datagrams_to_send()
    net.uas.receive_datagram(data, UAC_ADDR, 0.0)
    (received,) = net.events("uas")
    net.uas.respond(
        received.transaction_id, net.uas.make_response(received.transaction_id, 200), 0.0
    )
    ((ok, _),) = net.uas.datagrams_to_send()
    net.uac.receive_datagram(ok, UAS_ADDR, 0.0)
    assert [e.response.status for e in net.events("uac")] == [200]
    # Timer K (T4 = 5 s) absorbs a duplicate 200, then the transaction is gone.
    net.uac.receive_datagram(ok, UAS_ADDR, 1.0)
    assert net.events("uac") == []
    assert net.uac.next_timer() == 5.0
    run_timers(net.uac, 5.0)
    assert tid not in net.uac._client
    # Timer J (64*T1) answers a retransmitted request with the same 200 ...
    net.uas.receive_datagram(data, UAC_ADDR, 10.0)
    assert [d for d, _ in net.uas.datagrams_to_send()] == [ok]
    assert net.events("uas") == []
    run_timers(net.uas, 32.0)
    # ... and after it the same bytes are a new request.
    net.uas.receive_datagram(data, UAC_ADDR, 40.0)
    assert len(only(net.events("uas"), RequestReceived)) == 1


def test_non_2xx_final_retransmitted_by_timer_g_until_timer_h(network) -> None:
    net = network
    net.uac.send_request(invite(), TO_UAS, 0.0)
    net.transfer(0.0)
    (received,) = only(net.events("uas"), RequestReceived)
    net.uas.respond(
        received.transaction_id, net.uas.make_response(received.transaction_id, 486), 0.0
    )
    net.uas.datagrams_to_send()  # lost
    fired = run_timers(net.uas, 100.0)
    assert fired[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    assert fired[-1] == 32.0
    assert [parse_message(d).status for d, _ in net.uas.datagrams_to_send()] == [486] * (
        len(fired) - 1
    )
    (timeout,) = net.events("uas")
    assert timeout == TransactionTimedOut(received.transaction_id, "INVITE", "call-1")


# --- transport rules -----------------------------------------------------------------------------


def test_response_goes_to_received_and_rport(network) -> None:
    net = network
    request = bytes(invite()).replace(
        b"INVITE sip:srs@127.0.0.1:5060 SIP/2.0\r\n",
        b"INVITE sip:srs@127.0.0.1:5060 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.9:5999;branch=z9hG4bKnat;rport\r\n",
    )
    net.uas.receive_datagram(request, ("198.51.100.7", 40000), 0.0)
    (received,) = net.events("uas")
    assert str(received.request.top_via) == (
        "SIP/2.0/UDP 192.0.2.9:5999;branch=z9hG4bKnat;rport=40000;received=198.51.100.7"
    )
    ((_, addr),) = net.uas.datagrams_to_send()
    assert addr == ("198.51.100.7", 40000)


def test_response_without_rport_goes_to_received_and_sent_by_port(network) -> None:
    net = network
    request = bytes(invite()).replace(
        b"SIP/2.0\r\n", b"SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9:5999;branch=z9hG4bKnorport\r\n", 1
    )
    net.uas.receive_datagram(request, ("198.51.100.7", 40000), 0.0)
    ((_, addr),) = net.uas.datagrams_to_send()
    assert addr == ("198.51.100.7", 5999)


def test_malformed_request_gets_400_with_warning(network, load) -> None:
    net = network
    net.uas.receive_datagram(load("badinv01"), UAC_ADDR, 0.0)
    ((data, addr),) = net.uas.datagrams_to_send()
    assert addr == UAC_ADDR
    # The broken Via is echoed as §8.2.6 demands, so check the bytes.
    assert data.startswith(b"SIP/2.0 400 Bad Request\r\nVia: SIP/2.0/UDP 192.0.2.15;;,;,,\r\n")
    assert b'\r\nWarning: 399 127.0.0.1 "Via has an empty or invalid parameter"\r\n' in data
    assert b"\r\nCall-ID: badinv01.0ha0isndaksdjasdf3234nas\r\n" in data
    assert b"\r\nTo: sip:j.user@example.com;tag=s1\r\n" in data
    (failed,) = net.events("uas")
    assert failed == ParseFailed(
        "Via has an empty or invalid parameter", Peer("UDP", UAC_ADDR), 400, True, False
    )


@pytest.mark.parametrize(
    ("name", "start"),
    [
        ("badvers", b"SIP/2.0 505 Version Not Supported\r\n"),
        ("novelsc", b"SIP/2.0 416 Unsupported URI Scheme\r\n"),
        ("scalar02", b"SIP/2.0 400 Bad Request\r\n"),
        ("ltgtruri", b"SIP/2.0 400 Bad Request\r\n"),
    ],
)
def test_unusable_requests_get_their_status(network, load, name: str, start: bytes) -> None:
    net = network
    net.uas.receive_datagram(load(name), UAC_ADDR, 0.0)
    ((data, _),) = net.uas.datagrams_to_send()
    assert data.startswith(start)
    (failed,) = net.events("uas")
    assert failed.responded and data.count(b"\r\nWarning: 399 127.0.0.1 ") == 1


@pytest.mark.parametrize("name", ["bigcode", "scalarlg", "insuf"])
def test_unanswerable_input_is_dropped(network, load, name: str) -> None:
    net = network
    net.uas.receive_datagram(load(name), UAC_ADDR, 0.0)
    net.uas.receive_datagram(b"\x16\x03\x01 not sip at all", UAC_ADDR, 0.0)
    assert net.uas.datagrams_to_send() == []
    failures = net.events("uas")
    assert [type(e) for e in failures] == [ParseFailed, ParseFailed]
    assert not any(e.responded for e in failures)


def test_response_matching_no_transaction_is_dropped(network, load) -> None:
    net = network
    net.uac.receive_datagram(load("bcast"), UAS_ADDR, 0.0)
    assert net.events("uac") == [] and net.uac.datagrams_to_send() == []


def test_udp_keepalive_is_reported(network) -> None:
    net = network
    net.uas.receive_datagram(b"\r\n\r\n", UAC_ADDR, 0.0)
    assert net.events("uas") == [KeepAlive(Peer("UDP", UAC_ADDR))]


def test_rfc2543_client_matched_without_branch(network, load) -> None:
    net = network
    data = load("inv2543")
    net.uas.receive_datagram(data, UAC_ADDR, 0.0)
    net.uas.receive_datagram(data, UAC_ADDR, 0.5)
    (received,) = net.events("uas")
    assert received.transaction_id.startswith("2543|")
    net.uas.respond(
        received.transaction_id, net.uas.make_response(received.transaction_id, 603), 1.0
    )
    sent = [parse_message(d) for d, _ in net.uas.datagrams_to_send()]
    assert [r.status for r in sent] == [100, 100, 603]
    ack = (
        b"ACK sip:UserB@example.com SIP/2.0\r\nVia: SIP/2.0/UDP iftgw.example.com\r\n"
        b"From: <sip:+13035551111@ift.client.example.net;user=phone>\r\n"
        b"To: " + (sent[2].headers.get("To") or "").encode() + b"\r\n"
        b"Call-ID: inv2543.1717@ift.client.example.com\r\nCSeq: 56 ACK\r\nContent-Length: 0\r\n\r\n"
    )
    net.uas.receive_datagram(ack, UAC_ADDR, 1.1)
    fired = run_timers(net.uas, 100.0)
    assert fired == [6.1]  # ACK matched: Confirmed, then Timer I (T4); no G, no H
    assert net.uas.datagrams_to_send() == []
    assert net.events("uas") == []


# --- TCP -----------------------------------------------------------------------------------------


def test_tcp_request_fed_byte_by_byte(network) -> None:
    net = network
    net.uas.connection_made(7, UAC_ADDR, transport="TCP")
    request = bytes(invite()).replace(
        b"SIP/2.0\r\n", b"SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKtcp\r\n", 1
    )
    for i in range(len(request)):
        net.uas.receive_stream_data(7, request[i : i + 1], 0.0)
    (received,) = net.events("uas")
    assert received.source == Peer("TCP", UAC_ADDR, 7)
    ((peer, data),) = net.uas.stream_data_to_send()
    assert peer == Peer("TCP", UAC_ADDR, 7) and data.startswith(b"SIP/2.0 100 Trying\r\n")
    net.uas.respond(
        received.transaction_id, net.uas.make_response(received.transaction_id, 404), 0.1
    )
    ((peer, data),) = net.uas.stream_data_to_send()
    assert data.startswith(b"SIP/2.0 404 Not Found\r\n")
    # Reliable transport: no Timer G, only H waits for the ACK.
    assert run_timers(net.uas, 100.0) == [32.1]
    assert net.uas.stream_data_to_send() == []


def test_tcp_pipelined_requests_and_keepalive(network) -> None:
    net = network
    net.uas.connection_made(3, UAC_ADDR, transport="TLS")
    one = bytes(options("p-1")).replace(
        b"SIP/2.0\r\n", b"SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bKp1\r\n", 1
    )
    two = bytes(options("p-2")).replace(
        b"SIP/2.0\r\n", b"SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bKp2\r\n", 1
    )
    net.uas.receive_stream_data(3, one + b"\r\n\r\n" + two, 0.0)
    events = net.events("uas")
    assert [type(e) for e in events] == [RequestReceived, KeepAlive, RequestReceived]
    assert [e.request.call_id for e in only(events, RequestReceived)] == ["p-1", "p-2"]
    assert net.uas.stream_data_to_send() == [(Peer("TLS", UAC_ADDR, 3), b"\r\n")]  # pong
    # Reliable transport: Timer J is zero, the transaction ends with its answer.
    first = only(events, RequestReceived)[0]
    net.uas.respond(first.transaction_id, net.uas.make_response(first.transaction_id, 200), 0.0)
    assert first.transaction_id not in net.uas._server


def test_tcp_framing_error_closes_connection(network) -> None:
    net = network
    net.uas.connection_made(1, UAC_ADDR)
    net.uas.receive_stream_data(1, b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n", 0.0)
    (failed,) = net.events("uas")
    assert failed == ParseFailed(
        "Content-Length is required on stream transports",
        Peer("TCP", UAC_ADDR, 1),
        400,
        False,
        True,
    )
    with pytest.raises(SipStateError):
        net.uas.receive_stream_data(1, b"more", 0.0)


def test_stream_send_over_new_connection_target(network) -> None:
    net = network
    net.uac.send_request(options(), Peer("TCP", UAS_ADDR), 0.0)
    ((peer, data),) = net.uac.stream_data_to_send()
    assert peer == Peer("TCP", UAS_ADDR) and peer.connection_id is None
    assert b"Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKc1;rport\r\n" in data
    assert run_timers(net.uac, 31.0) == []  # no Timer E over TCP


# --- API misuse ----------------------------------------------------------------------------------


def test_api_misuse_raises_state_errors(network) -> None:
    net = network
    with pytest.raises(SipStateError):
        net.uas.respond("nope", Response(200, "OK"))
    with pytest.raises(SipStateError):
        net.uac.send_ack("no-dialog")
    with pytest.raises(SipStateError):
        net.uac.cancel("nope")
    ack = Request("ACK", SipUri("127.0.0.1"), invite().headers)
    with pytest.raises(SipStateError):
        net.uac.send_request(ack, TO_UAS)
    with pytest.raises(SipStateError):
        net.uas.receive_stream_data(99, b"x", 0.0)
    with pytest.raises(ValueError, match=r"stream transport"):
        net.uas.connection_made(1, UAC_ADDR, transport="UDP")


def test_contact_for_each_transport() -> None:
    endpoint = SipEndpoint(EndpointConfig(host="::1", port=5060, tls_port=5061))
    assert str(endpoint.contact()) == "<sip:[::1]:5060>"
    assert str(endpoint.contact("TCP")) == "<sip:[::1]:5060;transport=tcp>"
    assert str(endpoint.contact("TLS")) == "<sips:[::1]:5061;transport=tls>"


def test_real_siprec_invite_is_accepted(network) -> None:
    net = network
    data = (DATA / "opensips-3.6-siprec-invite.txt").read_bytes()
    net.uas.receive_datagram(data, ("127.0.0.1", 5060), 0.0)
    (received,) = net.events("uas")
    assert isinstance(received, RequestReceived) and received.request.require == ("siprec",)
    ok = net.uas.make_response(
        received.transaction_id, 200, body=SDP, content_type="application/sdp"
    )
    net.uas.respond(received.transaction_id, ok, 0.1)
    (dialog_id,) = net.uas.dialogs
    dialog = net.uas.dialog(dialog_id)
    assert dialog is not None
    assert dialog.remote_target == SipUri("127.0.0.1", port=5060)
    assert dialog.next_hop() == Peer("UDP", ("127.0.0.1", 5060))
    sent = [parse_message(d) for d, _ in net.uas.datagrams_to_send()]
    assert [r.status for r in sent] == [100, 200]
    assert sent[1].headers.get("Contact") == "<sip:127.0.0.1:5060>"
