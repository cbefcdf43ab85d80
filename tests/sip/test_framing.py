"""Cutting TCP/TLS streams into SIP messages."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.sip.errors import SipParseError
from sipscribe.sip.framing import PING, StreamFramer
from sipscribe.sip.message import ParseLimits, parse_message

OPTIONS = (
    b"OPTIONS sip:srs@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1\r\n"
    b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:srs@example.com>\r\n"
    b"Call-ID: f1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 5\r\n\r\nhello"
)
FOLDED = OPTIONS.replace(b"Content-Length: 5", b"l:\r\n  5").replace(b"Call-ID: f1", b"Call-ID: f2")


def drain(framer: StreamFramer) -> list[object]:
    items = []
    while (item := framer.next_item()) is not None:
        items.append(item)
    return items


def test_byte_by_byte() -> None:
    framer = StreamFramer()
    items: list[object] = []
    for i in range(len(OPTIONS)):
        framer.feed(OPTIONS[i : i + 1])
        items += drain(framer)
        if i < len(OPTIONS) - 1:
            assert items == []
    assert items == [OPTIONS]
    assert framer.buffered == 0


def test_pipelined_messages_pings_and_stray_crlf() -> None:
    framer = StreamFramer()
    framer.feed(b"\r\n" + OPTIONS + b"\r\n\r\n" + FOLDED + OPTIONS[:20])
    assert drain(framer) == [OPTIONS, PING, FOLDED]
    assert framer.buffered == 20
    framer.feed(OPTIONS[20:])
    assert drain(framer) == [OPTIONS]
    assert parse_message(FOLDED, stream=True).body == b"hello"


def test_ping_split_across_reads() -> None:
    framer = StreamFramer()
    for chunk in (b"\r", b"\n", b"\r"):
        framer.feed(chunk)
        assert framer.next_item() is None
    framer.feed(b"\n")
    assert drain(framer) == [PING]
    framer.feed(b"\r\n")  # a lone CRLF (a pong) waits, then is skipped
    assert framer.next_item() is None
    framer.feed(OPTIONS)
    assert drain(framer) == [OPTIONS]


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (OPTIONS.replace(b"Content-Length: 5\r\n", b""), 400,
         "Content-Length is required on stream transports"),
        (OPTIONS.replace(b"Content-Length: 5", b"Content-Length: -5"), 400,
         "Content-Length '-5' is not a number"),
        (OPTIONS.replace(b"Content-Length: 5", b"Content-Length: 5\r\nl: 5"), 400,
         "message has more than one Content-Length header"),
        (OPTIONS.replace(b"Content-Length: 5", b"Content-Length: 99999999999999"), 413,
         "message exceeds 65536 bytes"),
        (OPTIONS.replace(b"Content-Length: 5", b"Content-Length: 70000"), 413,
         "message exceeds 65536 bytes"),
    ],
)  # fmt: skip
def test_framing_errors_are_fatal(data: bytes, status: int, reason: str) -> None:
    framer = StreamFramer()
    framer.feed(data)
    with pytest.raises(SipParseError) as info:
        framer.next_item()
    assert (info.value.status, info.value.reason) == (status, reason)
    assert framer.failed and framer.buffered == 0
    framer.feed(OPTIONS)  # ignored: the stream is out of sync for good
    with pytest.raises(SipParseError):
        framer.next_item()


def test_oversized_header_section_is_rejected() -> None:
    framer = StreamFramer(limits=ParseLimits(max_message_size=1024))
    framer.feed(b"INVITE sip:a@b SIP/2.0\r\n")
    for _ in range(100):
        framer.feed(b"X-Filler: " + b"a" * 20 + b"\r\n")
        try:
            assert framer.next_item() is None
        except SipParseError as exc:
            assert (exc.status, exc.reason) == (413, "header section exceeds 1024 bytes")
            break
    else:
        pytest.fail("an endless header section was buffered without limit")
    assert framer.buffered == 0


@settings(max_examples=200)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=60), st.integers(1, 4))
def test_arbitrary_splits_yield_the_same_messages(cuts: list[int], copies: int) -> None:
    stream = (OPTIONS + b"\r\n\r\n" + FOLDED) * copies
    framer = StreamFramer()
    items: list[object] = []
    pos = 0
    for cut in cuts:
        framer.feed(stream[pos : pos + cut])
        pos += cut
        items += drain(framer)
    framer.feed(stream[pos:])
    items += drain(framer)
    assert items == [OPTIONS, PING, FOLDED] * copies


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_random_streams_only_raise_sip_parse_error(data: bytes) -> None:
    framer = StreamFramer(limits=ParseLimits(max_message_size=256))
    framer.feed(data)
    try:
        for item in iter(framer.next_item, None):
            if isinstance(item, bytes):
                with contextlib.suppress(SipParseError):
                    parse_message(item, stream=True)
    except SipParseError:
        assert framer.failed
