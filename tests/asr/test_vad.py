from __future__ import annotations

import numpy as np
import pytest

from sipscribe.asr.vad import EnergyVad, SileroVad


@pytest.mark.parametrize("rate", [8000, 16000])
def test_silero_scores_speech_above_silence(rate: int, librivox) -> None:  # type: ignore[no-untyped-def]
    from sipscribe.media.resample import resample

    vad = SileroVad(rate)
    assert vad.window_samples == (256 if rate == 8000 else 512)
    speech = resample(librivox[0].audio, 16000, rate)
    n = vad.window_samples
    probs = [vad.probability(speech[i : i + n]) for i in range(0, speech.size - n, n)]
    vad.reset()
    silence = [vad.probability(np.zeros(n, dtype=np.float32)) for _ in range(30)]
    assert max(silence) < 0.2
    assert np.mean(np.array(probs) > 0.5) > 0.5


def test_silero_refuses_other_rates() -> None:
    with pytest.raises(ValueError, match="8000 or 16000"):
        SileroVad(44100)


def test_energy_vad_gate() -> None:
    vad = EnergyVad(16000, threshold_db=-40)
    n = vad.window_samples
    assert vad.probability(np.zeros(n, dtype=np.float32)) == 0.0
    assert vad.probability(np.full(n, 0.1, dtype=np.float32)) == 1.0
    assert vad.probability(np.full(n, 0.001, dtype=np.float32)) == 0.0
