"""Jitter buffer for one received RTP stream: reorder, de-duplicate, account for loss.

Theory of operation
-------------------
The buffer is sans-I/O: it has no timer of its own. The caller passes the receive clock as
``now_ms`` to `JitterBuffer.push` and `JitterBuffer.poll`, and asks `JitterBuffer.next_timer`
when to poll next. Every call returns the items that became ready, strictly in sequence order:
`RtpPacket` objects to decode and `Gap` markers to conceal.

*Release rule.* A packet whose sequence number is the next expected one is released at once,
together with any held packets that follow it without a hole, so an in-order stream passes
through with no added latency. A packet after a hole is held until the hole fills or until it
has waited ``depth_ms`` since it arrived; then the missing sequence numbers are given up as a
``Gap(reason="loss")`` and the packet is released. No packet waits longer than ``depth_ms``
(after the first: the very first packets wait ``depth_ms`` so that a stream whose opening
packets arrive reordered still starts at the lowest one). More than ``max_packets`` held
packets force the oldest out early: that is the hard memory bound.

*What does not fit.* A packet older than the next expected one is a duplicate (its slot was
released) or late (its slot was given up as lost); both are counted and dropped. A packet too
far from the current sequence (more than ``max_dropout`` ahead or ``max_misorder`` behind, as in
RFC 3550 §A.1) or from another SSRC is put *on probation*: when a second packet follows it
(same SSRC, sequence number within ±4) before the current stream sends anything more, the sender
really did restart or change source, so the buffer releases what it held of the old sequence,
emits ``Gap(reason="resync")`` and carries on with the new one — never a gap of thousands of
packets. A lone stray packet expires from probation and is dropped; a packet of the current
stream clears the probation, so a foreign source interleaved with the real one cannot take
over; and stragglers of the stream just left (sequence numbers at or before its last released
one) are counted as late instead of starting a switch back.

*Gap sizes.* Gaps are measured in RTP timestamp units from the last released packet to the next
one, minus the duration of the last packet. That duration is not in the RTP header, so the
buffer estimates it from the timestamp step between consecutive sequence numbers (``ptime_ms``
until it has seen one; later changes are adopted after two identical steps; a step onto a
packet with the marker bit, which starts a talkspurt, is never used). The same rule turns a
timestamp jump with contiguous sequence numbers — silence suppression, RFC 3551 §4.1 — into
``Gap(reason="dtx")``. A jump larger than ``max_gap_ms``, or a timestamp going backwards, is a
discontinuity, reported as ``Gap(reason="resync", samples=0)``.

Telephone-event (RFC 4733) packets must not be pushed here: their timestamps mark the start of
the event, not of the packet. The edge routes that payload type to `dtmf.DtmfReceiver`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .rtp import RtpPacket
from .seqnum import ExtendedSequence, uint16_diff, uint32_diff
from .stats import StreamStats

__all__ = ["Gap", "GapReason", "JitterBuffer", "Released"]

GapReason = Literal["loss", "dtx", "resync"]

#: How many released/lost sequence numbers are remembered to tell duplicates from late packets.
_HISTORY = 1024
#: Consistent packets needed to accept a new SSRC or a restarted sequence (RFC 3550 §A.1).
_PROBATION = 2
#: How far apart (in sequence numbers) packets on probation may be to count as one stream.
_PROBATION_SPAN = 4


@dataclass(frozen=True, slots=True)
class Gap:
    """Audio missing before the next released packet.

    ``packets`` is how many sequence numbers were lost (0 for ``dtx`` and ``resync``);
    ``samples`` how much audio that was, in RTP timestamp units (0 for ``resync``, where the
    timestamps on either side are unrelated). A ``resync`` gap also tells the decoder that
    what follows comes from a restarted or different source.
    """

    packets: int
    samples: int
    reason: GapReason

    def output_samples(self, *, clock_rate: int, sample_rate: int) -> int:
        """The gap in samples of a decoder's output rate (G.722: 8000 → 16000, ×2)."""
        return self.samples * sample_rate // clock_rate


Released = RtpPacket | Gap


