from __future__ import annotations

import contextlib
import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.media.rtp import (
    ExtensionElement,
    HeaderExtension,
    RtpError,
    RtpPacket,
    is_rtcp,
)
from tests.media.media_helpers import load_capture


def header(first: int = 0x80, second: int = 0, seq: int = 1, ts: int = 2, ssrc: int = 3) -> bytes:
    return struct.pack("!BBHLL", first, second, seq, ts, ssrc)


def test_parse_minimal_packet() -> None:
    packet = RtpPacket.parse(header(second=0x80 | 8, seq=0xFFFF, ts=0xFFFFFFFF) + b"\xd5" * 160)
    assert packet == RtpPacket(
        payload_type=8,
        sequence_number=0xFFFF,
        timestamp=0xFFFFFFFF,
        ssrc=3,
        marker=True,
        payload=b"\xd5" * 160,
    )


def test_parse_csrcs_extension_and_padding() -> None:
    data = (
        header(first=0x80 | 0x20 | 0x10 | 2)
        + struct.pack("!LL", 0x11111111, 0x22222222)
        + struct.pack("!HH", 0xBEDE, 1)
        + bytes([0x10, 0xAA, 0x00, 0x00])  # element id 1, 1 byte, then padding
        + b"audio"
        + b"\x00\x00\x03"
    )
    packet = RtpPacket.parse(data)
    assert packet.csrcs == (0x11111111, 0x22222222)
    assert packet.extension == HeaderExtension(0xBEDE, bytes([0x10, 0xAA, 0x00, 0x00]))
    assert packet.extension.elements() == (ExtensionElement(1, b"\xaa"),)
    assert packet.payload == b"audio"
    assert packet.padding_size == 3
    assert bytes(packet) == data  # padding is zeros + count, as written


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "RTP packet length is less than 12 bytes"),
        (header()[:11], "RTP packet length is less than 12 bytes"),
        (header(first=0x40), "RTP packet has invalid version 1"),
        (header(first=0x00), "RTP packet has invalid version 0"),
        (header(first=0x82) + b"\x00" * 7, "RTP packet has truncated CSRC list"),
        (header(first=0x90) + b"\xbe\xde", "RTP packet has truncated extension header"),
        (
            header(first=0x90) + b"\xbe\xde\x00\x02" + b"\x00" * 4,
            "RTP packet has truncated extension data",
        ),
        (header(first=0xA0), "RTP packet has invalid padding length"),
        (header(first=0xA0) + b"ab\x00", "RTP packet has invalid padding length"),
        (header(first=0xA0) + b"ab\x04", "RTP packet has invalid padding length"),
    ],
)
def test_parse_errors(data: bytes, message: str) -> None:
    with pytest.raises(RtpError) as info:
        RtpPacket.parse(data)
    assert str(info.value) == message


def test_padding_may_be_the_whole_payload() -> None:
    packet = RtpPacket.parse(header(first=0xA0) + b"\x00\x00\x00\x04")
    assert packet.payload == b"" and packet.padding_size == 4


def test_generic_extension_is_kept_raw() -> None:
    data = header(first=0x90) + b"\x12\x34\x00\x01" + b"abcd" + b"pay"
    packet = RtpPacket.parse(data)
    assert packet.extension == HeaderExtension(0x1234, b"abcd")
    assert bytes(packet) == data
    with pytest.raises(RtpError, match="RTP header extension profile 0x1234 is not RFC 8285"):
        packet.extension.elements()


def test_one_byte_extension_elements() -> None:
    ext = HeaderExtension.from_elements([(1, b"\x01\x02"), (14, b"x" * 16)])
    assert ext.is_one_byte
    assert ext.data[:3] == b"\x11\x01\x02"
    assert ext.elements() == (ExtensionElement(1, b"\x01\x02"), ExtensionElement(14, b"x" * 16))
    assert ext.get(14) == b"x" * 16
    assert ext.get(2) is None
    assert len(ext.data) % 4 == 0


def test_one_byte_id_15_stops_processing() -> None:
    ext = HeaderExtension(0xBEDE, bytes([0x10, 0x01, 0xF0, 0x22]))
    assert ext.elements() == (ExtensionElement(1, b"\x01"),)


def test_two_byte_extension_elements() -> None:
    ext = HeaderExtension.from_elements([(200, b""), (3, b"y" * 17)], appbits=5)
    assert ext.is_two_byte and ext.profile == 0x1005 and ext.appbits == 5
    assert ext.elements() == (ExtensionElement(200, b""), ExtensionElement(3, b"y" * 17))
    assert HeaderExtension.from_elements([(1, b"a")], two_byte=True).profile == 0x1000


