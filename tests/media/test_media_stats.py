"""Tests of sipscribe.media.stats (named apart from other layers' stats tests)."""

from __future__ import annotations

import pytest

from sipscribe.media.jitterbuffer import JitterBuffer
from sipscribe.media.rtp import RtpPacket
from sipscribe.media.stats import StreamStats


def packet(seq: int, ts: int, size: int = 160) -> RtpPacket:
    return RtpPacket(
        payload_type=0,
        sequence_number=seq & 0xFFFF,
        timestamp=ts & 0xFFFFFFFF,
        ssrc=1,
        payload=bytes(size),
    )


def reference_jitter(arrivals_ms: list[float], timestamps: list[int], rate: int) -> float:
    """RFC 3550 §6.4.1 written out directly, for comparison."""
    j = 0.0
    for i in range(1, len(arrivals_ms)):
        d = (arrivals_ms[i] - arrivals_ms[i - 1]) * rate / 1000 - (
            timestamps[i] - timestamps[i - 1]
        )
        j += (abs(d) - j) / 16
    return j


def test_constant_transit_has_zero_jitter() -> None:
    stats = StreamStats(8000)
    for i in range(50):
        stats.record_arrival(packet(i, i * 160), 1000 + i * 20)
    assert stats.jitter == 0.0


def test_jitter_matches_rfc_3550_estimator() -> None:
    rate = 8000
    timestamps = [i * 160 for i in range(40)]
    arrivals = [i * 20 + (7 if i % 3 == 0 else 0) + (2.5 if i % 7 == 0 else 0) for i in range(40)]
    stats = StreamStats(rate)
    for i, (ts, at) in enumerate(zip(timestamps, arrivals, strict=True)):
        stats.record_arrival(packet(i, ts), at)
    expected = reference_jitter(arrivals, timestamps, rate)
    assert stats.jitter == pytest.approx(expected)
    assert stats.jitter_ms == pytest.approx(expected / 8)


def test_recording_the_same_arrival_twice_counts_once() -> None:
    once, twice = StreamStats(8000), StreamStats(8000)
    for i, at in enumerate([0, 25, 38, 61, 80]):
        once.record_arrival(packet(i, i * 160), at)
        twice.record_arrival(packet(i, i * 160), at)
        twice.record_arrival(packet(i, i * 160), at)
    assert twice.jitter == once.jitter > 0


def test_jitter_across_timestamp_wrap() -> None:
    stats = StreamStats(8000)
    start = 0xFFFFFFFF - 400
    for i in range(10):
        stats.record_arrival(packet(i, start + i * 160), i * 20)
    assert stats.jitter == 0.0


def test_reset_jitter_forgets_previous_source() -> None:
    stats = StreamStats(8000)
    stats.record_arrival(packet(0, 0), 0)
    stats.record_arrival(packet(1, 160), 100)
    assert stats.jitter > 0
    stats.reset_jitter()
    assert stats.jitter == 0.0
    stats.record_arrival(packet(0, 999_999), 200)  # unrelated timestamp: no spike
    assert stats.jitter == 0.0


def test_snapshot_after_a_jitter_buffer_run() -> None:
    stats = StreamStats(8000, codec="PCMU")
    jb = JitterBuffer(8000, stats=stats)
    assert jb.stats is stats
    for i, seq in enumerate([0, 1, 1, 3, 2, 5]):
        jb.push(packet(seq, seq * 160), i * 20)
    jb.flush()
    stats.add_audio(8000, 8000)
    stats.auth_failures += 2
    snap = stats.snapshot()
    assert snap == {
        "codec": "PCMU",
        "ssrc": 1,
        "clock_rate": 8000,
        "packets": 6,
        "bytes": 960,
        "lost": 1,
        "duplicated": 1,
        "reordered": 1,
        "late": 0,
        "resyncs": 0,
        "invalid": 0,
        "auth_failures": 2,
        "replayed": 0,
        "decode_errors": 0,
        "dtmf_events": 0,
        "jitter": snap["jitter"],
        "jitter_ms": snap["jitter_ms"],
        "audio_ms": 1000.0,
    }
    assert isinstance(snap["jitter"], float) and snap["jitter"] > 0
