from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.media.rtcp import (
    ReportBlock,
    RtcpApp,
    RtcpBye,
    RtcpError,
    RtcpPacket,
    RtcpReceiverReport,
    RtcpSdes,
    RtcpSenderReport,
    RtcpUnknown,
    SdesChunk,
    SdesItem,
    serialize_compound,
)
from tests.media.media_helpers import load_capture

BLOCK = ReportBlock(
    ssrc=0x01020304,
    fraction_lost=25,
    packets_lost=-3,
    highest_sequence=0x0001FFFF,
    jitter=42,
    last_sr=0xAABBCCDD,
    delay_since_last_sr=65536,
)


def test_sender_report_wire_format() -> None:
    sr = RtcpSenderReport(
        ssrc=0x11223344,
        ntp_timestamp=0xE8B3_0000_8000_0000,
        rtp_timestamp=160,
        packet_count=50,
        octet_count=8000,
        reports=(BLOCK,),
    )
    data = bytes(sr)
    assert data[:4] == bytes([0x81, 200, 0, 12])  # 1 report block, 13 words
    assert data[4:8] == bytes.fromhex("11223344")
    # cumulative lost is a signed 24-bit field: -3 is 0xFFFFFD
    assert data[28 + 4 : 28 + 8] == bytes([25, 0xFF, 0xFF, 0xFD])
    assert RtcpPacket.parse_compound(data) == [sr]


def test_compound_of_every_type_round_trips() -> None:
    packets = [
        RtcpReceiverReport(ssrc=1, reports=(BLOCK, BLOCK), extension=b"\x00\x01\x02\x03"),
        RtcpSdes(
            (
                SdesChunk(1, (SdesItem(1, b"alice@example.com"), SdesItem(6, b"sipscribe"))),
                SdesChunk(2, ()),
            )
        ),
        RtcpBye((1, 2), b"call ended"),
        RtcpApp(subtype=3, ssrc=1, name=b"SIPS", data=b"12345678"),
        RtcpUnknown(205, 1, b"\x00\x00\x00\x01\x00\x00\x00\x02"),  # RTPFB generic NACK
    ]
    data = serialize_compound(packets)
    assert RtcpPacket.parse_compound(data) == packets
    assert serialize_compound(RtcpPacket.parse_compound(data)) == data


def test_sdes_cname_lookup() -> None:
    sdes = RtcpSdes((SdesChunk(7, (SdesItem(2, b"Alice"), SdesItem(1, b"a@h"))),))
    assert sdes.cname(7) == "a@h"
    assert sdes.cname(8) is None


def test_bye_without_reason_and_padding_to_32_bits() -> None:
    assert bytes(RtcpBye((5,))) == bytes([0x81, 203, 0, 1, 0, 0, 0, 5])
    with_reason = bytes(RtcpBye((5,), b"x"))
    assert len(with_reason) == 12 and with_reason[8:] == b"\x01x\x00\x00"


def test_app_with_unaligned_data_is_padded() -> None:
    app = RtcpApp(subtype=0, ssrc=9, name=b"TEST", data=b"abc")
    data = bytes(app)
    assert data[0] & 0x20  # P bit
    assert data[-1] == 1
    assert RtcpPacket.parse_compound(data) == [app]


def test_padding_is_removed() -> None:
    rr = bytes(RtcpReceiverReport(ssrc=3))
    padded = bytes([rr[0] | 0x20, rr[1], 0, 2]) + rr[4:] + b"\x00\x00\x00\x04"
    assert RtcpPacket.parse_compound(padded) == [RtcpReceiverReport(ssrc=3)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "RTCP compound packet is empty"),
        (b"\x80\xc8\x00", "RTCP packet length is less than 4 bytes"),
        (b"\x40\xc8\x00\x00", "RTCP packet has invalid version 1"),
        (b"\x80\xc8\x00\x06" + bytes(20), "RTCP packet length field exceeds the datagram"),
        (b"\x80\xc8\x00\x01" + bytes(4), "RTCP SR is truncated"),
        (b"\x81\xc8\x00\x06" + bytes(24), "RTCP SR has truncated report blocks"),
        (b"\x81\xc9\x00\x01" + bytes(4), "RTCP RR has truncated report blocks"),
        (b"\x80\xc9\x00\x00", "RTCP RR is truncated"),
        (b"\x81\xca\x00\x01" + bytes(4), "RTCP SDES chunk is truncated"),
        (b"\x81\xca\x00\x02" + bytes(3) + b"\x01\x01\x05abc", "RTCP SDES item is truncated"),
        (b"\x82\xcb\x00\x01" + bytes(4), "RTCP BYE has truncated source list"),
        (b"\x81\xcb\x00\x02" + bytes(4) + b"\x09abc", "RTCP BYE reason is truncated"),
        (b"\x80\xcc\x00\x01" + bytes(4), "RTCP APP is truncated"),
        (b"\xa0\xc9\x00\x01" + bytes(4), "RTCP packet has invalid padding length"),
        (b"\xa0\xc9\x00\x01" + bytes(3) + b"\x09", "RTCP packet has invalid padding length"),
        (bytes(RtcpReceiverReport(1)) + b"\x80", "RTCP packet length is less than 4 bytes"),
        (
            b"\x80\xc9\x00\x01" + bytes(4) + b"\x80\xc8\x00\x09",
            "RTCP packet length field exceeds the datagram",
        ),
        (
            b"\xa0\xc9\x00\x02" + bytes(6) + b"\x00\x02",
            "RTCP RR extension is not a multiple of 4 bytes",
        ),
    ],
)
def test_parse_errors(data: bytes, message: str) -> None:
    with pytest.raises(RtcpError) as info:
        RtcpPacket.parse_compound(data)
    assert str(info.value) == message


