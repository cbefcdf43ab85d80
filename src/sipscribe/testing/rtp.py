"""A real RTP sender for tests and benchmarks: speech in, paced UDP packets out.

Encodes audio with real encoders (our bit-exact G.711, FFmpeg's G.722 and Opus through
PyAV, bcg729 for G.729), packetises it at 20 ms, and sends it over UDP at real-time
pace with optional, seeded impairments: loss, reordering, duplication and jitter. It
can protect with SRTP and interleave RFC 4733 DTMF.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from dataclasses import dataclass, field

import numpy as np

from sipscribe.media.codecs.base import pyav_encode
from sipscribe.media.codecs.g711 import encode_alaw, encode_ulaw
from sipscribe.media.resample import resample
from sipscribe.media.rtp import RtpPacket

PTIME_MS = 20


@dataclass(frozen=True, slots=True)
class CodecSpec:
    name: str
    payload_type: int
    clock_rate: int  # RTP clock
    audio_rate: int  # rate the encoder takes

    @property
    def timestamp_step(self) -> int:
        return self.clock_rate * PTIME_MS // 1000

    @property
    def rtpmap(self) -> str:
        if self.name == "opus":
            return f"{self.payload_type} opus/48000/2"
        return f"{self.payload_type} {self.name}/{self.clock_rate}"


CODECS: dict[str, CodecSpec] = {
    "PCMU": CodecSpec("PCMU", 0, 8000, 8000),
    "PCMA": CodecSpec("PCMA", 8, 8000, 8000),
    "G722": CodecSpec("G722", 9, 8000, 16000),  # RFC 3551: 8000 clock for 16 kHz audio
    "G729": CodecSpec("G729", 18, 8000, 8000),
    "opus": CodecSpec("opus", 111, 48000, 48000),
}


def encode_frames(audio_16k: np.ndarray, codec: str) -> list[bytes]:
    """Encode float32 16 kHz mono into one payload per 20 ms."""
    spec = CODECS[codec]
    audio = resample(audio_16k, 16000, spec.audio_rate)
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    step = spec.audio_rate * PTIME_MS // 1000
    n = pcm.size // step
    pcm = pcm[: n * step]
    if codec == "PCMU":
        return [encode_ulaw(pcm[i * step : (i + 1) * step]) for i in range(n)]
    if codec == "PCMA":
        return [encode_alaw(pcm[i * step : (i + 1) * step]) for i in range(n)]
    if codec == "G729":
        from sipscribe.media.codecs.g729 import Bcg729Encoder

        enc = Bcg729Encoder()
        return [b"".join(enc.encode(pcm[i * step : (i + 1) * step])) for i in range(n)]
    return pyav_encode(pcm, "g722" if codec == "G722" else "libopus", spec.audio_rate, step)


@dataclass
class Impairments:
    loss: float = 0.0
    reorder: float = 0.0
    duplicate: float = 0.0
    jitter_ms: float = 0.0
    seed: int = 7


@dataclass
class SendReport:
    sent: int = 0
    dropped: int = 0
    reordered: int = 0
    duplicated: int = 0
    late_by_ms: list[float] = field(default_factory=list)


def packetize(
    payloads: list[bytes], codec: str, *, ssrc: int, seq0: int = 1000, ts0: int = 5000
) -> list[RtpPacket]:
    spec = CODECS[codec]
    return [
        RtpPacket(
            payload_type=spec.payload_type,
            sequence_number=(seq0 + i) & 0xFFFF,
            timestamp=(ts0 + i * spec.timestamp_step) & 0xFFFFFFFF,
            ssrc=ssrc,
            marker=i == 0,
            payload=p,
        )
        for i, p in enumerate(payloads)
    ]


def schedule(
    packets: list[RtpPacket], imp: Impairments, *, ptime_ms: int = PTIME_MS
) -> tuple[list[tuple[float, RtpPacket]], SendReport]:
    """When to send each packet (ms from start), impairments applied, deterministically."""
    rng = random.Random(imp.seed)
    report = SendReport()
    plan: list[tuple[float, RtpPacket]] = []
    for i, pkt in enumerate(packets):
        t = i * ptime_ms
        if rng.random() < imp.loss:
            report.dropped += 1
            continue
        delay = rng.uniform(0, imp.jitter_ms) if imp.jitter_ms else 0.0
        if rng.random() < imp.reorder:
            delay += ptime_ms * 1.5  # arrives after its successor
            report.reordered += 1
        plan.append((t + delay, pkt))
        if rng.random() < imp.duplicate:
            plan.append((t + delay + 1, pkt))
            report.duplicated += 1
    plan.sort(key=lambda tp: tp[0])
    return plan, report


async def send_rtp(
    plan: list[tuple[float, RtpPacket]],
    target: tuple[str, int],
    *,
    protect: object | None = None,
    speed: float = 1.0,
) -> SendReport:
    """Send planned packets at their times (``speed`` > 1 sends faster than real time)."""
    family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    report = SendReport()
    start = time.monotonic()
    try:
        for when, pkt in plan:
            due = start + when / 1000 / speed
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                report.late_by_ms.append(-wait * 1000)
            data = bytes(pkt)
            if protect is not None:
                data = protect.protect(data)  # type: ignore[attr-defined]
            sock.sendto(data, target)
            report.sent += 1
    finally:
        sock.close()
    return report
