"""The SDP answer of a recording server (RFC 3264 offer/answer, RFC 7866 §8).

One m-line per offered m-line, in the same order (RFC 3264 §6). An audio m-line we can record
is answered ``recvonly`` (``inactive`` if the offer is ``inactive`` or ``recvonly``: the client
sends nothing then) on a local port we were given; anything else is refused with port 0.

Every offered payload type we decode is listed, telephone-event and CN included, with its
rtpmap and fmtp: recording clients (OpenSIPS with rtpengine, for one) abort the recording when
the answer drops a payload type they intend to send.

SRTP is SDES only (RFC 4568): for an ``RTP/SAVP`` offer we take the first ``a=crypto`` whose
suite we support (AES_CM_128_HMAC_SHA1_80 or _32, no MKI, no session parameters) and answer
with the same tag and a fresh key of our own. DTLS-SRTP offers are refused.

The function is pure apart from `random_bytes` (keys, session id), which tests replace.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass

from sipscribe.sip.sdp import (
    Attribute,
    Connection,
    Direction,
    Media,
    Origin,
    RtpCodec,
    SessionDescription,
    Timing,
)
from sipscribe.siprec.errors import AnswerError

__all__ = [
    "DEFAULT_CODECS",
    "SUPPORTED_CRYPTO_SUITES",
    "AcceptedStream",
    "Answer",
    "AnswerError",
    "RefusedStream",
    "SdesCrypto",
    "build_answer",
]

DEFAULT_CODECS: frozenset[str] = frozenset(
    {"PCMU", "PCMA", "G722", "G729", "opus", "telephone-event", "CN"}
)
"""Encoding names the media layer decodes (telephone-event and CN are accepted, not audio)."""

SUPPORTED_CRYPTO_SUITES: tuple[str, ...] = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")
_KEY_LENGTH = 30  # AES-128 master key (16) + master salt (14), RFC 4568 §6.2.1
_AUXILIARY = frozenset({"telephone-event", "cn"})
_PROTOS = frozenset({"RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF"})
_TAG = re.compile(r"[0-9]{1,9}")

PortSource = Callable[[], int] | Iterable[int]


@dataclass(frozen=True)
class SdesCrypto:
    """The SDES keys of one stream: the offerer's (to decrypt) and ours (sent in the answer)."""

    tag: int
    suite: str
    remote_key: bytes  # master key || master salt, as offered
    local_key: bytes
    remote_attribute: str  # the offered a=crypto value, for the media layer's SDES parser

    @property
    def local_attribute(self) -> str:
        """Our ``a=crypto`` value: same tag and suite, our key."""
        return f"{self.tag} {self.suite} inline:{base64.b64encode(self.local_key).decode()}"


@dataclass(frozen=True)
class AcceptedStream:
    """What the media layer needs to receive one m-line."""

    mline_index: int
    label: str | None
    local_port: int
    remote_address: str | None  # None: no address, or the 0.0.0.0 hold address
    remote_port: int
    remote_rtcp_address: str | None
    remote_rtcp_port: int | None
    rtcp_mux: bool
    payload_types: dict[int, RtpCodec]
    crypto: SdesCrypto | None
    direction: Direction  # ours: recvonly or inactive
    offered_direction: Direction
    proto: str


@dataclass(frozen=True)
class RefusedStream:
    """An offered m-line answered with port 0, and why."""

    mline_index: int
    label: str | None
    reason: str


@dataclass(frozen=True)
class Answer:
    """The answer SDP and, per m-line, what we accepted or refused."""

    sdp: SessionDescription
    accepted: tuple[AcceptedStream, ...]
    refused: tuple[RefusedStream, ...]

    def __bytes__(self) -> bytes:
        return bytes(self.sdp)

    def stream(self, mline_index: int) -> AcceptedStream | None:
        return next((s for s in self.accepted if s.mline_index == mline_index), None)


def _port_iterator(ports: PortSource) -> Iterator[int]:
    if callable(ports):
        while True:
            yield ports()
    else:
        yield from ports