def test_construction_is_validated() -> None:
    with pytest.raises(RtcpError, match="RTCP APP name is not 4 bytes"):
        RtcpApp(0, 1, b"TOOLONG")
    with pytest.raises(RtcpError, match="RTCP RR has more than 31 entries"):
        RtcpReceiverReport(1, (BLOCK,) * 32)
    with pytest.raises(RtcpError, match="packets lost 8388608 is out of range"):
        ReportBlock(1, 0, 1 << 23, 0, 0, 0, 0)
    with pytest.raises(RtcpError, match="RTCP SR SSRC -1 is out of range"):
        RtcpSenderReport(-1, 0, 0, 0, 0)


def test_ffmpeg_sender_report() -> None:
    capture = load_capture("ffmpeg-pcmu.txt")
    (rtcp,) = [data for kind, data in capture if kind == "rtcp"]
    first_rtp = next(data for kind, data in capture if kind == "rtp")
    (sr,) = RtcpPacket.parse_compound(rtcp)
    assert isinstance(sr, RtcpSenderReport)
    assert bytes(sr) == rtcp
    assert sr.ssrc == struct.unpack("!L", first_rtp[8:12])[0]
    assert sr.reports == ()
    # Sent before the first RTP packet: its RTP timestamp is the stream's first.
    assert sr.rtp_timestamp == struct.unpack("!L", first_rtp[4:8])[0]
    assert sr.ntp_timestamp >> 32 > 3_900_000_000  # seconds since 1900: after 2023


# -- properties --------------------------------------------------------------------------

u32 = st.integers(0, 0xFFFFFFFF)
blocks = st.builds(
    ReportBlock,
    u32,
    st.integers(0, 255),
    st.integers(-(1 << 23), (1 << 23) - 1),
    u32,
    u32,
    u32,
    u32,
)
aligned = st.integers(0, 4).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))
rtcp_packets = st.one_of(
    st.builds(
        RtcpSenderReport,
        u32,
        st.integers(0, 0xFFFFFFFFFFFFFFFF),
        u32,
        u32,
        u32,
        st.lists(blocks, max_size=3).map(tuple),
        aligned,
    ),
    st.builds(RtcpReceiverReport, u32, st.lists(blocks, max_size=3).map(tuple), aligned),
    st.builds(
        RtcpSdes,
        st.lists(
            st.builds(
                SdesChunk,
                u32,
                st.lists(
                    st.builds(SdesItem, st.integers(1, 255), st.binary(max_size=30)), max_size=3
                ).map(tuple),
            ),
            max_size=3,
        ).map(tuple),
    ),
    st.builds(
        RtcpBye,
        st.lists(u32, max_size=4).map(tuple),
        st.one_of(st.none(), st.binary(max_size=40)),
    ),
    st.builds(
        RtcpApp, st.integers(0, 31), u32, st.binary(min_size=4, max_size=4), st.binary(max_size=40)
    ),
    st.builds(
        RtcpUnknown,
        st.sampled_from([205, 206, 207, 192, 210]),
        st.integers(0, 31),
        st.binary(max_size=40),
    ),
)


@settings(max_examples=300)
@given(st.lists(rtcp_packets, min_size=1, max_size=4))
def test_compound_round_trip(packets: list[RtcpPacket]) -> None:
    data = serialize_compound(packets)
    assert RtcpPacket.parse_compound(data) == packets


def _version_2(data: bytes) -> bytes:
    return bytes([0x80 | (data[0] & 0x3F)]) + data[1:] if data else data


@settings(max_examples=500)
@given(
    st.one_of(
        st.binary(max_size=120),
        st.binary(max_size=120).map(_version_2),
        st.tuples(rtcp_packets, st.binary(max_size=12)).map(lambda t: bytes(t[0]) + t[1]),
    )
)
def test_random_bytes_raise_only_rtcp_error(data: bytes) -> None:
    try:
        packets = RtcpPacket.parse_compound(data)
    except RtcpError:
        return
    assert packets


@settings(max_examples=300)
@given(st.lists(rtcp_packets, min_size=1, max_size=3), st.data())
def test_any_corruption_raises_only_rtcp_error(
    packets: list[RtcpPacket], data: st.DataObject
) -> None:
    raw = bytearray(serialize_compound(packets))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    with contextlib.suppress(RtcpError):
        RtcpPacket.parse_compound(bytes(raw[:cut]))
