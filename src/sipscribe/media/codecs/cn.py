"""Comfort noise (RFC 3389, static payload type 13 at 8 kHz; ``CN/16000`` etc. when offered).

A CN packet says "the sender is silent; play noise at this level until the next packet". Its
first byte is the noise level in -dBov (0-127); the optional bytes after it are reflection
coefficients describing the noise spectrum (RFC 3389 §3.2). We synthesise white noise at the
signalled level and ignore the spectrum: the audio feeds speech recognition, for which the
shape of background noise is irrelevant but its presence (rather than digital silence during
long pauses) keeps voice-activity detection and level tracking behaving as on a real line.

Level reference: 0 dBov is the RMS of a full-scale square wave (32767), so level L gives
noise of RMS 32767 · 10^(-L/20). `ComfortNoiseDecoder.decode` returns one ``frame_ms`` frame;
the jitter buffer reports the rest of the silence as a DTX gap, which the caller fills with
`ComfortNoiseDecoder.conceal` (noise at the last level received).
"""

from __future__ import annotations

import numpy as np

from .base import PCM, CodecError, silence

__all__ = ["ComfortNoiseDecoder", "noise_rms"]


def noise_rms(level: int) -> float:
    """RMS amplitude (int16 scale) of noise at ``level`` -dBov."""
    return 32767.0 * 10.0 ** (-level / 20.0)


class ComfortNoiseDecoder:
    """CN/``clock_rate`` → white noise at the signalled level, mono int16 at ``sample_rate``.

    ``sample_rate`` defaults to the clock rate; give the rate of the stream's speech decoder
    (16000 next to G.722) so every decoder of one stream produces the same rate.
    """

    name = "CN"

    def __init__(
        self,
        clock_rate: int = 8000,
        sample_rate: int | None = None,
        *,
        frame_ms: int = 20,
        seed: int | None = None,
    ) -> None:
        self.clock_rate = clock_rate
        self.sample_rate = sample_rate or clock_rate
        self._frame = self.sample_rate * frame_ms // 1000
        self._rms: float | None = None
        self._rng = np.random.default_rng(seed)

    @property
    def level(self) -> int | None:
        """The last noise level received, in -dBov, or None before the first CN packet."""
        if self._rms is None:
            return None
        return round(-20.0 * np.log10(self._rms / 32767.0))

    def decode(self, payload: bytes) -> PCM:
        """One frame of noise at the level in the first payload byte."""
        if not payload:
            raise CodecError("CN payload is empty")
        level = payload[0] & 0x7F  # RFC 3389 §3.1: the top bit is reserved, sent as 0
        self._rms = noise_rms(level)
        return self._noise(self._frame)

    def conceal(self, samples: int) -> PCM:
        """Noise at the last received level (silence before any CN packet)."""
        if self._rms is None:
            return silence(samples)
        return self._noise(samples)

    def _noise(self, samples: int) -> PCM:
        if samples <= 0 or self._rms is None:
            return silence(samples)
        noise = self._rng.standard_normal(samples) * self._rms
        return np.clip(np.round(noise), -32768, 32767).astype(np.int16)
