"""DTMF as RTP telephone-events (RFC 4733): receive them once each, and produce them to send.

A telephone-event travels as a run of RTP packets that all carry the *start* timestamp of the
event: the first (marker bit set) and updates with a growing duration, then the end packet (E
bit), which senders transmit three times (RFC 4733 §2.5.1.4). Any of them may be lost,
duplicated or reordered. `DtmfReceiver` turns that into exactly one `DtmfEvent` per key press,
keyed by (SSRC, start timestamp):

* emitted when the first end packet arrives, with the longest duration seen;
* emitted by `DtmfReceiver.poll` with ``ended=False`` when no packet of a started event has
  arrived for ``timeout_ms`` (every end packet lost), or at once when the next event starts;
* later packets of an emitted event (the other end retransmissions) are ignored;
* a lost first packet costs nothing: every update carries the start timestamp and duration;
* long events that the sender splits into contiguous segments (RFC 4733 §2.5.1.3) are joined.

Digits never enter the audio path: the asyncio edge routes the telephone-event payload type to
a `DtmfReceiver` and never to the jitter buffer or a decoder, whose timing they would corrupt.

`encode_dtmf_events` and `DtmfSender` do the reverse, for dialling out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import DtmfError
from .rtp import RtpPacket
from .seqnum import uint16_add, uint32_add, uint32_diff

__all__ = [
    "EVENT_DIGITS",
    "DtmfError",
    "DtmfEvent",
    "DtmfPayload",
    "DtmfReceiver",
    "DtmfSender",
    "ScheduledPacket",
    "TelephoneEvent",
    "digit_to_event",
    "encode_dtmf_events",
    "parse_telephone_events",
]

#: RFC 4733 §3.2 event codes 0-16: DTMF digits, then hook flash as "!".
EVENT_DIGITS = "0123456789*#ABCD!"

_EVENT = struct.Struct("!BBH")


def digit_to_event(digit: str) -> int:
    """Event code of a DTMF digit: '0'-'9' → 0-9, '*' → 10, '#' → 11, 'A'-'D' → 12-15, '!' → 16."""
    index = EVENT_DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise DtmfError(f"DTMF digit {digit!r} is not one of 0-9 * # A-D !")
    return index


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One 4-byte telephone-event block (RFC 4733 §2.3)."""

    event: int  # 0-255; 0-16 are DTMF and flash
    end: bool  # E bit: the event has ended
    volume: int  # 0-63, power level in -dBm0
    duration: int  # timestamp units since the event's start timestamp

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise DtmfError(f"telephone-event code {self.event} is out of range")
        if not 0 <= self.volume <= 63:
            raise DtmfError(f"telephone-event volume {self.volume} is out of range")
        if not 0 <= self.duration <= 0xFFFF:
            raise DtmfError(f"telephone-event duration {self.duration} is out of range")

    @property
    def digit(self) -> str | None:
        """The DTMF digit ('0'-'9', '*', '#', 'A'-'D', '!' for flash), None for other tones."""
        return EVENT_DIGITS[self.event] if self.event < len(EVENT_DIGITS) else None

    def __bytes__(self) -> bytes:
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


def parse_telephone_events(payload: bytes) -> list[TelephoneEvent]:
    """Read the event blocks of a telephone-event payload (several if packed, §2.5.1.5)."""
    if not payload or len(payload) % 4:
        raise DtmfError(f"telephone-event payload length {len(payload)} is not a multiple of 4")
    out = []
    for pos in range(0, len(payload), 4):
        event, flags, duration = _EVENT.unpack_from(payload, pos)
        out.append(TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration))
    return out


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    """One key press, reported once."""

    digit: str  # '0'-'9', '*', '#', 'A'-'D', or '!' for hook flash
    ssrc: int
    start_timestamp: int  # RTP timestamp at which the tone started
    start_ms: float  # receive clock when the tone started (first packet's arrival − its duration)
    duration_ms: float
    volume: int  # -dBm0, from the last packet seen
    ended: bool  # False when no end packet came (timed out, or the next event began)