def _parse_offered_crypto(value: str) -> tuple[int, str, bytes] | None:
    """(tag, suite, key) of an ``a=crypto`` we can use, or None.

    Usable: a supported suite, one ``inline:`` key of the right length, an optional lifetime,
    no MKI (``|1:4``) and no session parameters, which RFC 4568 §6.3 forbids us to ignore.
    """
    fields = value.split()
    if len(fields) != 3 or not _TAG.fullmatch(fields[0]):
        return None
    tag, suite, key_params = int(fields[0]), fields[1].upper(), fields[2]
    if suite not in SUPPORTED_CRYPTO_SUITES or ";" in key_params:
        return None
    method, _, info = key_params.partition(":")
    if method.lower() != "inline":
        return None
    key_text, *extras = info.split("|")
    if any(":" in extra for extra in extras) or len(extras) > 1:
        return None
    try:
        key = base64.b64decode(key_text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(key) != _KEY_LENGTH:
        return None
    return tag, suite, key


def _answer_direction(offered: Direction) -> Direction:
    if offered in (Direction.SENDONLY, Direction.SENDRECV):
        return Direction.RECVONLY
    return Direction.INACTIVE


def _rtpmap(pt: int, codec: RtpCodec) -> str:
    channels = f"/{codec.channels}" if codec.channels > 1 else ""
    return f"{pt} {codec.encoding}/{codec.clock_rate}{channels}"


def _refuse_reason(
    offer: SessionDescription, index: int, codecs: frozenset[str]
) -> str | dict[int, RtpCodec]:
    """Why m-line `index` cannot be recorded, or the payload types we accept on it."""
    media = offer.media[index]
    if media.kind.lower() != "audio":
        return f"{media.kind} is not audio"
    if media.port == 0:
        return "the offer disabled it (port 0)"
    if media.proto.upper() not in _PROTOS:
        if media.proto.upper().startswith("UDP/TLS/"):
            return f"{media.proto} (DTLS-SRTP) is not supported"
        return f"transport {media.proto} is not supported"
    offered = media.codecs
    accepted = {pt: c for pt, c in offered.items() if c.encoding.lower() in codecs}
    if not any(c.encoding.lower() not in _AUXILIARY for c in accepted.values()):
        names = ", ".join(f"{c.encoding}/{c.clock_rate}" for c in offered.values()) or "none"
        return f"no codec we decode (offered: {names})"
    return accepted


def build_answer(
    offer: SessionDescription,
    *,
    address: str,
    ports: PortSource,
    codecs: Collection[str] = DEFAULT_CODECS,
    previous: Answer | None = None,
    session_id: int | None = None,
    random_bytes: Callable[[int], bytes] = os.urandom,
    username: str = "sipscribe",
    session_name: str = "sipscribe",
) -> Answer:
    """Answer `offer`, receiving on `address` and ports taken from `ports` as needed.

    `ports` is a callable returning the next allocated local RTP port, or an iterable of them;
    one is taken per accepted m-line, RTCP goes to port + 1 unless the offer asks for rtcp-mux.
    With `previous` (our last answer in this dialog, for a re-INVITE) the o= line keeps its
    session id and bumps its version (RFC 3264 §8), and m-lines accepted before keep their
    local port and, for the same crypto tag and suite, our key.

    Raises `AnswerError` (488) if the offer has streams to record but we can record none; an
    offer whose every m-line has port 0 is answered all port 0.
    """
    if not offer.media:
        raise AnswerError("offer has no m-lines")
    wanted = frozenset(c.lower() for c in codecs)
    port_source = _port_iterator(ports)
    addrtype = "IP6" if ":" in address else "IP4"
    session_fingerprint = offer.has("fingerprint")
    media_lines: list[Media] = []
    accepted: list[AcceptedStream] = []
    refused: list[RefusedStream] = []

    for index, media in enumerate(offer.media):
        label = media.label
        verdict = _refuse_reason(offer, index, wanted)
        crypto: SdesCrypto | None = None
        if isinstance(verdict, dict) and media.is_secure:
            before = previous.stream(index) if previous is not None else None
            crypto = _choose_crypto(media, before, random_bytes)
            if crypto is None:
                dtls = session_fingerprint or media.has("fingerprint")
                verdict = (
                    "DTLS-SRTP (a=fingerprint) is not supported"
                    if dtls
                    else "no usable a=crypto (we take AES_CM_128_HMAC_SHA1_80/_32 "
                    "inline keys without MKI or session parameters)"
                )
        if isinstance(verdict, str):
            refused.append(RefusedStream(index, label, verdict))
            attributes = (Attribute("label", label),) if label is not None else ()
            media_lines.append(
                Media(media.kind, 0, media.proto, media.formats, attributes=attributes)
            )
            continue

        local_port = _local_port(previous, index, port_source)
        offered_direction = offer.media_direction(index)
        direction = _answer_direction(offered_direction)
        attributes_list: list[Attribute] = []
        if label is not None:
            attributes_list.append(Attribute("label", label))
        for pt, codec in verdict.items():
            attributes_list.append(Attribute("rtpmap", _rtpmap(pt, codec)))
            if codec.fmtp is not None:
                attributes_list.append(Attribute("fmtp", f"{pt} {codec.fmtp}"))
        if media.rtcp_mux:
            attributes_list.append(Attribute("rtcp-mux"))
        else:
            attributes_list.append(Attribute("rtcp", str(local_port + 1)))
        if crypto is not None:
            attributes_list.append(Attribute("crypto", crypto.local_attribute))
        attributes_list.append(Attribute(direction.value))
        media_lines.append(
            Media(
                "audio",
                local_port,
                media.proto,
                tuple(str(pt) for pt in verdict),
                attributes=tuple(attributes_list),
            )
        )

        connection = offer.media_connection(index)
        remote = None if connection is None or connection.is_hold else connection.host
        rtcp = media.rtcp
        if media.rtcp_mux:
            rtcp_port: int | None = media.port
        elif rtcp is not None:
            rtcp_port = rtcp.port
        else:
            rtcp_port = media.port + 1
        accepted.append(
            AcceptedStream(
                mline_index=index,
                label=label,
                local_port=local_port,
                remote_address=remote,
                remote_port=media.port,
                remote_rtcp_address=(rtcp.address if rtcp is not None and rtcp.address else remote),
                remote_rtcp_port=rtcp_port,
                rtcp_mux=media.rtcp_mux,
                payload_types=verdict,
                crypto=crypto,
                direction=direction,
                offered_direction=offered_direction,
                proto=media.proto,
            )
        )

    if not accepted and any(m.port != 0 for m in offer.media):
        reasons = "; ".join(f"m-line {r.mline_index}: {r.reason}" for r in refused)
        raise AnswerError(f"offer has no stream we can record ({reasons})")

    if previous is not None:
        old = previous.sdp.origin
        origin = Origin(
            old.username, old.session_id, old.session_version + 1, "IN", addrtype, address
        )
    else:
        sid = (
            session_id if session_id is not None else (int.from_bytes(random_bytes(8), "big") >> 2)
        )
        origin = Origin(username, str(sid), 1, "IN", addrtype, address)
    sdp = SessionDescription(
        origin=origin,
        name=session_name,
        connection=Connection("IN", addrtype, address),
        timings=(Timing(0, 0),),
        media=tuple(media_lines),
    )
    return Answer(sdp, tuple(accepted), tuple(refused))


def _local_port(previous: Answer | None, index: int, ports: Iterator[int]) -> int:
    before = previous.stream(index) if previous is not None else None
    if before is not None:
        return before.local_port
    try:
        port = next(ports)
    except StopIteration:
        raise AnswerError("no local RTP port left for the answer", status=503) from None
    if not 0 < port < 65535:
        raise AnswerError(f"local RTP port {port} is out of range", status=500)
    return port


def _choose_crypto(
    media: Media, before: AcceptedStream | None, random_bytes: Callable[[int], bytes]
) -> SdesCrypto | None:
    for value in media.crypto:
        parsed = _parse_offered_crypto(value)
        if parsed is None:
            continue
        tag, suite, remote_key = parsed
        if (
            before is not None
            and before.crypto is not None
            and (before.crypto.tag, before.crypto.suite) == (tag, suite)
        ):
            local_key = before.crypto.local_key
        else:
            local_key = random_bytes(_KEY_LENGTH)
        return SdesCrypto(tag, suite, remote_key, local_key, value)
    return None
