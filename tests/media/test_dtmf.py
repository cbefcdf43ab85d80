from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.media.dtmf import (
    DtmfError,
    DtmfEvent,
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    digit_to_event,
    encode_dtmf_events,
    parse_telephone_events,
)
from sipscribe.media.rtp import RtpPacket

PT = 101


def te(event: int, duration: int, *, end: bool = False, volume: int = 10) -> bytes:
    return bytes(TelephoneEvent(event, end, volume, duration))


def pkt(payload: bytes, ts: int, seq: int, *, ssrc: int = 7, marker: bool = False) -> RtpPacket:
    return RtpPacket(
        payload_type=PT,
        sequence_number=seq,
        timestamp=ts,
        ssrc=ssrc,
        marker=marker,
        payload=payload,
    )


def test_wire_format() -> None:
    assert te(5, 800, end=True, volume=10) == bytes([5, 0x8A, 0x03, 0x20])
    assert parse_telephone_events(bytes([11, 0x0A, 0x00, 0xA0])) == [
        TelephoneEvent(11, False, 10, 160)
    ]
    assert TelephoneEvent(11, False, 10, 160).digit == "#"
    assert TelephoneEvent(40, False, 10, 160).digit is None


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "telephone-event payload length 0 is not a multiple of 4"),
        (b"\x01\x02\x03", "telephone-event payload length 3 is not a multiple of 4"),
    ],
)
def test_parse_errors(payload: bytes, message: str) -> None:
    with pytest.raises(DtmfError) as info:
        parse_telephone_events(payload)
    assert str(info.value) == message


def test_digit_mapping() -> None:
    assert [digit_to_event(d) for d in "0123456789*#ABCD"] == list(range(16))
    assert digit_to_event("a") == 12
    assert digit_to_event("!") == 16
    with pytest.raises(DtmfError, match="DTMF digit 'E' is not one of 0-9 \\* # A-D !"):
        digit_to_event("E")
    with pytest.raises(DtmfError):
        digit_to_event("12")


@pytest.mark.parametrize(("event", "digit"), list(enumerate("0123456789*#ABCD!")))
def test_every_digit_is_received(event: int, digit: str) -> None:
    rx = DtmfReceiver()
    (ev,) = rx.receive(pkt(te(event, 800, end=True), 1000, 1), 0)
    assert ev.digit == digit


def test_one_event_despite_updates_and_three_end_packets() -> None:
    rx = DtmfReceiver(8000)
    out: list[DtmfEvent] = []
    seq = 10
    for i, duration in enumerate([160, 320, 480, 640]):
        out += rx.receive(pkt(te(5, duration), 16_000, seq, marker=i == 0), 1000 + i * 20)
        seq += 1
    assert out == []
    for i in range(3):
        out += rx.receive(pkt(te(5, 800, end=True), 16_000, seq), 1080 + i * 20)
        seq += 1
    assert out == [
        DtmfEvent(
            digit="5",
            ssrc=7,
            start_timestamp=16_000,
            start_ms=1000 - 20,  # the first packet already said 20 ms had passed
            duration_ms=100.0,
            volume=10,
            ended=True,
        )
    ]
    assert rx.poll(10_000) == [] and rx.flush() == []
    assert rx.events == 1


def test_lost_start_packet_and_lost_first_end_packet() -> None:
    rx = DtmfReceiver()
    out = []
    out += rx.receive(pkt(te(1, 480), 500, 3), 60)  # start and first updates lost
    out += rx.receive(pkt(te(1, 960, end=True), 500, 6), 120)  # 2nd of the 3 end packets
    out += rx.receive(pkt(te(1, 960, end=True), 500, 7), 140)
    assert [(e.digit, e.duration_ms, e.start_ms, e.ended) for e in out] == [("1", 120.0, 0.0, True)]


def test_event_without_end_packet_times_out() -> None:
    rx = DtmfReceiver(timeout_ms=500)
    assert rx.receive(pkt(te(9, 160), 0, 1), 0) == []
    assert rx.receive(pkt(te(9, 320), 0, 2), 20) == []
    assert rx.next_timer() == 520
    assert rx.poll(519) == []
    (ev,) = rx.poll(520)
    assert (ev.digit, ev.duration_ms, ev.ended) == ("9", 40.0, False)
    # a straggling end packet of that event after the timeout is not a second event
    assert rx.receive(pkt(te(9, 800, end=True), 0, 9), 600) == []


def test_next_event_ends_the_previous_one_whose_end_was_lost() -> None:
    rx = DtmfReceiver()
    rx.receive(pkt(te(2, 160), 0, 1), 0)
    out = rx.receive(pkt(te(3, 160), 2000, 5), 300)
    assert [(e.digit, e.ended) for e in out] == [("2", False)]
    (ev,) = rx.receive(pkt(te(3, 400, end=True), 2000, 6), 330)
    assert (ev.digit, ev.ended) == ("3", True)


def test_same_digit_twice_is_two_events() -> None:
    rx = DtmfReceiver()
    out = []
    for start, seq in ((0, 1), (1600, 10)):
        for i in range(3):
            out += rx.receive(pkt(te(4, 800, end=True), start, seq + i), start / 8 + i * 20)
    assert [e.digit for e in out] == ["4", "4"]