class _Track:
    """An event in progress. ``base`` sums the durations of finished long-event segments."""

    __slots__ = (
        "base",
        "event",
        "last_ms",
        "seg_duration",
        "seg_start",
        "ssrc",
        "start",
        "start_ms",
        "volume",
    )

    def __init__(self, ssrc: int, start: int, block: TelephoneEvent, now_ms: float, rate: int):
        self.ssrc = ssrc
        self.start = start
        self.seg_start = start
        self.seg_duration = block.duration
        self.base = 0
        self.event = block.event
        self.volume = block.volume
        self.start_ms = now_ms - block.duration * 1000.0 / rate
        self.last_ms = now_ms


class DtmfReceiver:
    """Sans-I/O RFC 4733 receiver: telephone-event packets in, one `DtmfEvent` per press out.

    ``clock_rate`` is the rtpmap clock of telephone-event (8000 nearly always; 48000 with Opus).
    Non-DTMF event codes (17-255: tones, line events) are ignored.
    """

    def __init__(self, clock_rate: int = 8000, *, timeout_ms: float = 500.0) -> None:
        self.clock_rate = clock_rate
        self.timeout_ms = timeout_ms
        self._active: dict[int, _Track] = {}  # by SSRC: one event in progress per source
        self._done: list[tuple[int, int]] = []  # (ssrc, segment start) already reported
        self.events = 0

    def receive(self, packet: RtpPacket, now_ms: float) -> list[DtmfEvent]:
        """Take one telephone-event packet; return the events it completed.

        Raises `DtmfError` if the payload is malformed.
        """
        blocks = parse_telephone_events(packet.payload)
        out: list[DtmfEvent] = []
        start = packet.timestamp
        for block in blocks:
            self._update(packet.ssrc, start, block, now_ms, out)
            start = uint32_add(start, block.duration)
        return out

    def poll(self, now_ms: float) -> list[DtmfEvent]:
        """Report events whose packets stopped without an end packet for ``timeout_ms``."""
        out = []
        for ssrc, track in list(self._active.items()):
            if now_ms - track.last_ms >= self.timeout_ms:
                del self._active[ssrc]
                out.append(self._finish(track, ended=False))
        return out

    def next_timer(self) -> float | None:
        """When `poll` next has something to do, or None when no event is in progress."""
        if not self._active:
            return None
        return min(t.last_ms for t in self._active.values()) + self.timeout_ms

    def flush(self) -> list[DtmfEvent]:
        """Report every event in progress (end of stream)."""
        out = [self._finish(t, ended=False) for t in self._active.values()]
        self._active.clear()
        return out

    def _update(
        self, ssrc: int, start: int, block: TelephoneEvent, now_ms: float, out: list[DtmfEvent]
    ) -> None:
        if (ssrc, start) in self._done or block.event >= len(EVENT_DIGITS):
            return
        track = self._active.get(ssrc)
        if track is not None and track.seg_start != start:
            continues = track.event == block.event and (
                uint32_diff(start, track.seg_start) == track.seg_duration
            )
            if continues:  # next segment of a long event (RFC 4733 §2.5.1.3)
                self._remember(ssrc, track.seg_start)
                track.base += track.seg_duration
                track.seg_start = start
                track.seg_duration = block.duration
            else:  # a new event began: the previous one lost its end packets
                del self._active[ssrc]
                out.append(self._finish(track, ended=False))
                track = None
        if track is None:
            track = self._active[ssrc] = _Track(ssrc, start, block, now_ms, self.clock_rate)
        track.seg_duration = max(track.seg_duration, block.duration)  # updates may reorder
        track.volume = block.volume
        track.last_ms = now_ms
        if block.end:
            del self._active[ssrc]
            out.append(self._finish(track, ended=True))

    def _remember(self, ssrc: int, start: int) -> None:
        self._done.append((ssrc, start))
        if len(self._done) > 32:
            del self._done[0]

    def _finish(self, track: _Track, *, ended: bool) -> DtmfEvent:
        self._remember(track.ssrc, track.seg_start)
        self.events += 1
        return DtmfEvent(
            digit=EVENT_DIGITS[track.event],
            ssrc=track.ssrc,
            start_timestamp=track.start,
            start_ms=track.start_ms,
            duration_ms=(track.base + track.seg_duration) * 1000.0 / self.clock_rate,
            volume=track.volume,
            ended=ended,
        )


