"""Per-stream receive statistics, in the terms of RFC 3550 §6.4.1 where it has them.

One `StreamStats` belongs to one RTP stream (one m-line direction). The jitter buffer feeds it
as packets are pushed (packets, bytes, loss, duplicates, reordering, late arrivals, re-syncs,
interarrival jitter); the asyncio edge adds what only it sees (datagrams that failed to parse,
SRTP authentication and replay failures, decode errors, decoded audio duration, codec name).
``snapshot()`` returns plain JSON-able values for the API, logs and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .rtp import RtpPacket
from .seqnum import uint32_diff

__all__ = ["StreamStats"]


@dataclass(slots=True)
class StreamStats:
    """Counters and the jitter estimate of one received RTP stream.

    Loss accounting follows what the jitter buffer did, not RFC 3550's "expected minus
    received": ``lost`` counts the sequence numbers it gave up on and concealed, and a packet
    that turns up after that is counted in ``late`` (and stays counted in ``lost``).
    """

    clock_rate: int
    codec: str | None = None
    ssrc: int | None = None
    packets: int = 0  # RTP packets pushed, duplicates and late ones included
    bytes: int = 0  # payload octets of those packets (RTP headers excluded)
    lost: int = 0  # sequence numbers released as a gap
    duplicated: int = 0
    reordered: int = 0  # arrived out of order but in time, and used
    late: int = 0  # arrived after their slot was released; dropped
    resyncs: int = 0  # SSRC changes and sequence restarts
    invalid: int = 0  # datagrams that were not usable RTP
    auth_failures: int = 0  # SRTP authentication failures
    replayed: int = 0  # SRTP replay-protection rejections
    decode_errors: int = 0
    dtmf_events: int = 0
    audio_ms: float = 0.0  # decoded and concealed audio handed on
    jitter: float = 0.0  # RFC 3550 §6.4.1 estimate, in timestamp units
    _last_arrival: float | None = field(default=None, repr=False)
    _last_timestamp: int = field(default=0, repr=False)

    def record_arrival(self, packet: RtpPacket, now_ms: float) -> None:
        """Update the interarrival jitter with a packet received at ``now_ms``.

        J(i) = J(i-1) + (|D(i-1,i)| - J(i-1)) / 16, where D is the difference in transit time
        of consecutive packets, both sides in timestamp units (RFC 3550 §6.4.1, §A.8).
        `JitterBuffer.push` calls this for every packet it accepts; a second call for the same
        packet at the same time is ignored.
        """
        arrival = now_ms * self.clock_rate / 1000.0
        if arrival == self._last_arrival and packet.timestamp == self._last_timestamp:
            return  # the same packet recorded twice (JitterBuffer.push already records it)
        if self._last_arrival is not None:
            d = (arrival - self._last_arrival) - uint32_diff(packet.timestamp, self._last_timestamp)
            self.jitter += (abs(d) - self.jitter) / 16.0
        self._last_arrival = arrival
        self._last_timestamp = packet.timestamp

    def reset_jitter(self) -> None:
        """Start the jitter estimate afresh: a new source's timestamps are unrelated."""
        self._last_arrival = None
        self.jitter = 0.0

    def add_audio(self, samples: int, sample_rate: int) -> None:
        """Count ``samples`` of PCM at ``sample_rate`` handed on downstream."""
        self.audio_ms += samples * 1000.0 / sample_rate

    @property
    def jitter_ms(self) -> float:
        """The jitter estimate in milliseconds."""
        return self.jitter * 1000.0 / self.clock_rate

    def snapshot(self) -> dict[str, int | float | str | None]:
        """Plain values for the API and metrics; jitter both in timestamp units and in ms."""
        return {
            "codec": self.codec,
            "ssrc": self.ssrc,
            "clock_rate": self.clock_rate,
            "packets": self.packets,
            "bytes": self.bytes,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "late": self.late,
            "resyncs": self.resyncs,
            "invalid": self.invalid,
            "auth_failures": self.auth_failures,
            "replayed": self.replayed,
            "decode_errors": self.decode_errors,
            "dtmf_events": self.dtmf_events,
            "jitter": round(self.jitter, 3),
            "jitter_ms": round(self.jitter_ms, 3),
            "audio_ms": round(self.audio_ms, 3),
        }