@pytest.mark.parametrize(
    ("ext", "message"),
    [
        (HeaderExtension(0xBEDE, bytes([0x13, 0xAA, 0x00, 0x00])), "element 1 is truncated"),
        (HeaderExtension(0x1000, bytes([0x00, 0x00, 0x00, 0x07])), "element 7 is truncated"),
        (HeaderExtension(0x1000, bytes([0x05, 0x04, 0xAA, 0xBB])), "element 5 is truncated"),
    ],
)
def test_malformed_elements_raise_but_packet_still_parses(
    ext: HeaderExtension, message: str
) -> None:
    packet = RtpPacket.parse(bytes(RtpPacket(extension=ext, payload=b"audio")))
    assert packet.payload == b"audio"  # the audio is usable; only elements() complains
    with pytest.raises(RtpError) as info:
        packet.extension.elements()  # type: ignore[union-attr]
    assert str(info.value) == f"RTP header extension {message}"


def test_construction_is_validated() -> None:
    with pytest.raises(RtpError, match="RTP packet has invalid payload type 128"):
        RtpPacket(payload_type=128)
    with pytest.raises(RtpError, match="RTP packet has invalid sequence number 65536"):
        RtpPacket(sequence_number=65536)
    with pytest.raises(RtpError, match="RTP packet has more than 15 CSRCs"):
        RtpPacket(csrcs=tuple(range(16)))
    with pytest.raises(RtpError, match="not a multiple of 4 bytes"):
        HeaderExtension(0xBEDE, b"abc")
    with pytest.raises(RtpError, match="do not fit the one-byte form"):
        HeaderExtension.from_elements([(15, b"a")], two_byte=False)


def test_is_rtcp_demultiplexes_by_payload_type() -> None:
    assert is_rtcp(bytes([0x80, 200]))  # SR
    assert is_rtcp(bytes([0x81, 201, 0, 7]))  # RR
    assert is_rtcp(bytes([0x80, 223]))
    assert not is_rtcp(header(second=0))  # PCMU
    assert not is_rtcp(header(second=0x80 | 96))  # dynamic PT with marker
    assert not is_rtcp(header(second=0x80 | 127))
    assert not is_rtcp(bytes([0x80, 191]))
    assert not is_rtcp(b"\x80")


def test_ffmpeg_capture_parses_and_round_trips() -> None:
    packets = [
        RtpPacket.parse(data) for kind, data in load_capture("ffmpeg-pcmu.txt") if kind == "rtp"
    ]
    raw = [data for kind, data in load_capture("ffmpeg-pcmu.txt") if kind == "rtp"]
    assert [bytes(p) for p in packets] == raw
    assert len(packets) == 75
    assert {p.payload_type for p in packets} == {0}
    assert len({p.ssrc for p in packets}) == 1
    assert not any(p.marker for p in packets)  # FFmpeg does not mark a PCMU stream's start
    for a, b in itertools.pairwise(packets):
        assert (b.sequence_number - a.sequence_number) & 0xFFFF == 1
        assert (b.timestamp - a.timestamp) & 0xFFFFFFFF == 160
        assert len(b.payload) == 160


# -- properties --------------------------------------------------------------------------

elements_one = st.lists(
    st.builds(ExtensionElement, st.integers(1, 14), st.binary(min_size=1, max_size=16)),
    max_size=4,
)
elements_two = st.lists(
    st.builds(ExtensionElement, st.integers(1, 255), st.binary(max_size=40)), max_size=4
)
extensions = st.one_of(
    st.none(),
    st.builds(
        HeaderExtension,
        st.integers(0, 0xFFFF),
        st.integers(0, 6).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
    ),
    elements_one.map(lambda e: HeaderExtension.from_elements(e, two_byte=False)),
    elements_two.map(lambda e: HeaderExtension.from_elements(e, two_byte=True)),
)
packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=extensions,
    payload=st.binary(max_size=300),
    padding_size=st.integers(0, 255),
)


@settings(max_examples=400)
@given(packets)
def test_round_trip(packet: RtpPacket) -> None:
    data = bytes(packet)
    assert RtpPacket.parse(data) == packet
    assert bytes(RtpPacket.parse(data)) == data
    if packet.extension is not None and (
        packet.extension.is_one_byte or packet.extension.is_two_byte
    ):
        packet.extension.elements()


def _version_2(data: bytes) -> bytes:
    return bytes([0x80 | (data[0] & 0x3F)]) + data[1:] if data else data


@settings(max_examples=500)
@given(st.one_of(st.binary(max_size=120), st.binary(max_size=120).map(_version_2)))
def test_random_bytes_raise_only_rtp_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RtpError:
        return
    # Everything but the padding contents (written back as zeros) is reproduced exactly.
    kept = len(data) - packet.padding_size
    assert len(bytes(packet)) == len(data)
    assert bytes(packet)[:kept] == data[:kept]
    if packet.extension is not None:
        with contextlib.suppress(RtpError):
            packet.extension.elements()


@settings(max_examples=300)
@given(packets, st.data())
def test_any_truncation_raises_rtp_error_or_parses(packet: RtpPacket, data: st.DataObject) -> None:
    raw = bytes(packet)
    cut = data.draw(st.integers(0, len(raw)))
    with contextlib.suppress(RtpError):
        RtpPacket.parse(raw[:cut])
