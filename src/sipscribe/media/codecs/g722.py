"""G.722 (ITU-T G.722, 64 kbit/s SB-ADPCM): wideband audio, decoded by FFmpeg through PyAV.

RFC 3551 §4.5.2: the rtpmap says ``G722/8000`` for historical reasons, but the audio is
sampled at 16 kHz — each payload byte is two 16 kHz samples — so ``clock_rate`` is 8000 and
``sample_rate`` 16000. Every byte string is a valid G.722 bitstream, so decoding cannot fail on
content; the decoder is stateful (ADPCM predictors) and belongs to one stream.

PyAV is the only G.722 decoder among our dependencies (Debian has no libg722 runtime of its
own); ``bench/codecs.py`` measured 10.8 µs per 20 ms frame on the project machine (G.711's
numpy table: 1.2 µs), fast enough that no other binding was considered. Gaps are concealed
with silence: FFmpeg's G.722 decoder has no PLC.
"""

from __future__ import annotations

from .base import PCM, PyAVDecoder, silence

__all__ = ["G722Decoder"]


class G722Decoder:
    """G722/8000 → 16 kHz mono int16."""

    name = "G722"
    clock_rate = 8000
    sample_rate = 16000

    def __init__(self) -> None:
        self._decoder = PyAVDecoder("g722", self.sample_rate, "G.722")

    def decode(self, payload: bytes) -> PCM:
        """Two samples per payload byte; raises `CodecError` only for an empty payload."""
        return self._decoder.decode(payload)

    def conceal(self, samples: int) -> PCM:
        """Silence: FFmpeg's G.722 decoder has no PLC."""
        return silence(samples)
