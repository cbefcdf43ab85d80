"""The send side of a dialled call's media: silence at the packet rate, and DTMF.

When we dial into a call we only listen, but a silent peer is a dead peer to many far
ends and NATs: media timeouts hang up after 30-60 s without RTP, and a NAT binding
closes without outgoing packets. So :class:`RtpSender` produces one packet of encoded
silence per packet time (comfort noise every 200 ms instead when the far end accepted
CN and ``prefer_cn`` is set), and RFC 4733 telephone-events for digits to send
(conference PINs, IVR menus). While a digit plays, audio packets pause but the RTP clock
keeps running (RFC 4733 §2.5.1.3).

Sans-I/O: ``poll(now_ms)`` returns the packets due, ``next_timer()`` says when to call it
again; the asyncio edge owns the socket and the timer.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from sipscribe.media.codecs.base import pyav_encode
from sipscribe.media.codecs.g711 import encode_alaw, encode_ulaw
from sipscribe.media.dtmf import DtmfSender, ScheduledPacket
from sipscribe.media.errors import DtmfError
from sipscribe.media.rtp import RtpPacket
from sipscribe.media.seqnum import uint16_add, uint32_add

__all__ = ["DTMF_PAUSE_MS", "RtpSender", "SendConfig", "silence_payload"]

#: What a ``,`` in a digit string waits (the dial-string convention of phones and PBXs).
DTMF_PAUSE_MS = 500
#: Comfort-noise packets are sent at this interval (RFC 3389 leaves it to the sender).
CN_INTERVAL_MS = 200
#: Comfort-noise level byte: -127 dBov would be digital silence; 70 is a quiet room.
CN_LEVEL = 70


@lru_cache(maxsize=16)
def silence_payload(encoding: str, clock_rate: int, ptime_ms: int = 20) -> bytes:
    """One packet of digital silence in ``encoding`` (cached: silence never changes).

    G.711 is computed; G.722, G.729 and Opus run the real encoder over zeros, so any
    decoder accepts the frame.
    """
    name = encoding.upper()
    if name in ("PCMU", "PCMA"):
        zeros = np.zeros(clock_rate * ptime_ms // 1000, dtype=np.int16)
        return encode_ulaw(zeros) if name == "PCMU" else encode_alaw(zeros)
    if name == "G729":
        from sipscribe.media.codecs.g729 import Bcg729Encoder

        enc = Bcg729Encoder()
        zeros = np.zeros(8000 * ptime_ms // 1000, dtype=np.int16)
        return b"".join(enc.encode(zeros))
    if name == "G722":
        return _pyav_silence("g722", 16000, ptime_ms)
    if name == "OPUS":
        return _pyav_silence("libopus", 48000, ptime_ms)
    raise ValueError(f"cannot send {encoding}: no encoder")


def _pyav_silence(codec: str, rate: int, ptime_ms: int) -> bytes:
    step = rate * ptime_ms // 1000
    packets = pyav_encode(np.zeros(step * 4, dtype=np.int16), codec, rate, step)
    if not packets:
        raise ValueError(f"the {codec} encoder produced no packet")
    return packets[-1]  # past the encoder's look-ahead


@dataclass(frozen=True)
class SendConfig:
    """What the SDP answer agreed for our direction of the stream."""

    payload_type: int
    encoding: str
    clock_rate: int
    ptime_ms: int = 20
    dtmf_payload_type: int | None = None
    dtmf_clock_rate: int = 8000
    cn_payload_type: int | None = None
    prefer_cn: bool = False
    ssrc: int = field(default_factory=lambda: secrets.randbits(32))


class RtpSender:
    """Packets to send on one stream: silence (or CN) and queued DTMF digits."""

    def __init__(self, config: SendConfig, *, start_ms: float) -> None:
        self.config = config
        self._seq = secrets.randbits(16)
        self._ts = secrets.randbits(32)
        self._step = config.clock_rate * config.ptime_ms // 1000
        self._next_ms = start_ms
        self._marker = True  # first packet of the talk spurt (RFC 3551 §4.1)
        self._use_cn = config.prefer_cn and config.cn_payload_type is not None
        self._payload = (
            b""
            if self._use_cn
            else silence_payload(config.encoding, config.clock_rate, config.ptime_ms)
        )
        self._last_cn_ms: float | None = None
        self._digits: deque[str] = deque()
        self._dtmf: deque[ScheduledPacket] = deque()
        self._dtmf_until_ms: float | None = None  # audio pauses until then
        self._next_digit_ms: float | None = None  # the next queued digit starts then
        self.packets_sent = 0
        self.digits_sent = ""

    # -- input ---------------------------------------------------------------------------
    def send_digits(self, digits: str, now_ms: float) -> None:
        """Queue ``digits`` (0-9 * # A-D; ``,`` pauses 500 ms) to play from ``now_ms``."""
        if self.config.dtmf_payload_type is None:
            raise DtmfError("the far end did not accept telephone-event: cannot send DTMF")
        for d in digits:
            if d != "," and d.upper() not in "0123456789*#ABCD":
                raise DtmfError(f"not a DTMF digit: {d!r}")
        self._digits.extend(digits.upper())
        if self._dtmf_until_ms is None and self._next_digit_ms is None:
            self._next_digit_ms = max(now_ms, self._next_ms)

    @property
    def sending_dtmf(self) -> bool:
        return self._dtmf_until_ms is not None or bool(self._digits) or bool(self._dtmf)

    # -- time ----------------------------------------------------------------------------
    def next_timer(self) -> float:
        """When ``poll`` has the next packet (ms on the caller's clock)."""
        times = [self._next_ms]
        if self._dtmf:
            times.append(self._dtmf[0].send_ms)
        if self._next_digit_ms is not None:
            times.append(self._next_digit_ms)
        return min(times)

    def poll(self, now_ms: float) -> list[RtpPacket]:
        """Every packet due at ``now_ms``, in sending order.

        After a long stall (event loop busy) at most one second of silence is caught
        up: the RTP clock jumps forward instead, as after a real pause in sending.
        """
        out: list[RtpPacket] = []
        if now_ms - self._next_ms > 1000:
            skipped = int((now_ms - self._next_ms) // self.config.ptime_ms)
            self._ts = uint32_add(self._ts, skipped * self._step)
            self._next_ms += skipped * self.config.ptime_ms
            self._marker = True
        while True:
            if self._next_digit_ms is not None and self._next_digit_ms <= now_ms:
                start, self._next_digit_ms = self._next_digit_ms, None
                self._start_next_digit(start)
            dtmf_due = self._dtmf and self._dtmf[0].send_ms <= now_ms
            audio_due = self._next_ms <= now_ms
            if not dtmf_due and not audio_due:
                break
            if dtmf_due and (not audio_due or self._dtmf[0].send_ms <= self._next_ms):
                out.append(self._dtmf_packet(self._dtmf.popleft().packet))
                if not self._dtmf:
                    self._digit_done()
                continue
            packet = self._audio_packet(self._next_ms)
            if packet is not None:
                out.append(packet)
            self._ts = uint32_add(self._ts, self._step)
            self._next_ms += self.config.ptime_ms
        self.packets_sent += len(out)
        return out

    # -- internals -----------------------------------------------------------------------
    def _audio_packet(self, at_ms: float) -> RtpPacket | None:
        if self._dtmf_until_ms is not None:
            return None  # audio pauses while a digit plays; the clock runs on
        if self._use_cn:
            if self._last_cn_ms is not None and at_ms - self._last_cn_ms < CN_INTERVAL_MS:
                return None
            self._last_cn_ms = at_ms
            return self._packet(self.config.cn_payload_type or 13, bytes([CN_LEVEL]))
        return self._packet(self.config.payload_type, self._payload)

    def _packet(self, pt: int, payload: bytes, *, timestamp: int | None = None) -> RtpPacket:
        packet = RtpPacket(
            payload_type=pt,
            sequence_number=self._seq,
            timestamp=self._ts if timestamp is None else timestamp,
            ssrc=self.config.ssrc,
            marker=self._marker,
            payload=payload,
        )
        self._marker = False
        self._seq = uint16_add(self._seq, 1)
        return packet

    def _dtmf_packet(self, template: RtpPacket) -> RtpPacket:
        packet = RtpPacket(
            payload_type=template.payload_type,
            sequence_number=self._seq,
            timestamp=template.timestamp,
            ssrc=self.config.ssrc,
            marker=template.marker,
            payload=template.payload,
        )
        self._seq = uint16_add(self._seq, 1)
        return packet

    def _start_next_digit(self, at_ms: float) -> None:
        if self._digits and self._digits[0] == ",":
            self._digits.popleft()
            self.digits_sent += ","
            self._next_digit_ms = at_ms + DTMF_PAUSE_MS if self._digits else None
            return
        if not self._digits:
            return
        digit = self._digits.popleft()
        cfg = self.config
        # The event's timestamp is the RTP time of its start, on the audio clock.
        ahead = max(0.0, at_ms - self._next_ms)
        start_ts = uint32_add(self._ts, int(ahead * cfg.clock_rate / 1000))
        sender = DtmfSender(
            cfg.dtmf_payload_type or 101,
            cfg.ssrc,
            clock_rate=cfg.dtmf_clock_rate,
            duration_ms=100,
            pause_ms=0,
            packet_ms=cfg.ptime_ms,
        )
        packets = sender.packets(digit, sequence_number=0, timestamp=start_ts, start_ms=at_ms)
        self._dtmf.extend(packets)
        self._dtmf_until_ms = packets[-1].send_ms
        self.digits_sent += digit

    def _digit_done(self) -> None:
        # 100 ms of silence between digits so receivers see two key presses.
        at = (self._dtmf_until_ms or self._next_ms) + 100
        self._dtmf_until_ms = None
        self._marker = True
        if self._digits:
            self._next_digit_ms = at
