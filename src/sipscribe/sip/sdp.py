"""SDP (RFC 8866, formerly RFC 4566): parse an offer, write an answer.

`SessionDescription.parse(data)` turns a body into typed, frozen values; `bytes(sd)` writes it
back with CRLF line endings. A description written in the canonical form (CRLF, one space
between fields, RFC field order) round-trips byte for byte.

Leniency is a choice made per field, because recording clients are sloppy in known ways and a
recorder that rejects a call loses the recording:

* LF-only or mixed line endings, trailing whitespace and blank lines are accepted.
* Session-level lines may come in any order before the first ``m=``; they are written back in
  RFC order.
* A missing ``s=`` reads as ``s=-`` and a missing ``t=`` as ``t=0 0`` (the values RFC 8866
  recommends when there is nothing to say), so re-serialising always gives valid SDP.
* Unknown line types (``y=``, ``f=``...) are dropped, as RFC 8866 §5 allows.
* Bytes that are not UTF-8 (old devices write ISO-8859-1 names into ``s=``/``i=``) are read
  as ISO-8859-1 instead of failing.
* ``a=ptime``/``a=maxptime`` that are not numbers read as absent: they are advisory.

Strict where a wrong guess would break media: ``v=0`` first, an ``o=`` line, well-formed
``m=``/``c=``/``t=``/``b=`` lines, numeric ports and payload types, well-formed
``a=rtpmap``/``a=fmtp``/``a=rtcp`` on RTP media, no NUL or bare CR inside a line, and no
duplicated single-valued session fields. Every failure is an `SdpError` naming the line.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

__all__ = [
    "STATIC_PAYLOAD_TYPES",
    "Attribute",
    "Bandwidth",
    "Connection",
    "Direction",
    "Media",
    "Origin",
    "RtcpAttribute",
    "RtpCodec",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "Timing",
]


class SdpError(ValueError):
    """SDP we cannot read; `status` is the SIP response we owe the offerer (400: malformed)."""

    def __init__(self, reason: str, *, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class Direction(StrEnum):
    """Media direction attribute (RFC 8866 §6.7); from the sender's point of view."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"


class RtpCodec(NamedTuple):
    """What a payload type means: ``a=rtpmap`` (or the RFC 3551 static default) plus fmtp."""

    encoding: str
    clock_rate: int
    channels: int
    fmtp: str | None = None


# RFC 3551 §6 static payload types. G722 really samples at 16 kHz but is signalled as 8000
# (an RFC 1890 erratum kept for compatibility), so its RTP clock rate is 8000.
STATIC_PAYLOAD_TYPES: dict[int, RtpCodec] = {
    0: RtpCodec("PCMU", 8000, 1),
    3: RtpCodec("GSM", 8000, 1),
    4: RtpCodec("G723", 8000, 1),
    5: RtpCodec("DVI4", 8000, 1),
    6: RtpCodec("DVI4", 16000, 1),
    7: RtpCodec("LPC", 8000, 1),
    8: RtpCodec("PCMA", 8000, 1),
    9: RtpCodec("G722", 8000, 1),
    10: RtpCodec("L16", 44100, 2),
    11: RtpCodec("L16", 44100, 1),
    12: RtpCodec("QCELP", 8000, 1),
    13: RtpCodec("CN", 8000, 1),
    14: RtpCodec("MPA", 90000, 1),
    15: RtpCodec("G728", 8000, 1),
    16: RtpCodec("DVI4", 11025, 1),
    17: RtpCodec("DVI4", 22050, 1),
    18: RtpCodec("G729", 8000, 1),
    25: RtpCodec("CelB", 90000, 1),
    26: RtpCodec("JPEG", 90000, 1),
    28: RtpCodec("nv", 90000, 1),
    31: RtpCodec("H261", 90000, 1),
    32: RtpCodec("MPV", 90000, 1),
    33: RtpCodec("MP2T", 90000, 1),
    34: RtpCodec("H263", 90000, 1),
}

_DIGITS = re.compile(r"[0-9]{1,20}")
_DECIMAL = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,10})?")
_MAX_LINE_PREVIEW = 60


def _preview(text: str) -> str:
    return repr(text if len(text) <= _MAX_LINE_PREVIEW else text[:_MAX_LINE_PREVIEW] + "...")


def _uint(text: str, what: str) -> int:
    """A decimal field; ASCII digits only (``int()`` would take "+1", "1_0" and "²")."""
    if not _DIGITS.fullmatch(text):
        raise SdpError(f"SDP {what} {_preview(text)} is not a number")
    return int(text)


