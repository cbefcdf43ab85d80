"""SDP for dialling out: our offer, and what the far end's answer means for both directions.

We offer one audio stream, ``sendrecv``: the configured codec first, then every other codec
we decode, telephone-event and comfort noise. Whatever the answer picks, we decode what it
sends us and send silence and DTMF in its first accepted audio codec (RFC 3264 §6.1: the
answerer's first format is its preference).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sipscribe.media.sender import SendConfig
from sipscribe.media.stream import PayloadFormat
from sipscribe.sip.sdp import (
    Attribute,
    Connection,
    Direction,
    Media,
    Origin,
    SdpError,
    SessionDescription,
)

__all__ = [
    "ENCODINGS",
    "AnsweredMedia",
    "OfferError",
    "build_answer",
    "build_offer",
    "parse_answer",
]


@dataclass(frozen=True)
class _Offered:
    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None


#: Everything we can decode, by the API's encoding name, with our payload types.
_AUDIO: dict[str, _Offered] = {
    "PCMU": _Offered(0, "PCMU", 8000),
    "PCMA": _Offered(8, "PCMA", 8000),
    "G722": _Offered(9, "G722", 8000),  # 16 kHz audio, 8000 RTP clock (RFC 3551)
    "OPUS": _Offered(111, "opus", 48000, 2, "useinbandfec=1; maxplaybackrate=16000"),
    "G729": _Offered(18, "G729", 8000, 1, "annexb=yes"),
}
#: Encodings the API accepts as the preferred one, with the audio rates each can carry.
ENCODINGS: dict[str, tuple[int, ...]] = {
    "PCMU": (8000,),
    "PCMA": (8000,),
    "G722": (16000,),
    "OPUS": (8000, 16000, 48000),
}
_DTMF_PT = 101
_DTMF_PT_48K = 102
_CN_PT = 13


class OfferError(ValueError):
    """The far end's answer cannot be used; ``status`` is the SIP status to end with."""

    def __init__(self, reason: str, status: int = 488) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def build_offer(
    *,
    address: str,
    port: int,
    encoding: str = "PCMU",
    sample_rate: int | None = None,
    session_id: str | None = None,
    version: int = 1,
) -> SessionDescription:
    """Our offer: ``encoding`` first, the other decodable codecs after it."""
    first = _AUDIO[encoding.upper()]
    order = [first, *(c for c in _AUDIO.values() if c is not first)]
    attrs: list[Attribute] = []
    formats: list[str] = []
    for codec in order:
        formats.append(str(codec.payload_type))
        channels = f"/{codec.channels}" if codec.channels != 1 else ""
        attrs.append(
            Attribute(
                "rtpmap", f"{codec.payload_type} {codec.encoding}/{codec.clock_rate}{channels}"
            )
        )
        fmtp = codec.fmtp
        if codec.encoding == "opus" and sample_rate:
            fmtp = f"useinbandfec=1; maxplaybackrate={sample_rate}"
        if fmtp:
            attrs.append(Attribute("fmtp", f"{codec.payload_type} {fmtp}"))
    formats += [str(_DTMF_PT), str(_DTMF_PT_48K), str(_CN_PT)]
    attrs += [
        Attribute("rtpmap", f"{_DTMF_PT} telephone-event/8000"),
        Attribute("fmtp", f"{_DTMF_PT} 0-16"),
        Attribute("rtpmap", f"{_DTMF_PT_48K} telephone-event/48000"),
        Attribute("fmtp", f"{_DTMF_PT_48K} 0-16"),
        Attribute("rtpmap", f"{_CN_PT} CN/8000"),
        Attribute("ptime", "20"),
        Attribute(Direction.SENDRECV.value),
    ]
    addrtype = "IP6" if ":" in address else "IP4"
    sid = session_id or str(secrets.randbelow(10**12))
    return SessionDescription(
        origin=Origin("sipscribe", sid, version, "IN", addrtype, address),
        name="sipscribe",
        connection=Connection("IN", addrtype, address),
        media=(Media("audio", port, "RTP/AVP", tuple(formats), attributes=tuple(attrs)),),
    )


@dataclass(frozen=True)
class AnsweredMedia:
    """The negotiated stream: where to send, what we receive, how we send."""

    remote: tuple[str, int] | None  # None while the far end holds (c=0.0.0.0 / port 0)
    receive: dict[int, PayloadFormat]
    send: SendConfig
    direction: Direction

    @property
    def primary(self) -> PayloadFormat:
        return self.receive[self.send.payload_type]


