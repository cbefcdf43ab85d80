"""The four transaction state machines, driven directly with fake time."""

from __future__ import annotations

import pytest

from sipscribe.sip.errors import SipStateError
from sipscribe.sip.events import Peer, TransactionTimedOut
from sipscribe.sip.message import Request, Response, make_response, parse_message
from sipscribe.sip.timers import TimerConfig
from sipscribe.sip.transaction import (
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    TransactionState,
    client_transaction_key,
    make_ack_for_non2xx,
    make_cancel,
    merge_key,
    server_transaction_key,
)

UDP = Peer("UDP", ("192.0.2.1", 5060))
TCP = Peer("TCP", ("192.0.2.1", 5060), 1)
TIMERS = TimerConfig()


def request(
    method: str = "INVITE", via: str = "SIP/2.0/UDP pc33.example.com;branch=z9hG4bKnashds8"
) -> Request:
    data = (
        f"{method} sip:bob@biloxi.example.com SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Route: <sip:proxy.example.com;lr>\r\n"
        "Max-Forwards: 70\r\n"
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        "To: Bob <sip:bob@biloxi.example.com>\r\n"
        "Call-ID: a84b4c76e66710\r\n"
        f"CSeq: 314159 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


INVITE = request()


def response(status: int, req: Request = INVITE) -> Response:
    return make_response(req, status, to_tag="b1" if status > 100 else None)


def fire_all(tx, until: float) -> list[float]:
    fired = []
    while (deadline := tx.next_timer()) is not None and deadline <= until:
        tx.handle_timer(deadline)
        fired.append(deadline)
    return fired


# --- keys and messages ---------------------------------------------------------------------------


def test_server_keys() -> None:
    assert server_transaction_key(INVITE) == "z9hG4bKnashds8|pc33.example.com:5060|INVITE"
    ack = request("ACK")
    assert server_transaction_key(ack) == server_transaction_key(INVITE)
    cancel = make_cancel(INVITE)
    assert server_transaction_key(cancel) == "z9hG4bKnashds8|pc33.example.com:5060|CANCEL"
    assert server_transaction_key(cancel, method="INVITE") == server_transaction_key(INVITE)


def test_rfc2543_keys_ignore_received_and_rport() -> None:
    old = request(via="SIP/2.0/UDP pc33.example.com;rport")
    stamped = request(via="SIP/2.0/UDP pc33.example.com;rport=5066;received=10.0.0.1")
    key = server_transaction_key(old)
    assert key.startswith("2543|sip:bob@biloxi.example.com|1928301774|a84b4c76e66710|314159|")
    assert key == server_transaction_key(stamped)
    assert server_transaction_key(request("ACK", "SIP/2.0/UDP pc33.example.com;rport")) == key
    bare_cookie = request(via="SIP/2.0/UDP pc33.example.com;branch=z9hG4bK")
    assert server_transaction_key(bare_cookie).startswith("2543|")


def test_client_key_and_merge_key() -> None:
    assert client_transaction_key(response(180)) == "z9hG4bKnashds8|INVITE"
    assert merge_key(INVITE) == ("1928301774", "a84b4c76e66710", 314159, "INVITE")


def test_ack_for_non_2xx_per_17_1_1_3() -> None:
    ack = make_ack_for_non2xx(INVITE, response(486))
    assert bytes(ack) == (
        b"ACK sip:bob@biloxi.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bKnashds8\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>;tag=b1\r\n"
        b"Call-ID: a84b4c76e66710\r\n"
        b"CSeq: 314159 ACK\r\n"
        b"Route: <sip:proxy.example.com;lr>\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    cancel = make_cancel(INVITE)
    assert cancel.method == "CANCEL" and cancel.uri == INVITE.uri
    assert cancel.to == INVITE.to and cancel.cseq.number == 314159
    assert cancel.top_via == INVITE.top_via and cancel.route == INVITE.route


# --- INVITE server -------------------------------------------------------------------------------


def test_invite_server_proceeding_resends_last_provisional() -> None:
    tx = InviteServerTransaction("t", INVITE, UDP, TIMERS, 0.0)
    assert tx.receive_request(INVITE, 0.1) is False
    assert tx.messages_to_send() == []  # nothing sent yet: nothing to repeat
    tx.send_response(response(180), 0.2)
    tx.receive_request(INVITE, 0.3)
    assert [m.status for m in tx.messages_to_send()] == [180, 180]
    assert tx.next_timer() is None  # no timer while Proceeding


def test_invite_server_2xx_accepted_state() -> None:
    tx = InviteServerTransaction("t", INVITE, UDP, TIMERS, 0.0)
    tx.send_response(response(200), 1.0)
    assert tx.state is TransactionState.ACCEPTED and tx.final_sent
    tx.messages_to_send()
    assert tx.receive_request(INVITE, 1.5) is False  # absorbed (RFC 6026)
    assert tx.messages_to_send() == []
    assert tx.receive_request(request("ACK"), 1.6) is True  # passed to the TU
    tx.send_response(response(200), 2.0)  # the TU's retransmission goes out
    assert len(tx.messages_to_send()) == 1
    assert fire_all(tx, 100.0) == [33.0]  # Timer L
    assert tx.terminated and tx.next_event() is None


def test_invite_server_non_2xx_timer_g_then_ack() -> None:
    tx = InviteServerTransaction("t", INVITE, UDP, TIMERS, 0.0)
    tx.send_response(response(486), 0.0)
    tx.messages_to_send()
    assert fire_all(tx, 8.0) == [0.5, 1.5, 3.5, 7.5]
    assert [m.status for m in tx.messages_to_send()] == [486] * 4
    tx.receive_request(request("ACK"), 8.0)
    assert tx.state is TransactionState.CONFIRMED
    tx.receive_request(request("ACK"), 9.0)  # retransmitted ACK absorbed
    assert tx.messages_to_send() == []
    assert fire_all(tx, 100.0) == [13.0]  # Timer I = T4
    assert tx.terminated and tx.next_event() is None
    with pytest.raises(SipStateError, match=r"cannot send 200 in state terminated"):
        tx.send_response(response(200), 20.0)


def test_invite_server_timer_h_reports_missing_ack() -> None:
    tx = InviteServerTransaction("t", INVITE, TCP, TIMERS, 0.0)
    tx.send_response(response(500), 0.0)
    assert fire_all(tx, 100.0) == [32.0]  # reliable: no Timer G
    assert tx.next_event() == TransactionTimedOut("t", "INVITE", "a84b4c76e66710")


def test_invite_server_reliable_ack_terminates_at_once() -> None:
    tx = InviteServerTransaction("t", INVITE, TCP, TIMERS, 0.0)
    tx.send_response(response(404), 0.0)
    tx.receive_request(request("ACK"), 0.1)
    assert tx.terminated


# --- non-INVITE server ---------------------------------------------------------------------------


def test_non_invite_server() -> None:
    bye = request("BYE")
    tx = NonInviteServerTransaction("t", bye, UDP, TIMERS, 0.0)
    tx.receive_request(bye, 0.1)
    assert tx.messages_to_send() == []  # Trying: absorbed silently
    tx.send_response(response(100, bye), 0.2)
    assert tx.state is TransactionState.PROCEEDING
    tx.receive_request(bye, 0.3)
    tx.send_response(response(200, bye), 0.4)
    tx.receive_request(bye, 0.5)
    assert [m.status for m in tx.messages_to_send()] == [100, 100, 200, 200]
    with pytest.raises(SipStateError, match=r"cannot send 200 in state completed"):
        tx.send_response(response(200, bye), 0.6)
    assert fire_all(tx, 100.0) == [32.4]  # Timer J
    assert tx.terminated


def test_non_invite_server_reliable_completes_immediately() -> None:
    tx = NonInviteServerTransaction("t", request("BYE"), TCP, TIMERS, 0.0)
    tx.send_response(response(200, request("BYE")), 0.0)
    assert tx.terminated and tx.next_timer() is None


# --- INVITE client -------------------------------------------------------------------------------


def test_invite_client_provisional_stops_a_and_b() -> None:
    tx = InviteClientTransaction("c", INVITE, UDP, TIMERS, 0.0)
    assert tx.messages_to_send() == [INVITE]
    assert tx.receive_response(response(100), 0.2) is True
    assert tx.state is TransactionState.PROCEEDING and tx.next_timer() is None
    assert tx.receive_response(response(180), 0.3) is True


def test_invite_client_2xx_accepted_passes_every_2xx() -> None:
    tx = InviteClientTransaction("c", INVITE, UDP, TIMERS, 0.0)
    assert tx.receive_response(response(200), 1.0) is True
    assert tx.state is TransactionState.ACCEPTED
    assert tx.receive_response(response(200), 1.5) is True  # retransmission: TU re-ACKs
    assert tx.receive_response(response(180), 1.6) is False
    assert tx.messages_to_send() == [INVITE]  # no ACK from the transaction for 2xx
    assert fire_all(tx, 100.0) == [33.0]  # Timer M
    assert tx.terminated


def test_invite_client_non_2xx_acks_and_absorbs() -> None:
    tx = InviteClientTransaction("c", INVITE, UDP, TIMERS, 0.0)
    tx.messages_to_send()
    assert tx.receive_response(response(486), 0.1) is True
    (ack,) = tx.messages_to_send()
    assert ack.method == "ACK" and ack.to.tag == "b1"
    assert tx.receive_response(response(486), 0.6) is False
    assert tx.messages_to_send() == [ack]
    assert fire_all(tx, 100.0) == [32.1]  # Timer D
    reliable = InviteClientTransaction("c2", INVITE, TCP, TIMERS, 0.0)
    reliable.receive_response(response(603), 0.1)
    assert reliable.terminated


def test_invite_client_cancel_timer() -> None:
    tx = InviteClientTransaction("c", INVITE, UDP, TIMERS, 0.0)
    tx.receive_response(response(180), 0.1)
    tx.cancel_started(1.0)
    assert fire_all(tx, 100.0) == [33.0]
    assert tx.next_event() == TransactionTimedOut("c", "INVITE", "a84b4c76e66710")
    answered = InviteClientTransaction("c", INVITE, UDP, TIMERS, 0.0)
    answered.receive_response(response(180), 0.1)
    answered.cancel_started(1.0)
    answered.receive_response(response(487), 1.2)
    assert fire_all(answered, 100.0) == [33.2]  # only Timer D is left
    assert answered.next_event() is None


# --- non-INVITE client ---------------------------------------------------------------------------


def test_non_invite_client_timers() -> None:
    options = request("OPTIONS")
    tx = NonInviteClientTransaction("c", options, UDP, TIMERS, 0.0)
    assert fire_all(tx, 10.0) == [0.5, 1.5, 3.5, 7.5]
    assert len(tx.messages_to_send()) == 5
    assert tx.receive_response(response(200, options), 10.0) is True
    assert tx.receive_response(response(200, options), 10.1) is False
    assert fire_all(tx, 100.0) == [15.0]  # Timer K
    assert tx.terminated and tx.next_event() is None


def test_non_invite_client_reliable_has_only_timer_f() -> None:
    tx = NonInviteClientTransaction("c", request("OPTIONS"), TCP, TIMERS, 0.0)
    assert fire_all(tx, 100.0) == [32.0]
    assert tx.next_event() == TransactionTimedOut("c", "OPTIONS", "a84b4c76e66710")
    assert len(tx.messages_to_send()) == 1
    repr(tx)