def _port(text: str, what: str) -> int:
    port = _uint(text, what)
    if port > 65535:
        raise SdpError(f"SDP {what} {port} is out of range")
    return port


@dataclass(frozen=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>``.

    `session_id` stays text (it only has to be unique and some devices send 20+ digits);
    `session_version` is a number because answers bump it (RFC 3264 §8).
    """

    username: str
    session_id: str
    session_version: int
    nettype: str
    addrtype: str
    address: str

    @classmethod
    def parse(cls, value: str) -> Origin:
        fields = value.split()
        if len(fields) != 6:
            raise SdpError(f"SDP o= line needs 6 fields: {_preview(value)}")
        username, session_id, version, nettype, addrtype, address = fields
        return cls(
            username, session_id, _uint(version, "o= session version"), nettype, addrtype, address
        )

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True)
class Connection:
    """``c=<nettype> <addrtype> <connection-address>``; the address may carry ``/ttl/n``."""

    nettype: str
    addrtype: str
    address: str

    @classmethod
    def parse(cls, value: str) -> Connection:
        fields = value.split()
        if len(fields) != 3:
            raise SdpError(f"SDP c= line needs 3 fields: {_preview(value)}")
        return cls(*fields)

    @property
    def host(self) -> str:
        """The address without a multicast ``/ttl`` or ``/count`` suffix."""
        return self.address.split("/", 1)[0]

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The address as an IP, or None for a host name (which RFC 8866 permits)."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    @property
    def is_hold(self) -> bool:
        """RFC 2543 hold: ``c=IN IP4 0.0.0.0`` (and its IPv6 cousin ``::``)."""
        ip = self.ip
        return ip is not None and ip.is_unspecified

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` (kbit/s for AS/CT, bit/s for TIAS)."""

    bwtype: str
    value: int

    @classmethod
    def parse(cls, value: str) -> Bandwidth:
        bwtype, sep, amount = value.partition(":")
        if not sep or not bwtype:
            raise SdpError(f"SDP b= line is not <type>:<bandwidth>: {_preview(value)}")
        return cls(bwtype, _uint(amount.strip(), "b= bandwidth"))

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.value}"


@dataclass(frozen=True)
class Timing:
    """``t=<start> <stop>`` (NTP seconds; 0 0 is unbounded) and its ``r=`` lines, kept raw."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str) -> Timing:
        fields = value.split()
        if len(fields) != 2:
            raise SdpError(f"SDP t= line needs 2 fields: {_preview(value)}")
        return cls(_uint(fields[0], "t= start time"), _uint(fields[1], "t= stop time"))


@dataclass(frozen=True)
class Attribute:
    """``a=<name>`` (a flag) or ``a=<name>:<value>``; order is kept, meaning is looked up."""

    name: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Attribute:
        name, sep, value = text.partition(":")
        if not name:
            raise SdpError(f"SDP a= line has an empty attribute name: {_preview(text)}")
        return cls(name, value if sep else None)

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True)
class RtpMap:
    """``a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`` (RFC 8866 §6.6)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse(cls, value: str) -> RtpMap:
        pt_text, _, rest = value.strip().partition(" ")
        payload_type = _payload_type(pt_text, "a=rtpmap payload type")
        parts = rest.strip().split("/")
        if len(parts) not in (2, 3) or not parts[0]:
            raise SdpError(f"SDP a=rtpmap is not <pt> <encoding>/<rate>: {_preview(value)}")
        clock_rate = _uint(parts[1], "a=rtpmap clock rate")
        if clock_rate == 0:
            raise SdpError(f"SDP a=rtpmap clock rate is zero: {_preview(value)}")
        channels = _uint(parts[2], "a=rtpmap channels") if len(parts) == 3 else None
        return cls(payload_type, parts[0], clock_rate, channels)


@dataclass(frozen=True)
class RtcpAttribute:
    """``a=rtcp:<port> [<nettype> <addrtype> <address>]`` (RFC 3605)."""

    port: int
    nettype: str | None = None
    addrtype: str | None = None
    address: str | None = None

    @classmethod
    def parse(cls, value: str) -> RtcpAttribute:
        fields = value.split()
        if len(fields) not in (1, 4):
            raise SdpError(f"SDP a=rtcp is not <port> [IN IP4 <address>]: {_preview(value)}")
        port = _port(fields[0], "a=rtcp port")
        if len(fields) == 1:
            return cls(port)
        return cls(port, fields[1], fields[2], fields[3])


def _payload_type(text: str, what: str) -> int:
    value = _uint(text, what)
    if value > 127:
        raise SdpError(f"SDP {what} {value} is over 127")
    return value