def parse_answer(body: bytes) -> AnsweredMedia:
    """Read the far end's SDP answer (or re-offer); raises :class:`OfferError` if unusable."""
    try:
        sdp = SessionDescription.parse(body)
    except SdpError as exc:
        raise OfferError(f"unreadable SDP answer: {exc}", 488) from exc
    index = next(
        (i for i, m in enumerate(sdp.media) if m.kind == "audio" and m.is_rtp and m.port), None
    )
    if index is None:
        raise OfferError("the SDP answer has no active RTP audio stream", 488)
    media = sdp.media[index]
    if media.is_secure:
        raise OfferError(f"the answer uses {media.proto}; we offered RTP/AVP", 488)
    receive: dict[int, PayloadFormat] = {}
    send_pt: int | None = None
    dtmf: tuple[int, int] | None = None
    cn: int | None = None
    for pt, codec in media.codecs.items():
        name = codec.encoding.upper()
        if name == "TELEPHONE-EVENT":
            receive[pt] = PayloadFormat("telephone-event", codec.clock_rate, 1, codec.fmtp)
            if dtmf is None:
                dtmf = (pt, codec.clock_rate)
            continue
        if name == "CN":
            receive[pt] = PayloadFormat("CN", codec.clock_rate)
            cn = pt
            continue
        if name not in _AUDIO:
            continue
        receive[pt] = PayloadFormat(codec.encoding, codec.clock_rate, codec.channels, codec.fmtp)
        if send_pt is None:
            send_pt = pt
    if send_pt is None:
        offered = ", ".join(f"{c.encoding}/{c.clock_rate}" for c in media.codecs.values())
        raise OfferError(f"no codec in common (the answer offers {offered or 'none'})", 488)
    chosen = receive[send_pt]
    connection = sdp.media_connection(index)
    remote: tuple[str, int] | None = None
    if connection is not None and not connection.is_hold:
        remote = (connection.host, media.port)
    ptime = media.ptime
    send = SendConfig(
        payload_type=send_pt,
        encoding=chosen.encoding,
        clock_rate=chosen.clock_rate,
        ptime_ms=int(ptime) if ptime and 10 <= ptime <= 60 and int(ptime) % 10 == 0 else 20,
        dtmf_payload_type=dtmf[0] if dtmf else None,
        dtmf_clock_rate=dtmf[1] if dtmf else 8000,
        cn_payload_type=cn,
    )
    return AnsweredMedia(remote, receive, send, sdp.media_direction(index))


#: Our direction in an answer, given the far end's in its offer (RFC 3264 §6.1).
_ANSWER_DIRECTION = {
    Direction.SENDRECV: Direction.SENDRECV,
    Direction.SENDONLY: Direction.RECVONLY,
    Direction.RECVONLY: Direction.SENDONLY,
    Direction.INACTIVE: Direction.INACTIVE,
}


def build_answer(
    offer: AnsweredMedia,
    *,
    address: str,
    port: int,
    session_id: str,
    version: int,
) -> SessionDescription:
    """Our answer to the far end's re-offer: only payload types it offered that we take,
    with its numbering, and the mirror of its direction (hold: ``sendonly`` → ``recvonly``)."""
    attrs: list[Attribute] = []
    formats: list[str] = []
    for pt, fmt in offer.receive.items():
        formats.append(str(pt))
        channels = f"/{fmt.channels}" if fmt.channels != 1 else ""
        attrs.append(Attribute("rtpmap", f"{pt} {fmt.encoding}/{fmt.clock_rate}{channels}"))
        if fmt.fmtp:
            attrs.append(Attribute("fmtp", f"{pt} {fmt.fmtp}"))
    attrs += [
        Attribute("ptime", str(offer.send.ptime_ms)),
        Attribute(_ANSWER_DIRECTION[offer.direction].value),
    ]
    addrtype = "IP6" if ":" in address else "IP4"
    return SessionDescription(
        origin=Origin("sipscribe", session_id, version, "IN", addrtype, address),
        name="sipscribe",
        connection=Connection("IN", addrtype, address),
        media=(Media("audio", port, "RTP/AVP", tuple(formats), attributes=tuple(attrs)),),
    )