class JitterBuffer:
    """Reorders one RTP stream and releases packets in sequence order with gap markers.

    ``clock_rate`` is the RTP clock of the stream (8000 for PCMU and G.722, 48000 for Opus);
    ``depth_ms`` is the longest a packet waits behind a hole; ``max_packets`` bounds memory.
    The counters live in ``stats`` (a `StreamStats`, created if not given).
    """

    def __init__(
        self,
        clock_rate: int,
        depth_ms: int = 60,
        max_packets: int = 64,
        *,
        ptime_ms: int = 20,
        max_dropout: int = 3000,
        max_misorder: int = 100,
        max_gap_ms: int = 60_000,
        stats: StreamStats | None = None,
    ) -> None:
        if clock_rate <= 0:
            raise ValueError(f"jitter buffer clock rate {clock_rate} is not positive")
        if depth_ms < 0 or max_packets < 1 or ptime_ms <= 0:
            raise ValueError("jitter buffer depth, capacity and ptime must be positive")
        self.clock_rate = clock_rate
        self.depth_ms = depth_ms
        self.max_packets = max_packets
        self.max_dropout = max_dropout
        self.max_misorder = max_misorder
        self.stats = stats if stats is not None else StreamStats(clock_rate)
        self._default_frame = max(1, clock_rate * ptime_ms // 1000)
        self._max_gap = clock_rate * max_gap_ms // 1000
        self._probation_ms = max(2 * depth_ms, 200)
        self._ssrc: int | None = None
        self._seq = ExtendedSequence()
        self._next: int | None = None  # extended seq to release next; None: not started
        self._held: dict[int, tuple[RtpPacket, float]] = {}
        self._last: tuple[int, int] | None = None  # (extended seq, timestamp) last released
        self._frame = self._default_frame
        self._frame_known = False
        self._frame_candidate = 0
        self._history: list[int | None] = [None] * _HISTORY
        self._probation: list[tuple[RtpPacket, float]] = []
        self._retired: tuple[int, int] | None = None  # (SSRC, last seq) of the stream left

    # -- public API -----------------------------------------------------------------------

    @property
    def ssrc(self) -> int | None:
        """The SSRC being played out, or None before the first packet (and after flush)."""
        return self._ssrc

    @property
    def frame_samples(self) -> int:
        """Current estimate of the audio per packet, in timestamp units."""
        return self._frame

    def __len__(self) -> int:
        """Packets currently held (waiting behind a hole or on probation)."""
        return len(self._held) + len(self._probation)

    def push(self, packet: RtpPacket, now_ms: float) -> list[Released]:
        """Add a packet received at ``now_ms``; return what is ready, in order."""
        stats = self.stats
        stats.packets += 1
        stats.bytes += len(packet.payload)
        out: list[Released] = []
        if self._ssrc is None:
            self._start(packet.ssrc)
        if packet.ssrc != self._ssrc:
            out += self._on_probation(packet, now_ms)
        else:
            ext = self._seq.extend(packet.sequence_number)
            ref = self._next if self._next is not None else self._seq.highest
            if ref is not None and (ext - ref > self.max_dropout or ref - ext > self.max_misorder):
                out += self._on_probation(packet, now_ms)
            elif self._next is not None and ext < self._next:
                self._probation.clear()
                if self._was_released(ext):
                    stats.duplicated += 1
                else:
                    stats.late += 1
            elif ext in self._held:
                self._probation.clear()
                stats.duplicated += 1
            else:
                self._probation.clear()
                self._hold(ext, packet, now_ms)
                if self._next is not None:
                    out += self._release_contiguous()
        out += self._release_due(now_ms)
        return out

    def poll(self, now_ms: float) -> list[Released]:
        """Release packets whose wait has ended at ``now_ms``, giving up the holes before them."""
        return self._release_due(now_ms)

    def next_timer(self) -> float | None:
        """When `poll` has something to do next (ms on the caller's clock), or None."""
        if not self._held:
            return None
        return min(arrival for _, arrival in self._held.values()) + self.depth_ms

    def flush(self) -> list[Released]:
        """Release everything held, in order, and forget the stream (end of call or hold).

        Counters in ``stats`` are kept; the next push starts afresh, from any SSRC.
        """
        out = self._drain()
        if self._probation:
            out += self._resync()
            out += self._drain()
        self._ssrc = None
        self._reset_sequence()
        return out

    # -- internals ------------------------------------------------------------------------

    def _start(self, ssrc: int) -> None:
        self._ssrc = ssrc
        self.stats.ssrc = ssrc
        self._reset_sequence()

    def _reset_sequence(self) -> None:
        self._seq.reset()
        self._next = None
        self._held.clear()
        self._last = None
        self._frame_known = False
        self._frame_candidate = 0
        self._history = [None] * _HISTORY

    def _hold(self, ext: int, packet: RtpPacket, now_ms: float) -> None:
        highest = self._seq.highest
        if highest is not None and ext < highest:
            self.stats.reordered += 1
        self._seq.update(packet.sequence_number)
        self._held[ext] = (packet, now_ms)
        self.stats.record_arrival(packet, now_ms)

    def _was_released(self, ext: int) -> bool:
        mark = self._history[ext % _HISTORY]
        return mark is not None and mark >> 1 == ext and bool(mark & 1)

    def _remember(self, ext: int, released: bool) -> None:
        self._history[ext % _HISTORY] = ext * 2 + (1 if released else 0)

    def _on_probation(self, packet: RtpPacket, now_ms: float) -> list[Released]:
        """A packet that does not fit the current sequence; a second one like it re-syncs."""
        retired = self._retired
        if (
            retired is not None
            and packet.ssrc == retired[0]
            and -self.max_misorder <= uint16_diff(packet.sequence_number, retired[1]) <= 0
        ):
            self.stats.late += 1  # a straggler of the stream we switched away from
            return []
        if self._probation and now_ms - self._probation[0][1] > self._probation_ms:
            self._probation.clear()
        if self._probation:
            first = self._probation[0][0]
            if packet.ssrc != first.ssrc or (
                abs(uint16_diff(packet.sequence_number, first.sequence_number)) > _PROBATION_SPAN
            ):
                self._probation.clear()
            elif any(p.sequence_number == packet.sequence_number for p, _ in self._probation):
                self.stats.duplicated += 1
                return []
        self._probation.append((packet, now_ms))
        if len(self._probation) >= _PROBATION:
            return self._resync()
        return []

    def _resync(self) -> list[Released]:
        """Drop the old sequence (releasing what it held) and start on the probation packets."""
        out = self._drain()
        if self._last is not None:
            assert self._ssrc is not None
            self._retired = (self._ssrc, self._last[0] & 0xFFFF)
            out.append(Gap(0, 0, "resync"))
        probation, self._probation = self._probation, []
        self.stats.resyncs += 1
        self.stats.reset_jitter()
        self._start(probation[0][0].ssrc)
        for packet, arrival in probation:
            ext = self._seq.extend(packet.sequence_number)
            if ext not in self._held:
                self._hold(ext, packet, arrival)
        # The probation itself was the wait: start from the lowest packet right away.
        self._next = min(self._held)
        out += self._release_contiguous()
        return out

    def _drain(self) -> list[Released]:
        out: list[Released] = []
        if self._held:
            if self._next is None:
                self._next = min(self._held)
            out += self._release_through(max(self._held))
        return out

    def _release_due(self, now_ms: float) -> list[Released]:
        out: list[Released] = []
        while self._held:
            oldest_ext, (_, arrival) = min(self._held.items(), key=lambda kv: kv[1][1])
            if arrival + self.depth_ms <= now_ms:
                target = oldest_ext
            elif len(self._held) > self.max_packets:
                target = min(self._held)
            else:
                break
            if self._next is None:
                self._next = min(self._held)
            out += self._release_through(target)
        return out

    def _release_through(self, target: int) -> list[Released]:
        """Release every held packet up to ``target`` (holes become gaps), then what follows."""
        out: list[Released] = []
        for ext in sorted(e for e in self._held if e <= target):
            self._emit(ext, out)
        out += self._release_contiguous()
        return out

    def _release_contiguous(self) -> list[Released]:
        out: list[Released] = []
        while self._next in self._held:
            self._emit(self._next, out)
        return out

    def _emit(self, ext: int, out: list[Released]) -> None:
        assert self._next is not None
        packet, _ = self._held.pop(ext)
        missing = ext - self._next
        if missing > 0:
            self.stats.lost += missing
            for lost in range(max(self._next, ext - _HISTORY), ext):
                self._remember(lost, released=False)
        gap = self._gap_before(packet, missing)
        if gap is not None:
            out.append(gap)
        out.append(packet)
        self._remember(ext, released=True)
        self._last = (ext, packet.timestamp)
        self._next = ext + 1

    def _gap_before(self, packet: RtpPacket, missing: int) -> Gap | None:
        if self._last is None:
            return Gap(missing, missing * self._frame, "loss") if missing > 0 else None
        step = uint32_diff(packet.timestamp, self._last[1])
        if missing > 0:
            samples = step - self._frame
            if step <= 0 or samples > self._max_gap:
                samples = missing * self._frame  # timestamps unusable: estimate from count
            return Gap(missing, max(samples, 0), "loss")
        if step < 0 or step - self._frame > self._max_gap:
            return Gap(0, 0, "resync")
        self._learn_frame(step, packet.marker)
        if step > self._frame:
            return Gap(0, step - self._frame, "dtx")
        return None

    def _learn_frame(self, step: int, marker: bool) -> None:
        """Track the per-packet duration from consecutive packets' timestamp steps."""
        if step <= 0 or marker:
            return
        if not self._frame_known:
            self._frame = step
            self._frame_known = True
        elif step == self._frame:
            self._frame_candidate = 0
        elif step == self._frame_candidate:
            self._frame = step
            self._frame_candidate = 0
        else:
            self._frame_candidate = step
