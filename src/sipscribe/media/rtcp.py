"""RTCP compound packets (RFC 3550 §6): SR, RR, SDES, BYE and APP.

A recorder mostly *reads* RTCP: sender reports map RTP timestamps to wall-clock (NTP) time,
which is what lets two legs of a call be aligned, and a BYE says a source has left. Packet
types we do not interpret (RTPFB/PSFB feedback, XR, ...) come back as `RtcpUnknown` instead of
failing the whole compound packet. ``RtcpPacket.parse_compound(data)`` never raises anything
but `RtcpError`; each packet type writes itself back with ``bytes(packet)``.

Padding (the P bit, RFC 3550 §6.4.1) is accepted on any packet of the compound and dropped.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from .errors import RtcpError

__all__ = [
    "RTCP_APP",
    "RTCP_BYE",
    "RTCP_RR",
    "RTCP_SDES",
    "RTCP_SR",
    "ReportBlock",
    "RtcpApp",
    "RtcpBye",
    "RtcpError",
    "RtcpPacket",
    "RtcpReceiverReport",
    "RtcpSdes",
    "RtcpSenderReport",
    "RtcpUnknown",
    "SdesChunk",
    "SdesItem",
    "serialize_compound",
]

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204

#: SDES item types (RFC 3550 §6.5).
SDES_CNAME, SDES_NAME, SDES_EMAIL, SDES_PHONE, SDES_LOC, SDES_TOOL, SDES_NOTE, SDES_PRIV = range(
    1, 9
)

_HEADER = struct.Struct("!BBH")
_SENDER_INFO = struct.Struct("!LQLLL")  # SSRC, NTP timestamp, RTP timestamp, packets, octets
_REPORT_BLOCK = struct.Struct("!LBBHLLLL")  # SSRC, fraction, lost (24 bit split), ...


def _check_u32(value: int, what: str) -> None:
    if not 0 <= value <= 0xFFFFFFFF:
        raise RtcpError(f"RTCP {what} {value} is out of range")


def _check_count(n: int, what: str) -> None:
    if n > 31:
        raise RtcpError(f"RTCP {what} has more than 31 entries")


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """Reception report about one source (RFC 3550 §6.4.1)."""

    ssrc: int
    fraction_lost: int  # fraction lost since the last report, in 1/256
    packets_lost: int  # cumulative, signed 24 bit (duplicates can make it negative)
    highest_sequence: int  # extended highest sequence number received
    jitter: int  # interarrival jitter, timestamp units
    last_sr: int  # middle 32 bits of the NTP timestamp of the last SR received
    delay_since_last_sr: int  # in 1/65536 seconds

    def __post_init__(self) -> None:
        for value, what in (
            (self.ssrc, "report block SSRC"),
            (self.highest_sequence, "report block highest sequence"),
            (self.jitter, "report block jitter"),
            (self.last_sr, "report block LSR"),
            (self.delay_since_last_sr, "report block DLSR"),
        ):
            _check_u32(value, what)
        if not 0 <= self.fraction_lost <= 255:
            raise RtcpError(f"RTCP report block fraction lost {self.fraction_lost} is out of range")
        if not -(1 << 23) <= self.packets_lost < (1 << 23):
            raise RtcpError(f"RTCP report block packets lost {self.packets_lost} is out of range")

    @classmethod
    def parse(cls, data: bytes, pos: int = 0) -> ReportBlock:
        """Read 24 bytes at ``pos``; the caller has checked they are there."""
        ssrc, fraction, lost_hi, lost_lo, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(
            data, pos
        )
        lost = (lost_hi << 16) | lost_lo
        if lost & 0x800000:
            lost -= 1 << 24
        return cls(ssrc, fraction, lost, highest, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        lost = self.packets_lost & 0xFFFFFF
        return _REPORT_BLOCK.pack(
            self.ssrc,
            self.fraction_lost,
            lost >> 16,
            lost & 0xFFFF,
            self.highest_sequence,
            self.jitter,
            self.last_sr,
            self.delay_since_last_sr,
        )


def _parse_reports(body: bytes, pos: int, count: int, what: str) -> tuple[ReportBlock, ...]:
    if pos + 24 * count > len(body):
        raise RtcpError(f"RTCP {what} has truncated report blocks")
    return tuple(ReportBlock.parse(body, pos + 24 * i) for i in range(count))


class RtcpPacket:
    """Base of the RTCP packet types; ``parse_compound`` reads a whole datagram."""

    __slots__ = ()
    packet_type: ClassVar[int]

    @staticmethod
    def parse_compound(data: bytes) -> list[RtcpPacket]:
        """Read every packet of an RTCP compound datagram (RFC 3550 §6.1).

        Raises `RtcpError` (and nothing else) when any packet is malformed: one bad length
        field makes the rest of the datagram unreadable, so the whole datagram is refused.
        """
        packets: list[RtcpPacket] = []
        pos = 0
        end = len(data)
        if end == 0:
            raise RtcpError("RTCP compound packet is empty")
        while pos < end:
            if pos + 4 > end:
                raise RtcpError("RTCP packet length is less than 4 bytes")
            first, packet_type, words = _HEADER.unpack_from(data, pos)
            version = first >> 6
            if version != 2:
                raise RtcpError(f"RTCP packet has invalid version {version}")
            length = 4 * (words + 1)
            if pos + length > end:
                raise RtcpError("RTCP packet length field exceeds the datagram")
            body = bytes(data[pos + 4 : pos + length])
            if first & 0x20:
                padding = body[-1] if body else 0
                if padding == 0 or padding > len(body):
                    raise RtcpError("RTCP packet has invalid padding length")
                body = body[:-padding]
            count = first & 0x1F
            parser = _PARSERS.get(packet_type)
            if parser is None:
                packets.append(RtcpUnknown(packet_type, count, body))
            else:
                packets.append(parser(count, body))
            pos += length
        return packets

    def _header(self, count: int, body_length: int) -> bytes:
        # body_length is a multiple of 4 by construction of SR, RR, SDES and BYE.
        return _HEADER.pack(0x80 | count, self.packet_type, body_length // 4)


def _with_header(packet_type: int, count: int, body: bytes) -> bytes:
    """Header plus body, with RTCP padding if the body is not 32-bit aligned."""
    first = 0x80 | count
    pad = -len(body) % 4
    if pad:
        first |= 0x20
        body = body + bytes(pad - 1) + bytes((pad,))
    return _HEADER.pack(first, packet_type, len(body) // 4) + body


@dataclass(frozen=True, slots=True)
class RtcpSenderReport(RtcpPacket):
    """SR (RFC 3550 §6.4.1): what a sender sent, and when in wall-clock terms."""

    packet_type: ClassVar[int] = RTCP_SR
    ssrc: int
    ntp_timestamp: int  # 64-bit NTP time: seconds since 1900 << 32 | fraction
    rtp_timestamp: int  # the same instant in the stream's RTP clock
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""  # profile-specific extension, a multiple of 4 bytes

    def __post_init__(self) -> None:
        for value, what in (
            (self.ssrc, "SR SSRC"),
            (self.rtp_timestamp, "SR RTP timestamp"),
            (self.packet_count, "SR packet count"),
            (self.octet_count, "SR octet count"),
        ):
            _check_u32(value, what)
        if not 0 <= self.ntp_timestamp <= 0xFFFFFFFFFFFFFFFF:
            raise RtcpError(f"RTCP SR NTP timestamp {self.ntp_timestamp} is out of range")
        _check_count(len(self.reports), "SR")
        if len(self.extension) % 4:
            raise RtcpError("RTCP SR extension is not a multiple of 4 bytes")

    @classmethod
    def _parse(cls, count: int, body: bytes) -> RtcpSenderReport:
        if len(body) < 24:
            raise RtcpError("RTCP SR is truncated")
        ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body)
        reports = _parse_reports(body, 24, count, "SR")
        extension = body[24 + 24 * count :]
        if len(extension) % 4:
            raise RtcpError("RTCP SR extension is not a multiple of 4 bytes")
        return cls(ssrc, ntp, rtp_ts, packets, octets, reports, extension)

    def __bytes__(self) -> bytes:
        body = b"".join(
            [
                _SENDER_INFO.pack(
                    self.ssrc,
                    self.ntp_timestamp,
                    self.rtp_timestamp,
                    self.packet_count,
                    self.octet_count,
                ),
                *(bytes(r) for r in self.reports),
                self.extension,
            ]
        )
        return self._header(len(self.reports), len(body)) + body


@dataclass(frozen=True, slots=True)
class RtcpReceiverReport(RtcpPacket):
    """RR (RFC 3550 §6.4.2): reception reports from a participant that does not send."""

    packet_type: ClassVar[int] = RTCP_RR
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def __post_init__(self) -> None:
        _check_u32(self.ssrc, "RR SSRC")
        _check_count(len(self.reports), "RR")
        if len(self.extension) % 4:
            raise RtcpError("RTCP RR extension is not a multiple of 4 bytes")

    @classmethod
    def _parse(cls, count: int, body: bytes) -> RtcpReceiverReport:
        if len(body) < 4:
            raise RtcpError("RTCP RR is truncated")
        (ssrc,) = struct.unpack_from("!L", body)
        reports = _parse_reports(body, 4, count, "RR")
        extension = body[4 + 24 * count :]
        if len(extension) % 4:
            raise RtcpError("RTCP RR extension is not a multiple of 4 bytes")
        return cls(ssrc, reports, extension)

    def __bytes__(self) -> bytes:
        body = b"".join(
            [struct.pack("!L", self.ssrc), *(bytes(r) for r in self.reports), self.extension]
        )
        return self._header(len(self.reports), len(body)) + body


@dataclass(frozen=True, slots=True)
class SdesItem:
    """One SDES item (RFC 3550 §6.5): ``type`` 1-8 (CNAME=1 ...) and raw ``value``."""

    type: int
    value: bytes

    def __post_init__(self) -> None:
        if not 1 <= self.type <= 255:
            raise RtcpError(f"RTCP SDES item type {self.type} is out of range")
        if len(self.value) > 255:
            raise RtcpError("RTCP SDES item is longer than 255 bytes")

    @property
    def text(self) -> str:
        """The value as text (UTF-8, undecodable bytes replaced)."""
        return self.value.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """The SDES items about one source."""

    ssrc: int
    items: tuple[SdesItem, ...] = ()

    def __post_init__(self) -> None:
        _check_u32(self.ssrc, "SDES chunk SSRC")

    def __bytes__(self) -> bytes:
        out = bytearray(struct.pack("!L", self.ssrc))
        for item in self.items:
            out += bytes((item.type, len(item.value))) + item.value
        out.append(0)  # end of item list, then pad the chunk to 32 bits
        out += bytes(-len(out) % 4)
        return bytes(out)


@dataclass(frozen=True, slots=True)
class RtcpSdes(RtcpPacket):
    """SDES (RFC 3550 §6.5): source descriptions, the CNAME above all."""

    packet_type: ClassVar[int] = RTCP_SDES
    chunks: tuple[SdesChunk, ...] = ()

    def __post_init__(self) -> None:
        _check_count(len(self.chunks), "SDES")

    def cname(self, ssrc: int) -> str | None:
        """The CNAME given for ``ssrc``, if any."""
        for chunk in self.chunks:
            if chunk.ssrc == ssrc:
                for item in chunk.items:
                    if item.type == SDES_CNAME:
                        return item.text
        return None

    @classmethod
    def _parse(cls, count: int, body: bytes) -> RtcpSdes:
        chunks = []
        pos = 0
        end = len(body)
        for _ in range(count):
            if pos + 4 > end:
                raise RtcpError("RTCP SDES chunk is truncated")
            (ssrc,) = struct.unpack_from("!L", body, pos)
            pos += 4
            items = []
            while True:
                if pos >= end:
                    raise RtcpError("RTCP SDES chunk is truncated")
                item_type = body[pos]
                if item_type == 0:
                    pos += 1
                    pos += -pos % 4
                    break
                if pos + 2 > end or pos + 2 + body[pos + 1] > end:
                    raise RtcpError("RTCP SDES item is truncated")
                length = body[pos + 1]
                items.append(SdesItem(item_type, body[pos + 2 : pos + 2 + length]))
                pos += 2 + length
            chunks.append(SdesChunk(ssrc, tuple(items)))
        return cls(tuple(chunks))

    def __bytes__(self) -> bytes:
        body = b"".join(bytes(c) for c in self.chunks)
        return self._header(len(self.chunks), len(body)) + body


@dataclass(frozen=True, slots=True)
class RtcpBye(RtcpPacket):
    """BYE (RFC 3550 §6.6): these sources have left, optionally with a reason."""

    packet_type: ClassVar[int] = RTCP_BYE
    sources: tuple[int, ...] = ()
    reason: bytes | None = None

    def __post_init__(self) -> None:
        _check_count(len(self.sources), "BYE")
        for ssrc in self.sources:
            _check_u32(ssrc, "BYE SSRC")
        if self.reason is not None and len(self.reason) > 255:
            raise RtcpError("RTCP BYE reason is longer than 255 bytes")

    @classmethod
    def _parse(cls, count: int, body: bytes) -> RtcpBye:
        if 4 * count > len(body):
            raise RtcpError("RTCP BYE has truncated source list")
        sources = struct.unpack_from(f"!{count}L", body)
        pos = 4 * count
        reason = None
        if pos < len(body):
            length = body[pos]
            if pos + 1 + length > len(body):
                raise RtcpError("RTCP BYE reason is truncated")
            reason = body[pos + 1 : pos + 1 + length]
        return cls(sources, reason)

    def __bytes__(self) -> bytes:
        body = bytearray(struct.pack(f"!{len(self.sources)}L", *self.sources))
        if self.reason is not None:
            body += bytes((len(self.reason),)) + self.reason
            body += bytes(-len(body) % 4)
        return self._header(len(self.sources), len(body)) + bytes(body)


@dataclass(frozen=True, slots=True)
class RtcpApp(RtcpPacket):
    """APP (RFC 3550 §6.7): application-defined; ``name`` is four ASCII bytes.

    ``data`` that is not a multiple of 4 bytes is written back with RTCP padding.
    """

    packet_type: ClassVar[int] = RTCP_APP
    subtype: int
    ssrc: int
    name: bytes
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.subtype <= 31:
            raise RtcpError(f"RTCP APP subtype {self.subtype} is out of range")
        _check_u32(self.ssrc, "APP SSRC")
        if len(self.name) != 4:
            raise RtcpError("RTCP APP name is not 4 bytes")
        if len(self.data) > 0xFFFF:
            raise RtcpError("RTCP APP data is too long")

    @classmethod
    def _parse(cls, count: int, body: bytes) -> RtcpApp:
        if len(body) < 8:
            raise RtcpError("RTCP APP is truncated")
        (ssrc,) = struct.unpack_from("!L", body)
        return cls(count, ssrc, body[4:8], body[8:])

    def __bytes__(self) -> bytes:
        body = struct.pack("!L", self.ssrc) + self.name + self.data
        return _with_header(self.packet_type, self.subtype, body)


@dataclass(frozen=True, slots=True)
class RtcpUnknown(RtcpPacket):
    """A packet type we do not interpret (feedback, XR, ...), kept as raw body bytes.

    A body that is not a multiple of 4 bytes (only possible after padding was removed) is
    written back with RTCP padding.
    """

    type: int
    count: int
    body: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.type <= 255:
            raise RtcpError(f"RTCP packet type {self.type} is out of range")
        if not 0 <= self.count <= 31:
            raise RtcpError(f"RTCP count field {self.count} is out of range")
        if len(self.body) > 0xFFFF:
            raise RtcpError("RTCP packet body is too long")

    def __bytes__(self) -> bytes:
        return _with_header(self.type, self.count, self.body)


_PARSERS = {
    RTCP_SR: RtcpSenderReport._parse,
    RTCP_RR: RtcpReceiverReport._parse,
    RTCP_SDES: RtcpSdes._parse,
    RTCP_BYE: RtcpBye._parse,
    RTCP_APP: RtcpApp._parse,
}


def serialize_compound(packets: Iterable[RtcpPacket]) -> bytes:
    """Write packets back to back as one compound datagram."""
    return b"".join(bytes(p) for p in packets)  # type: ignore[call-overload]
