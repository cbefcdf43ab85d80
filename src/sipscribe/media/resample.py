"""Streaming sample-rate conversion to the ASR rate (soxr).

One ``StreamResampler`` per stream keeps the filter state between chunks, so 20 ms RTP
frames resample without clicks at their edges. All decoders hand int16 here; everything
downstream sees float32 in [-1, 1].
"""

from __future__ import annotations

import numpy as np
import soxr


class StreamResampler:
    """Converts one stream chunk by chunk; ``flush`` returns the filter's tail."""

    def __init__(self, in_rate: int, out_rate: int, *, quality: str = "HQ") -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)
        )

    def process(self, samples: np.ndarray) -> np.ndarray:
        audio = to_float32(samples)
        if self._stream is None:
            return audio
        return self._stream.resample_chunk(audio)

    def flush(self) -> np.ndarray:
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


def to_float32(samples: np.ndarray) -> np.ndarray:
    """int16 → float32 in [-1, 1); float input passes through as float32."""
    arr = np.asarray(samples)
    if arr.dtype == np.int16:
        return arr.astype(np.float32) / 32768.0
    return np.ascontiguousarray(arr, dtype=np.float32)


def resample(samples: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Whole-buffer conversion, for offline use."""
    audio = to_float32(samples)
    if in_rate == out_rate:
        return audio
    return soxr.resample(audio, in_rate, out_rate, quality="HQ").astype(np.float32, copy=False)
