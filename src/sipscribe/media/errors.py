"""Error types of the media layer.

Every parser and codec here raises exactly one error type of its own, all subclasses of
`ValueError` via `MediaError`, so the asyncio edge can count and drop a bad datagram with a
single ``except MediaError`` and never lets a foreign exception (``struct.error``,
``IndexError``, an FFmpeg error) escape into the event loop. Messages name the object and the
fault, e.g. ``"RTP packet has truncated CSRC list"``.
"""

from __future__ import annotations

__all__ = [
    "CodecError",
    "CryptoAttributeError",
    "DtmfError",
    "MediaError",
    "RtcpError",
    "RtpError",
    "SrtpAuthError",
    "SrtpError",
    "SrtpReplayError",
    "UnsupportedCodec",
]


class MediaError(ValueError):
    """Base of every media-layer error: bad input that the stream counts and drops."""


class RtpError(MediaError):
    """Not usable RTP (RFC 3550 §5.1); the stream counts it and drops it."""


class RtcpError(MediaError):
    """Not usable RTCP (RFC 3550 §6); the whole compound datagram is dropped."""


class DtmfError(MediaError):
    """A telephone-event payload (RFC 4733 §2.3) that cannot be read."""


class CodecError(MediaError):
    """A payload the decoder cannot decode; the caller conceals the frame instead."""


class UnsupportedCodec(MediaError):
    """No decoder for this SDP rtpmap (name, clock rate, channels)."""


class CryptoAttributeError(MediaError):
    """An SDES ``a=crypto`` attribute (RFC 4568 §9.1) we cannot parse or do not support."""


class SrtpError(MediaError):
    """An SRTP/SRTCP packet libsrtp refused for a reason other than those below."""


class SrtpAuthError(SrtpError):
    """The authentication tag did not verify: tampered, wrong key or not SRTP at all."""


class SrtpReplayError(SrtpError):
    """libsrtp's replay database has already seen this packet index (RFC 3711 §3.3.2)."""
