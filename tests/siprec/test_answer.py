"""The SDP answer: every offered payload type we decode, ports, SDES keys, refusals, re-answers."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.sip.sdp import Direction, RtpCodec, SessionDescription
from sipscribe.siprec.answer import (
    DEFAULT_CODECS,
    AcceptedStream,
    Answer,
    AnswerError,
    RefusedStream,
    SdesCrypto,
    build_answer,
)
from sipscribe.siprec.multipart import parse_recording_body


def offer_of(invite: Callable[[str], Any], name: str) -> SessionDescription:
    message = invite(name)
    return SessionDescription.parse(parse_recording_body(message.body, message.content_type).sdp)


KEY = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"  # 30 bytes, base64


def counter(start: int = 0) -> Callable[[int], bytes]:
    """Deterministic stand-in for os.urandom: bytes 0, 1, 2, ... continuing across calls."""
    numbers: Iterator[int] = itertools.count(start)

    def random_bytes(n: int) -> bytes:
        return bytes(next(numbers) % 256 for _ in range(n))

    return random_bytes


def offer(*lines: str) -> SessionDescription:
    head = ["v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0"]
    return SessionDescription.parse("\r\n".join([*head, *lines]) + "\r\n")


def answer(sdp: SessionDescription, **kwargs: Any) -> Answer:
    kwargs.setdefault("address", "192.0.2.50")
    kwargs.setdefault("ports", iter(range(40000, 41000, 2)))
    kwargs.setdefault("session_id", 42)
    kwargs.setdefault("random_bytes", counter())
    return build_answer(sdp, **kwargs)


# ---------------------------------------------------------------------------- fixtures


def test_opensips_answer_exactly(invite: Callable[[str], Any]) -> None:
    result = answer(offer_of(invite, "opensips-3.6-rtpengine-invite.txt"))
    assert bytes(result) == (
        b"v=0\r\n"
        b"o=sipscribe 42 1 IN IP4 192.0.2.50\r\n"
        b"s=sipscribe\r\n"
        b"c=IN IP4 192.0.2.50\r\n"
        b"t=0 0\r\n"
        b"m=audio 40000 RTP/AVP 0 101\r\n"
        b"a=label:1\r\n"
        b"a=rtpmap:0 PCMU/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\n"
        b"a=rtcp:40001\r\n"
        b"a=recvonly\r\n"
        b"m=audio 40002 RTP/AVP 0 101\r\n"
        b"a=label:0\r\n"
        b"a=rtpmap:0 PCMU/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\n"
        b"a=rtcp:40003\r\n"
        b"a=recvonly\r\n"
    )
    codecs = {0: RtpCodec("PCMU", 8000, 1), 101: RtpCodec("telephone-event", 8000, 1)}
    assert result.accepted == (
        AcceptedStream(
            0,
            "1",
            40000,
            "127.0.0.1",
            30136,
            "127.0.0.1",
            30137,
            False,
            codecs,
            None,
            Direction.RECVONLY,
            Direction.SENDONLY,
            "RTP/AVP",
        ),
        AcceptedStream(
            1,
            "0",
            40002,
            "127.0.0.1",
            30146,
            "127.0.0.1",
            30147,
            False,
            codecs,
            None,
            Direction.RECVONLY,
            Direction.SENDONLY,
            "RTP/AVP",
        ),
    )
    assert result.refused == ()


def test_cisco_cn_on_19_and_dtmf_fmtp_are_kept(invite: Callable[[str], Any]) -> None:
    result = answer(offer_of(invite, "cisco-cube-invite.txt"))
    first = result.sdp.media[0]
    assert first.formats == ("0", "101", "19")
    assert first.get_all("rtpmap") == ("0 PCMU/8000", "101 telephone-event/8000", "19 CN/8000")
    assert first.get_all("fmtp") == ("101 0-16",)
    assert [m.label for m in result.sdp.media] == ["1", "2"]
    assert result.accepted[0].remote_address == "192.0.2.10"
    assert result.accepted[0].remote_rtcp_port == 16385  # no a=rtcp: port + 1


def test_oracle_undecodable_payload_type_dropped_static_one_named(
    invite: Callable[[str], Any],
) -> None:
    result = answer(offer_of(invite, "oracle-sbc-invite.txt"))
    first, second = result.sdp.media
    assert first.formats == ("18", "0", "101")  # G726-32 on pt 2 is not something we decode
    assert first.get_all("fmtp") == ("18 annexb=no", "101 0-15")
    assert second.formats == ("18", "101")
    assert second.get_all("rtpmap") == ("18 G729/8000", "101 telephone-event/8000")
    assert result.accepted[1].payload_types[18] == RtpCodec("G729", 8000, 1, "annexb=no")
    assert result.accepted[0].remote_address == "198.51.100.21"  # session-level c=


def test_avaya_srtp_picks_first_supported_suite(invite: Callable[[str], Any]) -> None:
    result = answer(offer_of(invite, "avaya-sbce-invite.txt"))
    first, second = result.accepted
    assert first.crypto == SdesCrypto(
        tag=2,  # tag 1 offers AES_256_CM_HMAC_SHA1_80, which we do not key
        suite="AES_CM_128_HMAC_SHA1_80",
        remote_key=base64.b64decode("9y24NhLC+0kKtEgWWksRewiYQpqVh91Vf6y8Ja57"),
        local_key=bytes(range(30)),
        remote_attribute="2 AES_CM_128_HMAC_SHA1_80 "
        "inline:9y24NhLC+0kKtEgWWksRewiYQpqVh91Vf6y8Ja57|2^31",
    )
    assert first.crypto is not None and second.crypto is not None
    assert first.crypto.tag == 2 and first.crypto.suite == "AES_CM_128_HMAC_SHA1_80"
    assert len(first.crypto.local_key) == 30
    assert first.crypto.local_key != second.crypto.local_key
    assert first.crypto.remote_key == base64.b64decode("9y24NhLC+0kKtEgWWksRewiYQpqVh91Vf6y8Ja57")
    assert result.sdp.media[0].crypto == (first.crypto.local_attribute,)
    assert first.crypto.local_attribute == (
        "2 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(first.crypto.local_key).decode()
    )
    assert result.sdp.media[0].proto == "RTP/SAVP"
    assert result.sdp.media[0].formats == ("8", "0", "18", "120")


def test_avaya_local_keys_come_from_random_bytes(invite: Callable[[str], Any]) -> None:
    result = answer(offer_of(invite, "avaya-sbce-invite.txt"), random_bytes=counter(0))
    first, second = result.accepted
    assert first.crypto is not None and second.crypto is not None
    assert first.crypto.local_key == bytes(range(0, 30))
    assert second.crypto.local_key == bytes(range(30, 60))


def test_freeswitch_ipv6_opus_and_rtcp_mux(invite: Callable[[str], Any]) -> None:
    result = answer(offer_of(invite, "freeswitch-mixed-invite.txt"), address="2001:db8::50")
    assert str(result.sdp).startswith(
        "v=0\r\no=sipscribe 42 1 IN IP6 2001:db8::50\r\ns=sipscribe\r\nc=IN IP6 2001:db8::50\r\n"
    )
    (media,) = result.sdp.media
    assert media.formats == ("102", "8", "101", "13")
    assert media.get_all("rtpmap") == (
        "102 opus/48000/2",
        "8 PCMA/8000",
        "101 telephone-event/48000",
        "13 CN/8000",
    )
    assert media.get_all("fmtp") == ("102 useinbandfec=1; maxplaybackrate=16000", "101 0-16")
    assert media.rtcp_mux and media.rtcp is None
    (stream,) = result.accepted
    assert (stream.remote_address, stream.remote_rtcp_address) == ("2001:db8::15", "2001:db8::15")
    assert (stream.remote_rtcp_port, stream.rtcp_mux) == (24580, True)


def test_bare_sdp_session_direction_and_refused_video(invite: Callable[[str], Any]) -> None:
    result = answer(offer_of(invite, "bare-sdp-invite.txt"))
    assert [m.port for m in result.sdp.media] == [40000, 40002, 0]
    video = result.sdp.media[2]
    assert (video.kind, video.proto, video.formats, video.attributes) == (
        "video",
        "RTP/AVP",
        ("96",),
        (),
    )
    assert result.refused == (RefusedStream(2, None, "video is not audio"),)
    assert [s.offered_direction for s in result.accepted] == [Direction.SENDONLY] * 2
    assert [m.direction for m in result.sdp.media[:2]] == [Direction.RECVONLY] * 2
    assert result.sdp.media[0].formats == ("9", "0", "8", "101")


@pytest.mark.parametrize(
    "name",
    [
        "opensips-3.6-rtpengine-invite.txt",
        "cisco-cube-invite.txt",
        "oracle-sbc-invite.txt",
        "avaya-sbce-invite.txt",
        "freeswitch-mixed-invite.txt",
        "bare-sdp-invite.txt",
    ],
)
def test_every_decodable_offered_payload_type_is_answered(
    invite: Callable[[str], Any], name: str
) -> None:
    sdp = offer_of(invite, name)
    result = answer(sdp)
    reparsed = SessionDescription.parse(bytes(result))
    assert reparsed == result.sdp
    assert len(reparsed.media) == len(sdp.media)
    for offered, answered in zip(sdp.media, reparsed.media, strict=True):
        if answered.port == 0:
            continue
        wanted = [
            pt
            for pt, c in offered.codecs.items()
            if c.encoding.lower() in {x.lower() for x in DEFAULT_CODECS}
        ]
        assert list(answered.payload_types) == wanted
        assert "telephone-event" in {c.encoding for c in answered.codecs.values()}
        assert answered.label == offered.label
        assert answered.codecs == {pt: offered.codecs[pt] for pt in wanted}


# ---------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        (("m=video 5000 RTP/AVP 96", "a=rtpmap:96 H264/90000"), "video is not audio"),
        (("m=audio 0 RTP/AVP 0",), "the offer disabled it (port 0)"),
        (
            (
                "m=audio 5000 UDP/TLS/RTP/SAVPF 111",
                "a=rtpmap:111 opus/48000/2",
                "a=fingerprint:sha-256 AB:CD",
            ),
            "UDP/TLS/RTP/SAVPF (DTLS-SRTP) is not supported",
        ),
        (("m=audio 5000 TCP/RTP/AVP 0",), "transport TCP/RTP/AVP is not supported"),
        (
            ("m=audio 5000 RTP/SAVPF 0", "a=fingerprint:sha-256 AB:CD"),
            "DTLS-SRTP (a=fingerprint) is not supported",
        ),
        (
            (
                "m=audio 5000 RTP/SAVP 0",
                f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4",
            ),
            "no usable a=crypto (we take AES_CM_128_HMAC_SHA1_80/_32 inline keys without MKI or "
            "session parameters)",
        ),
        (
            (
                "m=audio 5000 RTP/AVP 2 101",
                "a=rtpmap:2 G726-32/8000",
                "a=rtpmap:101 telephone-event/8000",
            ),
            "no codec we decode (offered: G726-32/8000, telephone-event/8000)",
        ),
        (("m=audio 5000 RTP/AVP 96",), "no codec we decode (offered: none)"),
    ],
)
def test_refused_streams(lines: tuple[str, ...], reason: str) -> None:
    sdp = offer(*lines, "a=label:x", "m=audio 6000 RTP/AVP 0")
    result = answer(sdp)
    assert result.refused == (RefusedStream(0, "x", reason),)
    refused = result.sdp.media[0]
    assert refused.port == 0
    assert refused.formats == sdp.media[0].formats  # the format list stays valid
    assert refused.label == "x"
    assert result.accepted[0].mline_index == 1


@pytest.mark.parametrize(
    "crypto",
    [
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} UNENCRYPTED_SRTP",
        "1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=",  # key too short
        "1 AES_CM_128_HMAC_SHA1_80 inline:not*base64*at*all*here*sorry*xx",
        "x AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
        "1 F8_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
        "1 AES_CM_128_HMAC_SHA1_80 uri:https://example.com/key",
        "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz;"
        "inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj",
    ],
)
def test_unusable_crypto_lines(crypto: str) -> None:
    sdp = offer("m=audio 5000 RTP/SAVP 0", f"a=crypto:{crypto}", "m=audio 6000 RTP/AVP 0")
    assert answer(sdp).refused[0].reason.startswith("no usable a=crypto")


def test_sdes_with_fingerprint_uses_sdes_and_32_bit_tag_suite() -> None:
    sdp = offer(
        "m=audio 5000 RTP/SAVPF 0",
        "a=fingerprint:sha-256 AB:CD",
        "a=crypto:7 aes_cm_128_hmac_sha1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20",
    )
    (stream,) = answer(sdp).accepted
    assert stream.crypto is not None
    assert (stream.crypto.tag, stream.crypto.suite) == (7, "AES_CM_128_HMAC_SHA1_32")
    assert stream.proto == "RTP/SAVPF"


def test_crypto_on_plain_rtp_is_ignored() -> None:
    sdp = offer(
        "m=audio 5000 RTP/AVP 0",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj",
    )
    result = answer(sdp)
    assert result.accepted[0].crypto is None
    assert result.sdp.media[0].crypto == ()


def test_nothing_recordable_is_488() -> None:
    sdp = offer("m=video 5000 RTP/AVP 96", "m=audio 5002 RTP/AVP 2", "a=rtpmap:2 G726-32/8000")
    with pytest.raises(AnswerError) as caught:
        answer(sdp)
    assert caught.value.status == 488
    assert str(caught.value) == (
        "offer has no stream we can record (m-line 0: video is not audio; "
        "m-line 1: no codec we decode (offered: G726-32/8000))"
    )
    assert caught.value.warning_header("srs.example.com") == (
        '399 srs.example.com "offer has no stream we can record (m-line 0: video is not audio; '
        'm-line 1: no codec we decode (offered: G726-32/8000))"'
    )


def test_no_m_lines_is_488() -> None:
    with pytest.raises(AnswerError, match=r"^offer has no m-lines$"):
        answer(offer())


def test_all_disabled_offer_is_answered_all_disabled() -> None:
    result = answer(offer("m=audio 0 RTP/AVP 0", "m=audio 0 RTP/AVP 8"))
    assert [m.port for m in result.sdp.media] == [0, 0]
    assert result.accepted == ()


def test_restricted_codec_set() -> None:
    sdp = offer("m=audio 5000 RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/8000")
    result = answer(sdp, codecs={"pcma", "TELEPHONE-EVENT"})
    assert result.sdp.media[0].formats == ("8", "101")


# ---------------------------------------------------------------------------- directions, ports


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ("a=sendonly", Direction.RECVONLY),
        ("a=sendrecv", Direction.RECVONLY),
        ("a=inactive", Direction.INACTIVE),
        ("a=recvonly", Direction.INACTIVE),
    ],
)
def test_directions(offered: str, answered: Direction) -> None:
    result = answer(offer("m=audio 5000 RTP/AVP 0", offered))
    assert result.sdp.media[0].direction is answered
    assert result.accepted[0].direction is answered


def test_hold_address_and_rtcp_address() -> None:
    sdp = offer(
        "m=audio 5000 RTP/AVP 0",
        "c=IN IP4 0.0.0.0",
        "m=audio 5002 RTP/AVP 0",
        "a=rtcp:7000 IN IP4 192.0.2.77",
    )
    held, other = answer(sdp).accepted
    assert held.remote_address is None and held.remote_rtcp_address is None
    assert (other.remote_rtcp_address, other.remote_rtcp_port) == ("192.0.2.77", 7000)


def test_callable_port_source_and_exhaustion() -> None:
    ports = iter([50000])
    result = answer(offer("m=audio 5000 RTP/AVP 0"), ports=lambda: next(ports))
    assert result.accepted[0].local_port == 50000
    with pytest.raises(AnswerError) as caught:
        answer(offer("m=audio 5000 RTP/AVP 0", "m=audio 5002 RTP/AVP 0"), ports=[50000])
    assert (str(caught.value), caught.value.status) == (
        "no local RTP port left for the answer",
        503,
    )
    with pytest.raises(AnswerError, match=r"^local RTP port 70000 is out of range$"):
        answer(offer("m=audio 5000 RTP/AVP 0"), ports=[70000])


def test_random_session_id_when_none_given() -> None:
    result = build_answer(
        offer("m=audio 5000 RTP/AVP 0"),
        address="192.0.2.50",
        ports=[40000],
        random_bytes=lambda n: b"\xff" * n,
    )
    assert result.sdp.origin.session_id == str((2**64 - 1) >> 2)
    assert result.sdp.origin.session_version == 1


# ---------------------------------------------------------------------------- re-answers


def test_reanswer_bumps_version_keeps_ports_and_keys() -> None:
    crypto = "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
    first_offer = offer("m=audio 5000 RTP/SAVP 0", crypto, "a=sendonly")
    first = answer(first_offer, ports=[40000])
    # re-INVITE: the client pauses the stream (RFC 7866 §7.1.2) and adds a second one
    second_offer = offer("m=audio 5000 RTP/SAVP 0", crypto, "a=inactive", "m=audio 5002 RTP/AVP 8")
    second = answer(second_offer, ports=[40010], previous=first, random_bytes=counter(100))
    assert second.sdp.origin.session_id == first.sdp.origin.session_id == "42"
    assert second.sdp.origin.session_version == first.sdp.origin.session_version + 1
    assert [s.local_port for s in second.accepted] == [40000, 40010]
    assert second.accepted[0].direction is Direction.INACTIVE
    assert first.accepted[0].crypto is not None and second.accepted[0].crypto is not None
    assert second.accepted[0].crypto.local_key == first.accepted[0].crypto.local_key
    third = answer(second_offer, ports=[], previous=second)
    assert third.sdp.origin.session_version == 3
    assert [m.port for m in third.sdp.media] == [40000, 40010]


def test_reanswer_with_new_crypto_tag_makes_a_new_key() -> None:
    key = "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
    first = answer(
        offer("m=audio 5000 RTP/SAVP 0", f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 {key}"), ports=[40000]
    )
    second = answer(
        offer("m=audio 5000 RTP/SAVP 0", f"a=crypto:2 AES_CM_128_HMAC_SHA1_80 {key}"),
        ports=[],
        previous=first,
        random_bytes=counter(200),
    )
    assert first.accepted[0].crypto is not None and second.accepted[0].crypto is not None
    assert second.accepted[0].crypto.local_key != first.accepted[0].crypto.local_key
    assert second.accepted[0].crypto.tag == 2


# ---------------------------------------------------------------------------- properties

_CODEC_LINES = {
    "0": None,
    "8": None,
    "9": None,
    "18": None,
    "13": None,
    "3": None,
    "96": "a=rtpmap:96 opus/48000/2",
    "97": "a=rtpmap:97 telephone-event/8000",
    "98": "a=rtpmap:98 G726-32/8000",
    "99": "a=rtpmap:99 iLBC/8000",
    "100": None,
}


@st.composite
def _media(draw: st.DrawFn) -> list[str]:
    kind = draw(st.sampled_from(["audio", "audio", "audio", "video"]))
    port = draw(st.sampled_from([0, 5000, 6002]))
    proto = draw(st.sampled_from(["RTP/AVP", "RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF"]))
    pts = draw(st.lists(st.sampled_from(sorted(_CODEC_LINES)), min_size=1, max_size=5, unique=True))
    lines = [f"m={kind} {port} {proto} {' '.join(pts)}"]
    lines += [line for pt in pts if (line := _CODEC_LINES[pt])]
    if draw(st.booleans()):
        lines.append(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
        )
    lines.append(draw(st.sampled_from(["a=sendonly", "a=inactive", "a=recvonly", "a=label:z"])))
    return lines


@settings(max_examples=300, deadline=None)
@given(st.lists(_media(), min_size=1, max_size=4))
def test_answer_mirrors_offer(media: list[list[str]]) -> None:
    sdp = offer(*(line for m in media for line in m))
    try:
        result = answer(sdp)
    except AnswerError as exc:
        assert exc.status == 488
        assert str(exc).startswith("offer has no stream we can record (m-line 0: ")
        assert str(exc).count("m-line ") == len(sdp.media)
        return
    reparsed = SessionDescription.parse(bytes(result))
    assert len(reparsed.media) == len(sdp.media)
    accepted = {s.mline_index: s for s in result.accepted}
    refused = {r.mline_index for r in result.refused}
    assert set(accepted) | refused == set(range(len(sdp.media)))
    assert not set(accepted) & refused
    for index, (offered, answered) in enumerate(zip(sdp.media, reparsed.media, strict=True)):
        assert answered.kind == offered.kind
        if index in refused:
            assert answered.port == 0 and answered.formats == offered.formats
            continue
        decodable = [
            pt
            for pt, c in offered.codecs.items()
            if c.encoding.lower() in {x.lower() for x in DEFAULT_CODECS}
        ]
        assert list(answered.payload_types) == decodable
        assert answered.direction in (Direction.RECVONLY, Direction.INACTIVE)
        assert (accepted[index].crypto is not None) == offered.is_secure