def _decimal(text: str | None) -> float | None:
    if text is None or not _DECIMAL.fullmatch(text.strip()):
        return None
    return float(text)


class _Attributes:
    """Lookups shared by session and media level; both hold an ``attributes`` tuple."""

    attributes: tuple[Attribute, ...]

    def get(self, name: str) -> str | None:
        """Value of the first ``a=<name>`` (case-insensitive); "" for a flag; None if absent."""
        lowered = name.lower()
        for attribute in self.attributes:
            if attribute.name.lower() == lowered:
                return "" if attribute.value is None else attribute.value
        return None

    def get_all(self, name: str) -> tuple[str, ...]:
        """Values of every ``a=<name>``, in order."""
        lowered = name.lower()
        return tuple(
            "" if a.value is None else a.value for a in self.attributes if a.name.lower() == lowered
        )

    def has(self, name: str) -> bool:
        return self.get(name) is not None

    @property
    def direction(self) -> Direction | None:
        """The direction attribute at this level only (None: not stated here)."""
        for attribute in self.attributes:
            if attribute.value is None:
                try:
                    return Direction(attribute.name.lower())
                except ValueError:
                    continue
        return None


_RTP_PROTO = re.compile(r"(?:^|/)RTP/", re.IGNORECASE)


@dataclass(frozen=True)
class Media(_Attributes):
    """One media description: ``m=`` and its ``i=``, ``c=``, ``b=``, ``k=``, ``a=`` lines."""

    kind: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    information: str | None = None
    connections: tuple[Connection, ...] = ()
    bandwidths: tuple[Bandwidth, ...] = ()
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()

    @classmethod
    def parse_media_line(cls, value: str) -> Media:
        """Parse the ``m=`` value alone: ``<media> <port>[/<count>] <proto> <fmt> ...``."""
        fields = value.split()
        if len(fields) < 3:
            raise SdpError(f"SDP m= line needs media, port and proto: {_preview(value)}")
        kind, port_text, proto, *formats = fields
        port_part, slash, count_part = port_text.partition("/")
        port = _port(port_part, "m= line port")
        port_count = _uint(count_part, "m= line port count") if slash else None
        if not formats and port != 0:
            raise SdpError(f"SDP m= line has no formats: {_preview(value)}")
        if _RTP_PROTO.search(proto):
            for fmt in formats:
                _payload_type(fmt, "m= line payload type")
        return cls(kind, port, proto, tuple(formats), port_count)

    @property
    def is_rtp(self) -> bool:
        """RTP-based transport (RTP/AVP, RTP/SAVP, RTP/AVPF, RTP/SAVPF, UDP/TLS/RTP/SAVP...)."""
        return bool(_RTP_PROTO.search(self.proto))

    @property
    def is_secure(self) -> bool:
        """SRTP profile (SAVP or SAVPF), keyed by SDES or DTLS."""
        return self.proto.upper().endswith(("/SAVP", "/SAVPF"))

    @property
    def payload_types(self) -> tuple[int, ...]:
        """The format list as RTP payload types ((): not RTP)."""
        return tuple(int(f) for f in self.formats) if self.is_rtp else ()

    @property
    def rtpmaps(self) -> dict[int, RtpMap]:
        """Explicit ``a=rtpmap`` lines by payload type (the first wins if repeated)."""
        maps: dict[int, RtpMap] = {}
        for value in self.get_all("rtpmap"):
            rtpmap = RtpMap.parse(value)
            maps.setdefault(rtpmap.payload_type, rtpmap)
        return maps

    @property
    def fmtps(self) -> dict[str, str]:
        """``a=fmtp:<format> <parameters>`` by format (the first wins if repeated)."""
        result: dict[str, str] = {}
        for value in self.get_all("fmtp"):
            fmt, _, params = value.strip().partition(" ")
            if not fmt:
                raise SdpError(f"SDP a=fmtp has no format: {_preview(value)}")
            if self.is_rtp:
                _payload_type(fmt, "a=fmtp payload type")
            result.setdefault(fmt, params.strip())
        return result

    @property
    def codecs(self) -> dict[int, RtpCodec]:
        """Every payload type we can name, in m-line order: rtpmap, else the static default.

        A dynamic payload type without ``a=rtpmap`` means nothing and is left out.
        """
        rtpmaps = self.rtpmaps
        fmtps = self.fmtps
        result: dict[int, RtpCodec] = {}
        for pt in self.payload_types:
            if pt in result:
                continue
            rtpmap = rtpmaps.get(pt)
            if rtpmap is not None:
                channels = rtpmap.channels if rtpmap.channels is not None else 1
                codec = RtpCodec(rtpmap.encoding, rtpmap.clock_rate, channels)
            elif pt in STATIC_PAYLOAD_TYPES:
                codec = STATIC_PAYLOAD_TYPES[pt]
            else:
                continue
            result[pt] = codec._replace(fmtp=fmtps.get(str(pt)))
        return result

    @property
    def label(self) -> str | None:
        """``a=label`` (RFC 4574): how SIPREC metadata names this stream."""
        return self.get("label")

    @property
    def rtcp(self) -> RtcpAttribute | None:
        value = self.get("rtcp")
        return None if value is None else RtcpAttribute.parse(value)

    @property
    def rtcp_mux(self) -> bool:
        return self.has("rtcp-mux")

    @property
    def crypto(self) -> tuple[str, ...]:
        """Raw ``a=crypto`` values (RFC 4568 SDES), in preference order."""
        return self.get_all("crypto")

    @property
    def ptime(self) -> float | None:
        return _decimal(self.get("ptime"))

    @property
    def maxptime(self) -> float | None:
        return _decimal(self.get("maxptime"))

    def lines(self) -> Iterator[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        yield " ".join(["m=" + self.kind, port, self.proto, *self.formats])
        if self.information is not None:
            yield f"i={self.information}"
        for connection in self.connections:
            yield f"c={connection}"
        for bandwidth in self.bandwidths:
            yield f"b={bandwidth}"
        if self.key is not None:
            yield f"k={self.key}"
        for attribute in self.attributes:
            yield f"a={attribute}"


def _default_origin() -> Origin:
    return Origin("-", "0", 0, "IN", "IP4", "0.0.0.0")


@dataclass(frozen=True)
class SessionDescription(_Attributes):
    """A whole SDP body. Build one with `parse()` or the constructor; write it with `bytes()`."""

    origin: Origin = field(default_factory=_default_origin)
    name: str = "-"
    information: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    timings: tuple[Timing, ...] = (Timing(),)
    zone: str | None = None
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()
    media: tuple[Media, ...] = ()
    version: int = 0

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        """Parse an SDP body; raises `SdpError` naming the line and fault."""
        return _Parser(_decode(data)).parse()

    def media_connection(self, index: int) -> Connection | None:
        """The connection for m-line `index`: its own first ``c=``, else the session's."""
        media = self.media[index]
        return media.connections[0] if media.connections else self.connection

    def media_direction(self, index: int) -> Direction:
        """Direction of m-line `index`: media level overrides session, default sendrecv."""
        return self.media[index].direction or self.direction or Direction.SENDRECV

    def lines(self) -> Iterator[str]:
        yield f"v={self.version}"
        yield f"o={self.origin}"
        yield f"s={self.name}"
        if self.information is not None:
            yield f"i={self.information}"
        if self.uri is not None:
            yield f"u={self.uri}"
        for email in self.emails:
            yield f"e={email}"
        for phone in self.phones:
            yield f"p={phone}"
        if self.connection is not None:
            yield f"c={self.connection}"
        for bandwidth in self.bandwidths:
            yield f"b={bandwidth}"
        for timing in self.timings:
            yield f"t={timing.start} {timing.stop}"
            for repeat in timing.repeats:
                yield f"r={repeat}"
        if self.zone is not None:
            yield f"z={self.zone}"
        if self.key is not None:
            yield f"k={self.key}"
        for attribute in self.attributes:
            yield f"a={attribute}"
        for media in self.media:
            yield from media.lines()

    def __str__(self) -> str:
        return "".join(line + "\r\n" for line in self.lines())

    def __bytes__(self) -> bytes:
        return str(self).encode("utf-8")


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("iso-8859-1")


@dataclass
class _MediaBuilder:
    """The ``m=`` line seen so far and the lines under it, until the next ``m=``."""

    head: Media
    information: list[str] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    bandwidths: list[Bandwidth] = field(default_factory=list)
    key: list[str] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)

    def build(self) -> Media:
        media = Media(
            kind=self.head.kind,
            port=self.head.port,
            proto=self.head.proto,
            formats=self.head.formats,
            port_count=self.head.port_count,
            information=self.information[0] if self.information else None,
            connections=tuple(self.connections),
            bandwidths=tuple(self.bandwidths),
            key=self.key[0] if self.key else None,
            attributes=tuple(self.attributes),
        )
        # Read the typed attributes once so that a parsed description never raises later, deep
        # in the answer or media code, for a line we could have rejected here.
        if media.is_rtp:
            media.rtpmaps  # noqa: B018
            media.fmtps  # noqa: B018
        media.rtcp  # noqa: B018
        return media


