"""SDP parse/serialise: a real capture byte for byte, typed access, leniency, exact errors."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.sip.sdp import (
    STATIC_PAYLOAD_TYPES,
    Attribute,
    Connection,
    Direction,
    Media,
    Origin,
    RtcpAttribute,
    RtpCodec,
    RtpMap,
    SdpError,
    SessionDescription,
    Timing,
)

DATA = Path(__file__).parent.parent / "data" / "siprec"


def opensips_sdp() -> bytes:
    """The SDP part of the real OpenSIPS 3.6 + rtpengine SIPREC INVITE, as it was sent."""
    message = (DATA / "opensips-3.6-rtpengine-invite.txt").read_bytes()
    body = message.split(b"\r\n\r\n", 1)[1]
    part = body.split(b"--OSS-unique-boundary-42")[1]
    # The part is CRLF, headers, blank line, SDP; the CRLF before the next delimiter is not SDP.
    return part.split(b"\r\n\r\n", 1)[1][: -len(b"\r\n")]


def sdp(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


KEY1 = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"  # 30 bytes, base64
KEY2 = "NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj"
HEAD = ("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0")


# ---------------------------------------------------------------------------- real capture


def test_opensips_round_trips_byte_for_byte() -> None:
    data = opensips_sdp()
    assert bytes(SessionDescription.parse(data)) == data


def test_opensips_typed_access() -> None:
    sd = SessionDescription.parse(opensips_sdp())
    assert sd.origin == Origin(
        "-", "7710779774628561163", 7710779774628561163, "IN", "IP4", "127.0.0.1"
    )
    assert sd.name == "rtpengine-10-5-3-5-1-deb12u1"
    assert sd.connection is None  # c= only at media level
    assert sd.timings == (Timing(0, 0),)
    assert [m.label for m in sd.media] == ["1", "0"]  # labels in m-line order 1 then 0
    assert [m.port for m in sd.media] == [30136, 30146]
    assert [m.rtcp for m in sd.media] == [RtcpAttribute(30137), RtcpAttribute(30147)]
    for index, media in enumerate(sd.media):
        assert media.kind == "audio"
        assert media.proto == "RTP/AVP"
        assert media.formats == ("0", "101")
        assert media.payload_types == (0, 101)
        assert media.codecs == {
            0: RtpCodec("PCMU", 8000, 1),
            101: RtpCodec("telephone-event", 8000, 1),
        }
        assert sd.media_connection(index) == Connection("IN", "IP4", "127.0.0.1")
        assert sd.media_direction(index) is Direction.SENDONLY
        assert not media.rtcp_mux
        assert media.crypto == ()


# ---------------------------------------------------------------------------- typed access


def test_static_payload_types_without_rtpmap() -> None:
    sd = SessionDescription.parse(sdp(*HEAD, "m=audio 4000 RTP/AVP 0 8 9 18 13 3 4 96"))
    codecs = sd.media[0].codecs
    assert codecs == {
        0: RtpCodec("PCMU", 8000, 1),
        8: RtpCodec("PCMA", 8000, 1),
        9: RtpCodec("G722", 8000, 1),  # clock rate 8000 although it samples at 16 kHz
        18: RtpCodec("G729", 8000, 1),
        13: RtpCodec("CN", 8000, 1),
        3: RtpCodec("GSM", 8000, 1),
        4: RtpCodec("G723", 8000, 1),
    }  # 96 is dynamic and has no rtpmap: it means nothing
    assert STATIC_PAYLOAD_TYPES[9].clock_rate == 8000


def test_rtpmap_overrides_static_and_carries_channels_and_fmtp() -> None:
    sd = SessionDescription.parse(
        sdp(
            *HEAD,
            "m=audio 4000 RTP/AVP 111 19 0 101",
            "a=rtpmap:111 opus/48000/2",
            "a=fmtp:111 useinbandfec=1; minptime=10",
            "a=rtpmap:19 CN/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            "a=maxptime:40",
        )
    )
    media = sd.media[0]
    assert media.rtpmaps[111] == RtpMap(111, "opus", 48000, 2)
    assert media.fmtps == {"111": "useinbandfec=1; minptime=10", "101": "0-16"}
    assert media.codecs == {
        111: RtpCodec("opus", 48000, 2, "useinbandfec=1; minptime=10"),
        19: RtpCodec("CN", 8000, 1),
        0: RtpCodec("PCMU", 8000, 1),
        101: RtpCodec("telephone-event", 8000, 1, "0-16"),
    }
    assert media.ptime == 20.0
    assert media.maxptime == 40.0


def test_unparseable_ptime_reads_as_absent() -> None:
    sd = SessionDescription.parse(sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=ptime:twenty"))
    assert sd.media[0].ptime is None
    assert sd.media[0].maxptime is None


@pytest.mark.parametrize(
    ("session", "media", "expected"),
    [
        ((), (), Direction.SENDRECV),
        (("a=sendonly",), (), Direction.SENDONLY),
        (("a=sendonly",), ("a=inactive",), Direction.INACTIVE),
        ((), ("a=recvonly",), Direction.RECVONLY),
        (("a=inactive",), ("a=sendrecv",), Direction.SENDRECV),
    ],
)
def test_direction_media_overrides_session(
    session: tuple[str, ...], media: tuple[str, ...], expected: Direction
) -> None:
    sd = SessionDescription.parse(sdp(*HEAD, *session, "m=audio 4000 RTP/AVP 0", *media))
    assert sd.media_direction(0) is expected


def test_connections_session_level_ipv6_hold_and_multicast() -> None:
    sd = SessionDescription.parse(
        sdp(
            "v=0",
            "o=- 1 1 IN IP6 2001:db8::1",
            "s=-",
            "c=IN IP6 2001:db8::1",
            "t=0 0",
            "m=audio 4000 RTP/AVP 0",
            "m=audio 4002 RTP/AVP 0",
            "c=IN IP4 0.0.0.0",
            "m=audio 4004 RTP/AVP 0",
            "c=IN IP4 233.252.0.1/127/2",
            "m=audio 4006 RTP/AVP 0",
            "c=IN IP4 media.example.com",
        )
    )
    first = sd.media_connection(0)
    assert first == Connection("IN", "IP6", "2001:db8::1")
    assert first is not None and first.ip == ipaddress.ip_address("2001:db8::1")
    assert not first.is_hold
    hold = sd.media_connection(1)
    assert hold is not None and hold.is_hold
    multicast = sd.media_connection(2)
    assert multicast is not None and multicast.host == "233.252.0.1"
    named = sd.media_connection(3)
    assert named is not None and named.ip is None and not named.is_hold


def test_rtcp_address_mux_and_crypto_kept_raw() -> None:
    sd = SessionDescription.parse(
        sdp(
            *HEAD,
            "m=audio 4000 RTP/SAVP 0",
            "a=rtcp:4001 IN IP4 192.0.2.9",
            "a=rtcp-mux",
            f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY1}|2^20|1:4",
            f"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY2}",
        )
    )
    media = sd.media[0]
    assert media.rtcp == RtcpAttribute(4001, "IN", "IP4", "192.0.2.9")
    assert media.rtcp_mux
    assert media.is_secure and media.is_rtp
    assert media.crypto == (
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY1}|2^20|1:4",
        f"2 AES_CM_128_HMAC_SHA1_32 inline:{KEY2}",
    )


@pytest.mark.parametrize(
    ("proto", "rtp", "secure"),
    [
        ("RTP/AVP", True, False),
        ("RTP/AVPF", True, False),
        ("RTP/SAVP", True, True),
        ("RTP/SAVPF", True, True),
        ("UDP/TLS/RTP/SAVP", True, True),
        ("UDP/TLS/RTP/SAVPF", True, True),
        ("udptl", False, False),
    ],
)
def test_protos(proto: str, rtp: bool, secure: bool) -> None:
    fmt = "0" if rtp else "t38"
    media = SessionDescription.parse(sdp(*HEAD, f"m=audio 4000 {proto} {fmt}")).media[0]
    assert (media.proto, media.is_rtp, media.is_secure) == (proto, rtp, secure)
    assert media.payload_types == ((0,) if rtp else ())


def test_port_count_and_every_session_field_round_trip() -> None:
    data = sdp(
        "v=0",
        "o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5",
        "s=SDP Seminar",
        "i=A Seminar on the session description protocol",
        "u=http://www.example.com/seminars/sdp.pdf",
        "e=j.doe@example.com (Jane Doe)",
        "p=+1 617 555-6011",
        "c=IN IP4 224.2.17.12/127",
        "b=CT:128",
        "t=2873397496 2873404696",
        "r=7d 1h 0 25h",
        "z=2882844526 -1h 2898848070 0",
        "k=prompt",
        "a=recvonly",
        "m=audio 49170/2 RTP/AVP 0",
        "i=main audio",
        "c=IN IP4 224.2.17.12/127",
        "b=AS:64",
        "k=prompt",
        "a=label:main",
        "m=application 9 udp/bfcp *",
    )
    sd = SessionDescription.parse(data)
    assert bytes(sd) == data
    assert sd.media[0].port_count == 2
    assert sd.timings[0].repeats == ("7d 1h 0 25h",)
    assert sd.media[1].formats == ("*",)


# ---------------------------------------------------------------------------- leniency


def test_lf_only_trailing_whitespace_and_blank_lines() -> None:
    sloppy = (
        b"v=0\no=- 1 1 IN IP4 192.0.2.1  \ns=-\n\nt=0 0\t\nm=audio 4000 RTP/AVP 0 \na=sendonly\n\n"
    )
    sd = SessionDescription.parse(sloppy)
    assert bytes(sd) == sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=sendonly")


def test_missing_s_and_t_read_as_defaults() -> None:
    sd = SessionDescription.parse(sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "m=audio 4000 RTP/AVP 0"))
    assert sd.name == "-"
    assert sd.timings == (Timing(0, 0),)
    assert bytes(sd) == sdp(*HEAD, "m=audio 4000 RTP/AVP 0")


def test_session_lines_out_of_order_are_written_in_rfc_order() -> None:
    sd = SessionDescription.parse(
        sdp(
            "v=0",
            "s=-",
            "t=0 0",
            "c=IN IP4 192.0.2.1",
            "o=- 1 1 IN IP4 192.0.2.1",
            "m=audio 4000 RTP/AVP 0",
        )
    )
    assert bytes(sd) == sdp(
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "m=audio 4000 RTP/AVP 0",
    )


def test_unknown_line_types_are_dropped() -> None:
    sd = SessionDescription.parse(sdp(*HEAD, "y=0100000001", "m=audio 4000 RTP/AVP 0", "f=v/2"))
    assert bytes(sd) == sdp(*HEAD, "m=audio 4000 RTP/AVP 0")


def test_latin1_session_name() -> None:
    data = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=Caf\xe9\r\nt=0 0\r\n"
    assert SessionDescription.parse(data).name == "Café"


def test_port_zero_media_may_have_no_formats() -> None:
    sd = SessionDescription.parse(sdp(*HEAD, "m=video 0 RTP/AVP"))
    assert sd.media[0].formats == ()
    assert bytes(sd) == sdp(*HEAD, "m=video 0 RTP/AVP")


def test_built_from_constructor_like_an_answer() -> None:
    answer = SessionDescription(
        origin=Origin("sipscribe", "42", 2, "IN", "IP4", "192.0.2.50"),
        name="sipscribe",
        connection=Connection("IN", "IP4", "192.0.2.50"),
        media=(
            Media(
                "audio",
                40000,
                "RTP/AVP",
                ("0", "101"),
                attributes=(
                    Attribute("label", "1"),
                    Attribute("rtpmap", "0 PCMU/8000"),
                    Attribute("rtpmap", "101 telephone-event/8000"),
                    Attribute("recvonly"),
                ),
            ),
        ),
    )
    assert str(answer) == (
        "v=0\r\no=sipscribe 42 2 IN IP4 192.0.2.50\r\ns=sipscribe\r\nc=IN IP4 192.0.2.50\r\n"
        "t=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=label:1\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=recvonly\r\n"
    )
    assert SessionDescription.parse(bytes(answer)) == answer


def test_attribute_lookup_is_case_insensitive_and_flags_are_empty() -> None:
    media = SessionDescription.parse(
        sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=Label:x", "a=rtcp-mux")
    ).media[0]
    assert media.get("label") == "x"
    assert media.get("rtcp-mux") == ""
    assert media.get("missing") is None
    assert media.get_all("label") == ("x",)


# ---------------------------------------------------------------------------- errors

ERRORS = [
    (b"", "SDP is empty"),
    (b"\r\n\r\n", "SDP is empty"),
    (sdp("o=- 1 1 IN IP4 h", "v=0"), "SDP does not start with v=: line 1 is o="),
    (sdp("v=1", "o=- 1 1 IN IP4 h"), "SDP version '1' is not 0"),
    (sdp("v=0", "s=-"), "SDP has no o= line"),
    (sdp("v=0", "garbage"), "SDP line 2 is not <type>=<value>: 'garbage'"),
    (b"v=0\r\no=- 1 1 IN\x00 IP4 h\r\n", "SDP line 2 contains a control character"),
    (b"v=0\r\no=- 1 1 IN\r IP4 h\r\n", "SDP line 2 contains a control character"),
    (sdp("v=0", "o=- 1 1 IN IP4"), "SDP o= line needs 6 fields: '- 1 1 IN IP4'"),
    (sdp("v=0", "o=- 1 x IN IP4 h"), "SDP o= session version 'x' is not a number"),
    (sdp(*HEAD, "o=- 2 2 IN IP4 h"), "SDP line 5 is a second session-level o= line"),
    (sdp(*HEAD, "v=0"), "SDP line 5 is a second v= line"),
    (sdp(*HEAD, "c=IN IP4"), "SDP c= line needs 3 fields: 'IN IP4'"),
    (sdp(*HEAD, "b=AS"), "SDP b= line is not <type>:<bandwidth>: 'AS'"),
    (sdp(*HEAD, "b=AS:lots"), "SDP b= bandwidth 'lots' is not a number"),
    (sdp(*HEAD, "t=0"), "SDP t= line needs 2 fields: '0'"),
    (sdp("v=0", "o=- 1 1 IN IP4 h", "r=1d 1h 0"), "SDP line 3 is an r= line before any t= line"),
    (sdp(*HEAD, "a=:x"), "SDP a= line has an empty attribute name: ':x'"),
    (sdp(*HEAD, "m=audio 5000"), "SDP m= line needs media, port and proto: 'audio 5000'"),
    (sdp(*HEAD, "m=audio abc RTP/AVP 0"), "SDP m= line port 'abc' is not a number"),
    (sdp(*HEAD, "m=audio +5 RTP/AVP 0"), "SDP m= line port '+5' is not a number"),
    (sdp(*HEAD, "m=audio ５ RTP/AVP 0"), "SDP m= line port '５' is not a number"),
    (sdp(*HEAD, "m=audio 70000 RTP/AVP 0"), "SDP m= line port 70000 is out of range"),
    (sdp(*HEAD, "m=audio 5000/x RTP/AVP 0"), "SDP m= line port count 'x' is not a number"),
    (sdp(*HEAD, "m=audio 5000 RTP/AVP"), "SDP m= line has no formats: 'audio 5000 RTP/AVP'"),
    (sdp(*HEAD, "m=audio 5000 RTP/AVP PCMU"), "SDP m= line payload type 'PCMU' is not a number"),
    (sdp(*HEAD, "m=audio 5000 RTP/AVP 200"), "SDP m= line payload type 200 is over 127"),
    (
        sdp(*HEAD, "m=audio 5000 RTP/AVP 0", "t=0 0"),
        "SDP line 6: t= is not allowed in a media section",
    ),
    (
        sdp(*HEAD, "m=audio 5000 RTP/AVP 0", "i=a", "i=b"),
        "SDP line 7 is a second i= line in one media section",
    ),
    (
        sdp(*HEAD, "m=audio 5000 RTP/AVP 0", "a=rtpmap:x PCMU/8000"),
        "SDP a=rtpmap payload type 'x' is not a number",
    ),
    (
        sdp(*HEAD, "m=audio 5000 RTP/AVP 0", "a=rtpmap:0 PCMU"),
        "SDP a=rtpmap is not <pt> <encoding>/<rate>: '0 PCMU'",
    ),
    (
        sdp(*HEAD, "m=audio 5000 RTP/AVP 0", "a=rtpmap:0 PCMU/0"),
        "SDP a=rtpmap clock rate is zero: '0 PCMU/0'",
    ),
    (
        sdp(*HEAD, "m=audio 5000 RTP/AVP 0", "a=rtpmap:0 PCMU/8000/two"),
        "SDP a=rtpmap channels 'two' is not a number",
    ),
    (
        sdp(*HEAD, "m=audio 5000 RTP/AVP 0", "a=fmtp:x 0-15"),
        "SDP a=fmtp payload type 'x' is not a number",
    ),
    (sdp(*HEAD, "m=audio 5000 RTP/AVP 0", "a=rtcp:abc"), "SDP a=rtcp port 'abc' is not a number"),
    (
        sdp(*HEAD, "m=audio 5000 RTP/AVP 0", "a=rtcp:5001 IN IP4"),
        "SDP a=rtcp is not <port> [IN IP4 <address>]: '5001 IN IP4'",
    ),
    (sdp(*HEAD, "m=audio 5000 RTP/AVP 0", "a=rtcp:99999"), "SDP a=rtcp port 99999 is out of range"),
    (
        sdp("v=0", "o=- 1 " + "9" * 40 + " IN IP4 h"),
        "SDP o= session version '" + "9" * 40 + "' is not a number",
    ),
]


@pytest.mark.parametrize(("data", "message"), ERRORS)
def test_errors(data: bytes, message: str) -> None:
    with pytest.raises(SdpError) as caught:
        SessionDescription.parse(data)
    assert str(caught.value) == message
    assert caught.value.status == 400
    assert isinstance(caught.value, ValueError)


def test_long_values_are_cut_in_messages() -> None:
    with pytest.raises(SdpError) as caught:
        SessionDescription.parse(sdp(*HEAD, "m=audio " + "x" * 200 + " RTP/AVP 0"))
    assert str(caught.value) == "SDP m= line port '" + "x" * 60 + "...' is not a number"


# ---------------------------------------------------------------------------- properties

_SDP_PIECES = st.sampled_from(
    [
        "v=0",
        "o=- 1 1 IN IP4 192.0.2.1",
        "s=-",
        "t=0 0",
        "c=IN IP4 192.0.2.1",
        "c=IN IP6 ::1",
        "m=audio 4000 RTP/AVP 0 8 101",
        "m=audio 0 RTP/SAVP 0",
        "m=video 5000/2 RTP/AVPF 96",
        "m=application 9 udp/bfcp *",
        "a=rtpmap:101 telephone-event/8000",
        "a=rtpmap:96 H264/90000",
        "a=fmtp:101 0-15",
        "a=rtcp:4001",
        "a=rtcp:4001 IN IP4 192.0.2.1",
        "a=sendonly",
        "a=label:1",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x",
        "b=AS:64",
        "r=1d 1h 0",
        "i=info",
        "k=prompt",
        "x=unknown",
        "a=ptime:20",
        "a=rtcp-mux",
        "e=a@b",
        "p=+1",
        "z=0 0",
        "u=http://x",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_sdp_error(data: bytes) -> None:
    try:
        sd = SessionDescription.parse(data)
    except SdpError:
        return
    assert SessionDescription.parse(bytes(sd)) == sd


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_random_text_raises_only_sdp_error(text: str) -> None:
    try:
        sd = SessionDescription.parse("v=0\n" + text)
    except SdpError:
        return
    assert SessionDescription.parse(str(sd)) == sd


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(
            _SDP_PIECES, st.text(alphabet="vosmcatbrkiz=0123456789 /:.-RTPAV\t", max_size=30)
        ),
        max_size=20,
    ),
    st.sampled_from(["\r\n", "\n"]),
)
def test_sdp_like_text_parses_idempotently_or_raises_sdp_error(
    lines: list[str], newline: str
) -> None:
    text = newline.join(["v=0", *lines])
    try:
        sd = SessionDescription.parse(text)
    except SdpError:
        return
    again = SessionDescription.parse(bytes(sd))
    assert again == sd
    assert bytes(again) == bytes(sd)
    for index, media in enumerate(sd.media):  # typed access never raises on a parsed body
        _ = (media.codecs, media.rtcp, media.label, media.ptime, sd.media_direction(index))
        _ = sd.media_connection(index)