def test_reordered_updates_keep_the_longest_duration() -> None:
    rx = DtmfReceiver()
    rx.receive(pkt(te(0, 480), 0, 3), 60)
    rx.receive(pkt(te(0, 160), 0, 1), 61)
    (ev,) = rx.receive(pkt(te(0, 640, end=True), 0, 4), 80)
    assert ev.duration_ms == 80.0


def test_long_event_segments_are_joined() -> None:
    rx = DtmfReceiver()
    rx.receive(pkt(te(8, 0xFFFF), 0, 1), 0)  # first segment reached the field's maximum
    (ev,) = rx.receive(pkt(te(8, 8000, end=True), 0xFFFF, 2), 9200)
    assert ev.duration_ms == (0xFFFF + 8000) / 8
    assert ev.start_timestamp == 0


def test_packed_events_in_one_packet() -> None:
    rx = DtmfReceiver()
    payload = te(1, 800, end=True) + te(2, 400, end=True)
    out = rx.receive(pkt(payload, 1000, 1), 0)
    assert [(e.digit, e.start_timestamp, e.duration_ms) for e in out] == [
        ("1", 1000, 100.0),
        ("2", 1800, 50.0),
    ]


def test_non_dtmf_events_are_ignored() -> None:
    rx = DtmfReceiver()
    assert rx.receive(pkt(te(70, 800, end=True), 0, 1), 0) == []


def test_sources_are_tracked_separately() -> None:
    rx = DtmfReceiver()
    rx.receive(pkt(te(1, 160), 0, 1, ssrc=1), 0)
    rx.receive(pkt(te(2, 160), 0, 1, ssrc=2), 0)
    out = rx.receive(pkt(te(1, 320, end=True), 0, 2, ssrc=1), 20)
    out += rx.receive(pkt(te(2, 320, end=True), 0, 2, ssrc=2), 20)
    assert sorted((e.ssrc, e.digit) for e in out) == [(1, "1"), (2, "2")]


def test_encode_sequence() -> None:
    payloads = encode_dtmf_events("1#", duration_ms=100, pause_ms=50, packet_ms=20)
    first = payloads[:7]
    assert [p.marker for p in first] == [True] + [False] * 6
    assert {p.timestamp_offset for p in first} == {0}
    assert [parse_telephone_events(p.payload)[0] for p in first] == [
        TelephoneEvent(1, False, 10, 160),
        TelephoneEvent(1, False, 10, 320),
        TelephoneEvent(1, False, 10, 480),
        TelephoneEvent(1, False, 10, 640),
        TelephoneEvent(1, True, 10, 800),
        TelephoneEvent(1, True, 10, 800),
        TelephoneEvent(1, True, 10, 800),
    ]
    assert [p.send_ms for p in first] == [20, 40, 60, 80, 100, 120, 140]
    assert payloads[7].timestamp_offset == 150 * 8 and payloads[7].marker
    with pytest.raises(DtmfError, match="does not fit the 16-bit duration field"):
        encode_dtmf_events("1", duration_ms=9000)


def test_sender_to_receiver_round_trip() -> None:
    sender = DtmfSender(PT, 0x1234, duration_ms=120, pause_ms=80)
    scheduled = sender.packets(
        "0123456789*#ABCD", sequence_number=65530, timestamp=0xFFFFFF00, start_ms=0
    )
    seqs = [s.packet.sequence_number for s in scheduled]
    assert seqs[:7] == [65530, 65531, 65532, 65533, 65534, 65535, 0]
    rx = DtmfReceiver()
    events = []
    for item in scheduled:
        events += rx.receive(RtpPacket.parse(bytes(item.packet)), item.send_ms)
    assert "".join(e.digit for e in events) == "0123456789*#ABCD"
    assert {e.duration_ms for e in events} == {120.0}
    assert all(e.ended for e in events)


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="0123456789*#ABCD", min_size=1, max_size=6),
    st.data(),
)
def test_any_loss_and_reordering_gives_each_digit_at_most_once(
    digits: str, data: st.DataObject
) -> None:
    sender = DtmfSender(PT, 1, duration_ms=100, pause_ms=60)
    scheduled = sender.packets(digits, sequence_number=0, timestamp=0, start_ms=0)
    kept = [s for s in scheduled if data.draw(st.integers(0, 4)) != 0]  # ~20% lost
    jittered = sorted(kept, key=lambda s: s.send_ms + data.draw(st.floats(0, 30)))
    rx = DtmfReceiver()
    events = []
    now = 0.0
    for item in jittered:
        now = max(now, item.send_ms)
        events += rx.receive(item.packet, now)
    events += rx.poll(now + 1000)
    starts = [e.start_timestamp for e in events]
    assert len(starts) == len(set(starts))  # never twice
    sent_starts = {s.packet.timestamp: s.packet.payload[0] for s in kept}
    for e in events:
        assert digit_to_event(e.digit) == sent_starts[e.start_timestamp]
    # every digit with at least one surviving packet is reported
    assert set(starts) == set(sent_starts)
