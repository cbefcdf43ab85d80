"""Helper functions for the media tests: captured packets, FFmpeg encoders, similarity."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA = Path(__file__).parent.parent / "data" / "rtp"


def load_capture(name: str) -> list[tuple[str, bytes]]:
    """Datagrams of a capture in tests/data/rtp: [("rtp" | "rtcp", bytes), ...]."""
    out = []
    for line in (DATA / name).read_text().splitlines():
        kind, hex_data = line.split()
        out.append((kind, bytes.fromhex(hex_data)))
    return out


def ffmpeg_encode(
    codec: str, pcm: np.ndarray, rate: int, frame: int, **options: str
) -> list[bytes]:
    """Encode int16 mono ``pcm`` with an FFmpeg encoder, one payload per ``frame`` samples."""
    import av

    ctx = av.CodecContext.create(codec, "w")
    ctx.sample_rate = rate
    ctx.format = "s16"
    ctx.layout = "mono"
    if options:
        ctx.options = options
    ctx.open()
    out: list[bytes] = []
    for i in range(0, len(pcm) - frame + 1, frame):
        f = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm[i : i + frame]).reshape(1, -1), format="s16", layout="mono"
        )
        f.sample_rate = rate
        out.extend(bytes(p) for p in ctx.encode(f))
    out.extend(bytes(p) for p in ctx.encode(None))
    return out


def aligned_correlation(
    reference: np.ndarray, decoded: np.ndarray, max_lag: int
) -> tuple[float, int]:
    """Best Pearson correlation of ``decoded`` against ``reference`` over codec delays
    0..max_lag samples (decoders add algorithmic delay), and the lag that gave it."""
    ref = reference.astype(np.float64)
    dec = decoded.astype(np.float64)
    best = (-1.0, 0)
    for lag in range(max_lag + 1):
        n = min(len(ref), len(dec) - lag)
        r = np.corrcoef(ref[:n], dec[lag : lag + n])[0, 1]
        if r > best[0]:
            best = (float(r), lag)
    return best


def envelope(pcm: np.ndarray, rate: int, window_ms: int = 20) -> np.ndarray:
    """RMS energy per ``window_ms`` window, in dB: what a listener (or ASR) hears as loudness."""
    n = rate * window_ms // 1000
    frames = pcm[: len(pcm) // n * n].astype(np.float64).reshape(-1, n)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1.0)


def envelope_correlation(reference: np.ndarray, decoded: np.ndarray, rate: int, lag: int) -> float:
    """Correlation of the 20 ms loudness envelopes once ``decoded`` is shifted by ``lag``."""
    n = min(len(reference), len(decoded) - lag)
    return float(
        np.corrcoef(envelope(reference[:n], rate), envelope(decoded[lag : lag + n], rate))[0, 1]
    )


def spectral_correlation(reference: np.ndarray, decoded: np.ndarray, rate: int, lag: int) -> float:
    """Correlation of 32 ms log-power spectrograms: how alike the two sound, ignoring phase,
    which perceptual codecs (CELP, SILK, CELT) do not preserve."""
    n = min(len(reference), len(decoded) - lag)
    size = rate * 32 // 1000

    def spectrogram(x: np.ndarray) -> np.ndarray:
        frames = x[: len(x) // size * size].astype(np.float64).reshape(-1, size)
        power = np.abs(np.fft.rfft(frames * np.hanning(size), axis=1)) ** 2
        return 10 * np.log10(power + 1e3)

    a = spectrogram(reference[:n])
    b = spectrogram(decoded[lag : lag + n])
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
