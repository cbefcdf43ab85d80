"""Opus (RFC 6716, RTP payload RFC 7587), decoded to 16 kHz mono.

RFC 7587 fixes the rtpmap as ``opus/48000/2`` whatever the sender really encodes, so the RTP
clock is always 48 kHz and the channel count says nothing; the decoder downmixes stereo. Two
backends:

* ``libopus`` — ctypes to the system libopus (Debian ``libopus0``). libopus decodes at any of
  8/12/16/24/48 kHz internally, so we ask it for 16 kHz mono directly (no resampling later),
  and it has real packet-loss concealment (``opus_decode`` with no data).
* ``pyav`` — FFmpeg's decoders through PyAV, used only when libopus is not installed. FFmpeg
  always outputs 48 kHz here, so this backend's ``sample_rate`` is 48000 (resampling to the ASR
  rate then happens downstream) and gaps are concealed with silence.

Measured with ``bench/codecs.py`` on the project machine (2 cores, Python 3.11, LibriVox
speech at 24 kbit/s, µs per 20 ms frame, best of 7): libopus via ctypes at 16 kHz 11.1, at
48 kHz 16.9; PyAV ``libopus`` 21.3; PyAV native ``opus`` 23.3. ctypes at 16 kHz is twice as
fast as PyAV and saves the 48 → 16 kHz resampling step as well, so it is the default.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import weakref
from typing import Literal

import numpy as np

from .base import PCM, CodecError, PyAVDecoder, UnsupportedCodec, silence

__all__ = ["LIBOPUS_AVAILABLE", "OpusDecoder"]

#: Rates libopus can decode at natively.
_RATES = (8000, 12000, 16000, 24000, 48000)
#: Concealment beyond this is silence: Opus PLC fades out over ~100 ms anyway.
_MAX_PLC_MS = 200


def _load_libopus() -> ctypes.CDLL | None:
    path = ctypes.util.find_library("opus")
    for candidate in (path, "libopus.so.0"):
        if not candidate:
            continue
        try:
            lib = ctypes.CDLL(candidate)
        except OSError:
            continue
        lib.opus_decoder_create.argtypes = [
            ctypes.c_int32,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_int),
        ]
        lib.opus_decoder_create.restype = ctypes.c_void_p
        lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
        lib.opus_decoder_destroy.restype = None
        lib.opus_decode.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_int32,
            ctypes.POINTER(ctypes.c_int16),
            ctypes.c_int,
            ctypes.c_int,
        ]
        lib.opus_decode.restype = ctypes.c_int
        lib.opus_strerror.argtypes = [ctypes.c_int]
        lib.opus_strerror.restype = ctypes.c_char_p
        return lib
    return None


_LIB = _load_libopus()
#: True when the system libopus was found (the fast, 16 kHz, PLC-capable backend).
LIBOPUS_AVAILABLE = _LIB is not None

Backend = Literal["libopus", "pyav"]


class OpusDecoder:
    """opus/48000/2 → mono int16 at ``sample_rate`` (16 kHz with libopus, 48 kHz with PyAV)."""

    name = "opus"
    clock_rate = 48000

    def __init__(self, sample_rate: int = 16000, *, backend: Backend | None = None) -> None:
        if backend is None:
            backend = "libopus" if LIBOPUS_AVAILABLE else "pyav"
        self.backend: Backend = backend
        if backend == "libopus":
            if sample_rate not in _RATES:
                raise UnsupportedCodec(f"Opus cannot decode at {sample_rate} Hz")
            if _LIB is None:
                raise UnsupportedCodec("Opus: the system libopus (libopus0) is not installed")
            self.sample_rate = sample_rate
            error = ctypes.c_int(0)
            state = _LIB.opus_decoder_create(sample_rate, 1, ctypes.byref(error))
            if error.value != 0 or not state:
                raise UnsupportedCodec(f"Opus decoder could not be created: error {error.value}")
            self._state = state
            self._finalizer = weakref.finalize(self, _LIB.opus_decoder_destroy, state)
            # Longest Opus packet: 120 ms (RFC 6716 §3.2.5).
            self._buffer = np.zeros(sample_rate * 120 // 1000, dtype=np.int16)
            self._pointer = self._buffer.ctypes.data_as(ctypes.POINTER(ctypes.c_int16))
            self._pyav: PyAVDecoder | None = None
        elif backend == "pyav":
            self.sample_rate = 48000  # FFmpeg's Opus decoders always output 48 kHz
            self._pyav = PyAVDecoder("libopus", 48000, "Opus")
        else:
            raise UnsupportedCodec(f"Opus backend {backend!r} is unknown")

    def decode(self, payload: bytes) -> PCM:
        """Decode one Opus packet (2.5-120 ms); raises `CodecError` if libopus rejects it."""
        if self._pyav is not None:
            return self._pyav.decode(payload)
        if not payload:
            # libopus reads a zero-length packet as "lost"; to us it is a malformed payload.
            raise CodecError("Opus payload is empty")
        return self._run(bytes(payload), len(self._buffer))

    def conceal(self, samples: int) -> PCM:
        """libopus PLC for up to 200 ms, then silence; silence only with PyAV."""
        if samples <= 0 or self._pyav is not None:
            return silence(samples)
        unit = self.sample_rate // 400  # PLC works in multiples of 2.5 ms
        chunk = self.sample_rate // 50
        plc = min(samples, self.sample_rate * _MAX_PLC_MS // 1000)
        parts = []
        done = 0
        while done < plc:
            want = min(chunk, -(-(plc - done) // unit) * unit)
            parts.append(self._run(None, want))
            done += want
        parts.append(silence(samples - done))
        return np.concatenate(parts)[:samples]

    def _run(self, data: bytes | None, frame_size: int) -> PCM:
        assert _LIB is not None
        n = _LIB.opus_decode(
            self._state, data, len(data) if data else 0, self._pointer, frame_size, 0
        )
        if n < 0:
            reason = _LIB.opus_strerror(n).decode("ascii", "replace")
            raise CodecError(f"Opus payload rejected by libopus: {reason}")
        return self._buffer[:n].copy()
