from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipscribe.asr.vad import EnergyVad, SileroVad
from sipscribe.pipeline.endpointer import Endpointer, EndpointerConfig, Segment

RATE = 16000
WIN = 512  # EnergyVad at 32 ms


def tone(seconds: float, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def run(
    signal: np.ndarray, config: EndpointerConfig | None = None, chunk: int = 320, vad=None
) -> list[Segment]:  # type: ignore[no-untyped-def]
    ep = Endpointer(vad or EnergyVad(RATE), config)
    out: list[Segment] = []
    for i in range(0, signal.size, chunk):
        out.extend(ep.push(signal[i : i + chunk]))
    out.extend(ep.flush())
    return out


def test_silence_yields_nothing() -> None:
    assert run(silence(5)) == []


def test_one_burst_with_preroll_and_trailing_pad() -> None:
    sig = np.concatenate([silence(1), tone(1.0), silence(1)])
    (seg,) = run(sig)
    assert seg.start_ms == pytest.approx(1000 - 200, abs=40)
    assert seg.speech_end_ms == pytest.approx(2000, abs=40)
    assert seg.end_ms == pytest.approx(2200, abs=40)
    assert np.array_equal(seg.audio, sig[seg.start : seg.end])
    assert not seg.forced_split


def test_short_pause_does_not_split_long_pause_does() -> None:
    joined = np.concatenate([silence(0.5), tone(0.8), silence(0.25), tone(0.8), silence(1)])
    assert len(run(joined)) == 1
    split = np.concatenate([silence(0.5), tone(0.8), silence(0.7), tone(0.8), silence(1)])
    a, b = run(split)
    assert a.end <= b.start, "segments never overlap"


def test_silence_setting_is_honoured() -> None:
    sig = np.concatenate([silence(0.5), tone(0.8), silence(0.7), tone(0.8), silence(1)])
    assert len(run(sig, EndpointerConfig(silence_ms=1000))) == 1


def test_click_is_dropped() -> None:
    sig = np.concatenate([silence(1), tone(0.05), silence(1)])
    assert run(sig) == []
    assert len(run(sig, EndpointerConfig(min_speech_ms=0))) == 1


def test_long_monologue_is_split_at_quiet_points_without_loss() -> None:
    # 40 s of "speech" whose level dips briefly every 3.7 s (breaths).
    rng = np.random.default_rng(1)
    sig = (0.2 * rng.standard_normal(40 * RATE)).astype(np.float32)
    for k in range(1, 11):
        a = int(k * 3.7 * RATE)
        sig[a : a + 1600] *= 0.05  # 100 ms dip, still above the gate
    full = np.concatenate([silence(0.5), sig, silence(1)])
    segs = run(full)
    assert len(segs) >= 3
    assert all(s.duration_ms <= 15000 for s in segs)
    for a, b in itertools.pairwise(segs):
        assert a.end == b.start, "forced splits are contiguous: no lost, no doubled audio"
    assert all(s.forced_split for s in segs[:-1])
    # the cuts land in the dips
    for s in segs[:-1]:
        dip_starts = [int(k * 3.7 * RATE) + int(0.5 * RATE) for k in range(1, 11)]
        assert any(d - WIN <= s.end <= d + 1600 + WIN for d in dip_starts), s.end


def test_chunking_does_not_change_the_result() -> None:
    sig = np.concatenate([silence(0.3), tone(0.6), silence(0.9), tone(1.4), silence(0.5)])
    ref = [(s.start, s.end) for s in run(sig, chunk=160)]
    for chunk in (1, 37, 512, 4096, sig.size):
        assert [(s.start, s.end) for s in run(sig, chunk=chunk)] == ref


def test_skip_closes_open_utterance_and_advances_clock() -> None:
    ep = Endpointer(EnergyVad(RATE))
    assert ep.push(np.concatenate([silence(0.5), tone(1.0)])) == []
    (seg,) = ep.skip(RATE * 10)
    assert seg.start_ms == pytest.approx(300, abs=40)
    assert ep.position == int(1.5 * RATE) + RATE * 10
    (after,) = ep.push(np.concatenate([tone(0.5), silence(1)])) + ep.flush()
    assert after.start >= int(11.5 * RATE)


def test_real_speech_with_silero(librivox) -> None:  # type: ignore[no-untyped-def]
    rec = librivox[1]
    sig = np.concatenate([silence(2), rec.audio, silence(2), rec.audio, silence(1)])
    segs = run(sig, vad=SileroVad(RATE))
    assert len(segs) == 2
    second_start = 2 + rec.duration_s + 2
    assert 1.5 <= segs[0].start_ms / 1000 <= 2 + 0.6
    assert second_start - 0.5 <= segs[1].start_ms / 1000 <= second_start + 0.6


# -- properties ---------------------------------------------------------------------------
bursts = st.lists(
    st.tuples(st.floats(0.0, 1.2), st.floats(0.02, 2.5), st.floats(0.05, 0.5)),
    min_size=0,
    max_size=6,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bursts=bursts, chunk=st.integers(1, 3000), max_ms=st.integers(1000, 4000))
def test_never_loses_or_duplicates_audio(bursts, chunk, max_ms) -> None:  # type: ignore[no-untyped-def]
    parts = []
    for gap, length, amp in bursts:
        parts += [silence(gap), tone(length, amp=amp)]
    parts.append(silence(0.1))
    sig = np.concatenate(parts)
    cfg = EndpointerConfig(min_speech_ms=0, max_utterance_ms=max_ms)
    segs = run(sig, cfg, chunk=chunk)
    for s in segs:
        assert 0 <= s.start < s.end <= sig.size
        assert np.array_equal(s.audio, sig[s.start : s.end]), "audio is the input, untouched"
        assert s.duration_ms <= max_ms + 40
    for a, b in itertools.pairwise(segs):
        assert a.end <= b.start, "no sample belongs to two segments"
    # every loud window lies wholly inside one segment
    vad = EnergyVad(RATE)
    for w0 in range(0, sig.size - WIN + 1, WIN):
        if vad.probability(sig[w0 : w0 + WIN]) >= 0.5:
            assert any(s.start <= w0 and w0 + WIN <= s.end for s in segs), w0