_SINGLE_SESSION_FIELDS = frozenset("oscuizk")


class _Parser:
    """One pass over the lines: session fields until the first ``m=``, then media fields."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.seen: set[str] = set()
        self.origin: Origin | None = None
        self.name = "-"
        self.information: str | None = None
        self.uri: str | None = None
        self.zone: str | None = None
        self.key: str | None = None
        self.connection: Connection | None = None
        self.emails: list[str] = []
        self.phones: list[str] = []
        self.bandwidths: list[Bandwidth] = []
        self.timings: list[Timing] = []
        self.attributes: list[Attribute] = []
        self.media: list[Media] = []
        self.current: _MediaBuilder | None = None

    def _lines(self) -> Iterator[tuple[int, str, str]]:
        for number, raw in enumerate(self.text.split("\n"), start=1):
            line = raw.rstrip(" \t\r")
            if not line:
                continue
            if "\r" in line or "\x00" in line:
                raise SdpError(f"SDP line {number} contains a control character")
            if len(line) < 2 or line[1] != "=":
                raise SdpError(f"SDP line {number} is not <type>=<value>: {_preview(line)}")
            yield number, line[0], line[2:]

    def parse(self) -> SessionDescription:
        lines = self._lines()
        first = next(lines, None)
        if first is None:
            raise SdpError("SDP is empty")
        number, kind, value = first
        if kind != "v":
            raise SdpError(f"SDP does not start with v=: line {number} is {kind}=")
        if value.strip() != "0":
            raise SdpError(f"SDP version {_preview(value)} is not 0")
        for number, kind, value in lines:
            if kind == "m":
                self._finish_media()
                self.current = _MediaBuilder(Media.parse_media_line(value))
            elif self.current is not None:
                self._media_line(self.current, number, kind, value)
            else:
                self._session_line(number, kind, value)
        self._finish_media()
        if self.origin is None:
            raise SdpError("SDP has no o= line")
        return SessionDescription(
            origin=self.origin,
            name=self.name,
            information=self.information,
            uri=self.uri,
            emails=tuple(self.emails),
            phones=tuple(self.phones),
            connection=self.connection,
            bandwidths=tuple(self.bandwidths),
            timings=tuple(self.timings) or (Timing(),),
            zone=self.zone,
            key=self.key,
            attributes=tuple(self.attributes),
            media=tuple(self.media),
        )

    def _session_line(self, number: int, kind: str, value: str) -> None:
        if kind in _SINGLE_SESSION_FIELDS:
            if kind in self.seen:
                raise SdpError(f"SDP line {number} is a second session-level {kind}= line")
            self.seen.add(kind)
        if kind == "o":
            self.origin = Origin.parse(value)
        elif kind == "s":
            self.name = value
        elif kind == "c":
            self.connection = Connection.parse(value)
        elif kind == "i":
            self.information = value
        elif kind == "u":
            self.uri = value
        elif kind == "z":
            self.zone = value
        elif kind == "k":
            self.key = value
        elif kind == "e":
            self.emails.append(value)
        elif kind == "p":
            self.phones.append(value)
        elif kind == "b":
            self.bandwidths.append(Bandwidth.parse(value))
        elif kind == "t":
            self.timings.append(Timing.parse(value))
        elif kind == "r":
            if not self.timings:
                raise SdpError(f"SDP line {number} is an r= line before any t= line")
            last = self.timings[-1]
            self.timings[-1] = Timing(last.start, last.stop, (*last.repeats, value))
        elif kind == "a":
            self.attributes.append(Attribute.parse(value))
        elif kind == "v":
            raise SdpError(f"SDP line {number} is a second v= line")
        # Any other letter is an extension we do not understand: RFC 8866 §5 lets us drop it.

    def _media_line(self, media: _MediaBuilder, number: int, kind: str, value: str) -> None:
        if kind == "a":
            media.attributes.append(Attribute.parse(value))
        elif kind == "c":
            media.connections.append(Connection.parse(value))
        elif kind == "b":
            media.bandwidths.append(Bandwidth.parse(value))
        elif kind in ("i", "k"):
            target = media.information if kind == "i" else media.key
            if target:
                raise SdpError(f"SDP line {number} is a second {kind}= line in one media section")
            target.append(value)
        elif kind in ("v", "o", "s", "u", "e", "p", "t", "r", "z"):
            raise SdpError(f"SDP line {number}: {kind}= is not allowed in a media section")

    def _finish_media(self) -> None:
        if self.current is not None:
            self.media.append(self.current.build())
            self.current = None