@dataclass(frozen=True, slots=True)
class DtmfPayload:
    """One telephone-event packet to send, relative to the start of the digit string."""

    send_ms: float  # when to send it, after the start of the digit string
    timestamp_offset: int  # RTP timestamp minus that of the digit string's start
    marker: bool  # set on the first packet of each event
    payload: bytes


def encode_dtmf_events(
    digits: str,
    *,
    clock_rate: int = 8000,
    duration_ms: int = 100,
    pause_ms: int = 100,
    packet_ms: int = 20,
    volume: int = 10,
    end_repeats: int = 3,
) -> list[DtmfPayload]:
    """The RFC 4733 packet sequence for ``digits`` (e.g. "123#").

    Each digit lasts ``duration_ms`` and is followed by ``pause_ms`` of silence. A digit is
    sent as updates every ``packet_ms`` (the first with the marker bit, each carrying the
    duration so far) and an end packet repeated ``end_repeats`` times (§2.5.1.4).
    """
    if duration_ms <= 0 or packet_ms <= 0 or pause_ms < 0 or end_repeats < 1:
        raise DtmfError("DTMF duration, packet interval and repeats must be positive")
    duration = duration_ms * clock_rate // 1000
    if duration > 0xFFFF:
        raise DtmfError(f"DTMF duration {duration_ms} ms does not fit the 16-bit duration field")
    events = [digit_to_event(d) for d in digits]
    out = []
    step = packet_ms * clock_rate // 1000
    for index, event in enumerate(events):
        start_ms = index * (duration_ms + pause_ms)
        offset = start_ms * clock_rate // 1000
        elapsed = min(step, duration)
        first = True
        while elapsed < duration:
            block = TelephoneEvent(event, False, volume, elapsed)
            send = start_ms + elapsed * 1000.0 / clock_rate
            out.append(DtmfPayload(send, offset, first, bytes(block)))
            first = False
            elapsed += step
        end_block = bytes(TelephoneEvent(event, True, volume, duration))
        for repeat in range(end_repeats):
            send = start_ms + duration_ms + repeat * packet_ms
            out.append(DtmfPayload(send, offset, first and repeat == 0, end_block))
    return out


@dataclass(frozen=True, slots=True)
class ScheduledPacket:
    """An RTP packet and when to send it, on the caller's clock."""

    send_ms: float
    packet: RtpPacket


class DtmfSender:
    """Wraps `encode_dtmf_events` output into RTP packets for one outgoing stream.

    Sequence numbers continue the caller's stream (telephone-events share the audio SSRC and
    sequence space); the caller resumes audio at ``sequence_number + len(result)``.
    """

    def __init__(
        self,
        payload_type: int,
        ssrc: int,
        *,
        clock_rate: int = 8000,
        duration_ms: int = 100,
        pause_ms: int = 100,
        packet_ms: int = 20,
        volume: int = 10,
    ) -> None:
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.duration_ms = duration_ms
        self.pause_ms = pause_ms
        self.packet_ms = packet_ms
        self.volume = volume

    def packets(
        self, digits: str, *, sequence_number: int, timestamp: int, start_ms: float
    ) -> list[ScheduledPacket]:
        """RTP packets for ``digits``, the first event starting at RTP ``timestamp``."""
        items = encode_dtmf_events(
            digits,
            clock_rate=self.clock_rate,
            duration_ms=self.duration_ms,
            pause_ms=self.pause_ms,
            packet_ms=self.packet_ms,
            volume=self.volume,
        )
        out = []
        for i, item in enumerate(items):
            packet = RtpPacket(
                payload_type=self.payload_type,
                sequence_number=uint16_add(sequence_number, i),
                timestamp=uint32_add(timestamp, item.timestamp_offset),
                ssrc=self.ssrc,
                marker=item.marker,
                payload=item.payload,
            )
            out.append(ScheduledPacket(start_ms + item.send_ms, packet))
        return out
