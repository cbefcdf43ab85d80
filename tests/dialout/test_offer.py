"""Dial-out SDP: our offer's order, and reading every kind of answer."""

from __future__ import annotations

import pytest

from sipscribe.dialout.offer import OfferError, build_offer, parse_answer
from sipscribe.sip.sdp import Direction, SessionDescription


def _answer(m: str, extra: str = "", c: str = "IN IP4 127.0.0.1") -> bytes:
    return (
        f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc={c}\r\nt=0 0\r\nm={m}\r\n{extra}"
    ).encode()


@pytest.mark.parametrize("encoding", ["PCMU", "PCMA", "G722", "OPUS"])
def test_offer_puts_the_configured_codec_first(encoding: str) -> None:
    sdp = SessionDescription.parse(
        bytes(build_offer(address="127.0.0.1", port=4000, encoding=encoding))
    )
    media = sdp.media[0]
    assert media.port == 4000 and media.proto == "RTP/AVP"
    codecs = list(media.codecs.values())
    assert codecs[0].encoding.upper() == encoding
    names = {c.encoding.upper() for c in codecs}
    assert {"PCMU", "PCMA", "G722", "OPUS", "G729", "TELEPHONE-EVENT", "CN"} <= names
    assert sdp.media_direction(0) is Direction.SENDRECV
    assert sdp.connection is not None and sdp.connection.address == "127.0.0.1"


def test_opus_offer_carries_the_requested_rate() -> None:
    sdp = bytes(build_offer(address="::1", port=4000, encoding="OPUS", sample_rate=8000))
    assert b"maxplaybackrate=8000" in sdp and b"IN IP6 ::1" in sdp


def test_answer_with_g722_and_dtmf() -> None:
    answer = parse_answer(
        _answer(
            "audio 5004 RTP/AVP 9 101",
            "a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n",
        )
    )
    assert answer.remote == ("127.0.0.1", 5004)
    assert answer.send.encoding == "G722" and answer.send.payload_type == 9
    assert answer.send.dtmf_payload_type == 101
    assert set(answer.receive) == {9, 101}
    assert answer.primary.encoding == "G722"


def test_answerer_preference_wins_and_unknown_codecs_are_skipped() -> None:
    answer = parse_answer(_answer("audio 5004 RTP/AVP 3 8 0", "a=rtpmap:3 GSM/8000\r\n"))
    assert answer.send.encoding == "PCMA"
    assert set(answer.receive) == {8, 0}
    assert answer.send.dtmf_payload_type is None


def test_hold_answer_has_no_remote() -> None:
    answer = parse_answer(_answer("audio 5004 RTP/AVP 0", "a=sendonly\r\n", c="IN IP4 0.0.0.0"))
    assert answer.remote is None
    assert answer.direction is Direction.SENDONLY


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"not sdp", "unreadable SDP"),
        (_answer("audio 0 RTP/AVP 0"), "no active RTP audio"),
        (_answer("video 5004 RTP/AVP 96"), "no active RTP audio"),
        (_answer("audio 5004 RTP/AVP 3", "a=rtpmap:3 GSM/8000\r\n"), "no codec in common"),
        (_answer("audio 5004 RTP/SAVP 0"), "RTP/SAVP"),
    ],
)
def test_unusable_answers_are_refused_with_488(body: bytes, match: str) -> None:
    with pytest.raises(OfferError, match=match) as info:
        parse_answer(body)
    assert info.value.status == 488
