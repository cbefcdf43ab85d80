"""RTP packets (RFC 3550 §5.1) with header extensions (RFC 3550 §5.3.1, RFC 8285).

``RtpPacket.parse(data)`` reads one datagram; ``bytes(packet)`` writes it back. Parsing checks
exactly what decides whether the payload can be found (version, CSRC list, extension length,
padding) and raises `RtpError` for anything else wrong with those; it does not look inside the
extension block, because a packet whose RFC 8285 elements are malformed still carries good
audio. `HeaderExtension.elements()` reads (and validates) the elements on demand.

``is_rtcp(data)`` demultiplexes RTP and RTCP sharing one port (rtcp-mux, RFC 5761 §4).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import RtpError

__all__ = [
    "ONE_BYTE_PROFILE",
    "RTP_HEADER_SIZE",
    "ExtensionElement",
    "HeaderExtension",
    "RtpError",
    "RtpPacket",
    "is_rtcp",
]

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
#: "defined by profile" value of an RFC 8285 one-byte header extension block.
ONE_BYTE_PROFILE = 0xBEDE
#: RFC 8285 two-byte blocks use 0x100 in the top 12 bits, "appbits" in the low 4.
TWO_BYTE_PROFILE = 0x1000

_HEADER = struct.Struct("!BBHLL")
_EXT_HEADER = struct.Struct("!HH")


def is_rtcp(data: bytes) -> bool:
    """True if a datagram on an rtcp-mux port is RTCP rather than RTP (RFC 5761 §4).

    RTCP packet types 192-223 land, with the marker bit masked off, on 64-95, a range RTP
    payload types must avoid when multiplexed; anything shorter than two bytes is not RTCP.
    """
    return len(data) >= 2 and 64 <= (data[1] & 0x7F) <= 95


@dataclass(frozen=True, slots=True)
class ExtensionElement:
    """One RFC 8285 header extension element: local ``id`` and its ``value`` bytes."""

    id: int
    value: bytes


@dataclass(frozen=True, slots=True)
class HeaderExtension:
    """The header extension block of an RTP packet, kept raw for byte-exact round trips.

    ``profile`` is the 16-bit "defined by profile" field and ``data`` the extension body (a
    multiple of 4 bytes). When ``profile`` is 0xBEDE (one-byte) or 0x100X (two-byte, RFC 8285
    §4.2/§4.3), `elements()` decodes the elements.
    """

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.profile <= 0xFFFF:
            raise RtpError(f"RTP header extension has invalid profile {self.profile}")
        if len(self.data) % 4:
            raise RtpError("RTP header extension length is not a multiple of 4 bytes")
        if len(self.data) > 0xFFFF * 4:
            raise RtpError("RTP header extension is too long")

    @property
    def is_one_byte(self) -> bool:
        """True for an RFC 8285 one-byte-header block."""
        return self.profile == ONE_BYTE_PROFILE

    @property
    def is_two_byte(self) -> bool:
        """True for an RFC 8285 two-byte-header block (any appbits)."""
        return self.profile & 0xFFF0 == TWO_BYTE_PROFILE

    @property
    def appbits(self) -> int:
        """The 4 application bits of a two-byte block (RFC 8285 §4.3), else 0."""
        return self.profile & 0x000F if self.is_two_byte else 0

    def elements(self) -> tuple[ExtensionElement, ...]:
        """Decode the RFC 8285 elements; padding bytes are skipped.

        Raises `RtpError` if the block is a generic (non-8285) extension or an element runs
        past the end. A one-byte element with id 15 ends processing (RFC 8285 §4.2).
        """
        data = self.data
        out: list[ExtensionElement] = []
        pos = 0
        if self.is_one_byte:
            while pos < len(data):
                byte = data[pos]
                if byte == 0:
                    pos += 1
                    continue
                ext_id, length = byte >> 4, (byte & 0x0F) + 1
                if ext_id == 15:
                    break
                pos += 1
                if pos + length > len(data):
                    raise RtpError(f"RTP header extension element {ext_id} is truncated")
                out.append(ExtensionElement(ext_id, data[pos : pos + length]))
                pos += length
        elif self.is_two_byte:
            while pos < len(data):
                ext_id = data[pos]
                if ext_id == 0:
                    pos += 1
                    continue
                if pos + 2 > len(data):
                    raise RtpError(f"RTP header extension element {ext_id} is truncated")
                length = data[pos + 1]
                pos += 2
                if pos + length > len(data):
                    raise RtpError(f"RTP header extension element {ext_id} is truncated")
                out.append(ExtensionElement(ext_id, data[pos : pos + length]))
                pos += length
        else:
            raise RtpError(f"RTP header extension profile 0x{self.profile:04x} is not RFC 8285")
        return tuple(out)

    def get(self, ext_id: int) -> bytes | None:
        """Value of the first element with local id ``ext_id``, or None."""
        for element in self.elements():
            if element.id == ext_id:
                return element.value
        return None

    @classmethod
    def from_elements(
        cls,
        elements: Iterable[ExtensionElement | tuple[int, bytes]],
        *,
        two_byte: bool | None = None,
        appbits: int = 0,
    ) -> HeaderExtension:
        """Build an RFC 8285 block, one-byte form when every element allows it.

        The one-byte form takes ids 1-14 and values of 1-16 bytes; the two-byte form ids
        1-255 and values of 0-255 bytes. The block is zero-padded to 32 bits.
        """
        items = [e if isinstance(e, ExtensionElement) else ExtensionElement(*e) for e in elements]
        fits_one = all(1 <= e.id <= 14 and 1 <= len(e.value) <= 16 for e in items)
        if two_byte is None:
            two_byte = not fits_one
        body = bytearray()
        if two_byte:
            if not 0 <= appbits <= 15:
                raise RtpError(f"RTP header extension has invalid appbits {appbits}")
            for e in items:
                if not 1 <= e.id <= 255 or len(e.value) > 255:
                    raise RtpError(f"RTP header extension element {e.id} does not fit two-byte")
                body += bytes((e.id, len(e.value))) + e.value
            profile = TWO_BYTE_PROFILE | appbits
        else:
            if not fits_one:
                raise RtpError("RTP header extension elements do not fit the one-byte form")
            for e in items:
                body.append((e.id << 4) | (len(e.value) - 1))
                body += e.value
            profile = ONE_BYTE_PROFILE
        body += bytes(-len(body) % 4)
        return cls(profile, bytes(body))


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 §5.1).

    ``padding_size`` is the length of the RTP padding including its count byte (0: the P bit is
    clear); padding contents are not kept, and are written back as zeros then the count.
    """

    payload_type: int = 0
    sequence_number: int = 0
    timestamp: int = 0
    ssrc: int = 0
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: HeaderExtension | None = None
    payload: bytes = b""
    padding_size: int = field(default=0)

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise RtpError(f"RTP packet has invalid payload type {self.payload_type}")
        if not 0 <= self.sequence_number <= 0xFFFF:
            raise RtpError(f"RTP packet has invalid sequence number {self.sequence_number}")
        if not 0 <= self.timestamp <= 0xFFFFFFFF:
            raise RtpError(f"RTP packet has invalid timestamp {self.timestamp}")
        if not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise RtpError(f"RTP packet has invalid SSRC {self.ssrc}")
        if len(self.csrcs) > 15:
            raise RtpError("RTP packet has more than 15 CSRCs")
        if any(not 0 <= c <= 0xFFFFFFFF for c in self.csrcs):
            raise RtpError("RTP packet has an invalid CSRC")
        if not 0 <= self.padding_size <= 255:
            raise RtpError(f"RTP packet has invalid padding size {self.padding_size}")

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Read one RTP datagram; raises `RtpError` if it is not usable RTP."""
        end = len(data)
        if end < RTP_HEADER_SIZE:
            raise RtpError("RTP packet length is less than 12 bytes")
        first, second, seq, timestamp, ssrc = _HEADER.unpack_from(data)
        version = first >> 6
        if version != RTP_VERSION:
            raise RtpError(f"RTP packet has invalid version {version}")
        pos = RTP_HEADER_SIZE
        csrc_count = first & 0x0F
        if pos + 4 * csrc_count > end:
            raise RtpError("RTP packet has truncated CSRC list")
        csrcs = struct.unpack_from(f"!{csrc_count}L", data, pos)
        pos += 4 * csrc_count
        extension = None
        if first & 0x10:
            if pos + 4 > end:
                raise RtpError("RTP packet has truncated extension header")
            profile, words = _EXT_HEADER.unpack_from(data, pos)
            pos += 4
            if pos + 4 * words > end:
                raise RtpError("RTP packet has truncated extension data")
            extension = HeaderExtension(profile, bytes(data[pos : pos + 4 * words]))
            pos += 4 * words
        padding_size = 0
        if first & 0x20:
            padding_size = data[end - 1] if end > pos else 0
            if padding_size == 0 or pos + padding_size > end:
                raise RtpError("RTP packet has invalid padding length")
        return cls(
            payload_type=second & 0x7F,
            sequence_number=seq,
            timestamp=timestamp,
            ssrc=ssrc,
            marker=bool(second & 0x80),
            csrcs=csrcs,
            extension=extension,
            payload=bytes(data[pos : end - padding_size]),
            padding_size=padding_size,
        )

    def __bytes__(self) -> bytes:
        first = (RTP_VERSION << 6) | len(self.csrcs)
        if self.padding_size:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        parts = [
            _HEADER.pack(
                first,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number,
                self.timestamp,
                self.ssrc,
            )
        ]
        if self.csrcs:
            parts.append(struct.pack(f"!{len(self.csrcs)}L", *self.csrcs))
        if self.extension is not None:
            ext = self.extension
            parts.append(_EXT_HEADER.pack(ext.profile, len(ext.data) // 4))
            parts.append(ext.data)
        parts.append(self.payload)
        if self.padding_size:
            parts.append(bytes(self.padding_size - 1) + bytes((self.padding_size,)))
        return b"".join(parts)
