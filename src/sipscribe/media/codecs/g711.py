"""G.711 µ-law (PCMU) and A-law (PCMA), ITU-T G.711 via numpy lookup tables.

Decoding is one table lookup per byte. The tables are computed at import from the G.711
segment rules — the same arithmetic as Sun's reference ``g711.c`` that CPython's ``audioop``
used — and the tests check them against ``audioop`` for all 256 codes (decode) and all 65,536
16-bit values (encode), so they are bit-exact without depending on ``audioop``, which Python
3.13 removed. G.711 has no state and no PLC of its own: gaps are concealed with silence.
"""

from __future__ import annotations

import numpy as np

from .base import PCM, CodecError, silence

__all__ = [
    "ALAW_TO_LINEAR",
    "ULAW_TO_LINEAR",
    "PcmaDecoder",
    "PcmuDecoder",
    "decode_alaw",
    "decode_ulaw",
    "encode_alaw",
    "encode_ulaw",
]

_BIAS = 0x84
_CLIP = 8159


def _ulaw_to_linear_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + _BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _BIAS - t, t - _BIAS).astype(np.int16)


def _alaw_to_linear_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _segment(magnitude: np.ndarray, ends: tuple[int, ...]) -> np.ndarray:
    # Index of the first segment whose end is >= magnitude (8 when beyond the last).
    return np.searchsorted(np.asarray(ends), magnitude, side="left")


def _linear_to_ulaw_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2  # 14-bit input, as audioop
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), _CLIP) + (_BIAS >> 2)
    seg = _segment(mag, (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF))
    code = (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0x0F)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _linear_to_alaw_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3  # 13-bit input, as audioop
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = _segment(mag, (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF))
    seg7 = np.minimum(seg, 7)
    quant = np.where(seg7 < 2, mag >> 1, mag >> np.maximum(seg7, 1)) & 0x0F
    code = np.where(seg >= 8, 0x7F, (seg7 << 4) | quant)
    return (code ^ mask).astype(np.uint8)


#: Decoded value of each of the 256 µ-law codes.
ULAW_TO_LINEAR = _ulaw_to_linear_table()
#: Decoded value of each of the 256 A-law codes.
ALAW_TO_LINEAR = _alaw_to_linear_table()
# Code for each int16 value, indexed by value + 32768.
_LINEAR_TO_ULAW = _linear_to_ulaw_table()
_LINEAR_TO_ALAW = _linear_to_alaw_table()
for _table in (ULAW_TO_LINEAR, ALAW_TO_LINEAR, _LINEAR_TO_ULAW, _LINEAR_TO_ALAW):
    _table.flags.writeable = False


def decode_ulaw(data: bytes) -> PCM:
    """µ-law bytes → int16 samples."""
    return ULAW_TO_LINEAR[np.frombuffer(data, dtype=np.uint8)]


def decode_alaw(data: bytes) -> PCM:
    """A-law bytes → int16 samples."""
    return ALAW_TO_LINEAR[np.frombuffer(data, dtype=np.uint8)]


def _indices(pcm: np.ndarray) -> np.ndarray:
    samples = np.asarray(pcm)
    if samples.dtype != np.int16:
        raise CodecError(f"G.711 encoder needs int16 samples, not {samples.dtype}")
    return samples.reshape(-1).astype(np.int32) + 32768


def encode_ulaw(pcm: np.ndarray) -> bytes:
    """int16 samples → µ-law bytes (bit-exact with ``audioop.lin2ulaw``)."""
    return _LINEAR_TO_ULAW[_indices(pcm)].tobytes()


def encode_alaw(pcm: np.ndarray) -> bytes:
    """int16 samples → A-law bytes (bit-exact with ``audioop.lin2alaw``)."""
    return _LINEAR_TO_ALAW[_indices(pcm)].tobytes()


class PcmuDecoder:
    """PCMU/8000 (RFC 3551 §4.5.14): one byte per sample, stateless."""

    name = "PCMU"
    clock_rate = 8000
    sample_rate = 8000

    def decode(self, payload: bytes) -> PCM:
        """Any byte string is valid µ-law; an empty payload decodes to no samples."""
        return decode_ulaw(payload)

    def conceal(self, samples: int) -> PCM:
        """Silence: G.711 has no PLC of its own."""
        return silence(samples)


class PcmaDecoder:
    """PCMA/8000 (RFC 3551 §4.5.14): one byte per sample, stateless."""

    name = "PCMA"
    clock_rate = 8000
    sample_rate = 8000

    def decode(self, payload: bytes) -> PCM:
        """Any byte string is valid A-law; an empty payload decodes to no samples."""
        return decode_alaw(payload)

    def conceal(self, samples: int) -> PCM:
        """Silence: G.711 has no PLC of its own."""
        return silence(samples)
