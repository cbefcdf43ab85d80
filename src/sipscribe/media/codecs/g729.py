"""G.729 / G.729A with Annex B (ITU-T G.729, RTP payload RFC 3551 §4.5.6).

A G.729 payload is zero or more 10-byte frames (10 ms each) followed by at most one 2-byte
Annex B SID frame, which carries comfort-noise parameters for the silence that follows (the
sender then sends nothing until speech resumes: the jitter buffer reports that as a DTX gap,
and `G729Decoder.conceal` fills it with comfort noise). G.729A is bitstream-compatible with
G.729, so one decoder serves both rtpmap names.

Two backends:

* ``bcg729`` — ctypes to Belledonne's bcg729 (Debian ``libbcg729-0``). It decodes SID frames
  into comfort noise and conceals lost frames (G.729 §4.4), and also gives us an encoder
  (`Bcg729Encoder`) for tests and dialling out.
* ``pyav`` — FFmpeg's G.729 decoder through PyAV, used only when bcg729 is not installed.
  FFmpeg refuses SID frames, so this backend replaces them (and gaps) with silence.

Measured with ``bench/codecs.py`` on the project machine (LibriVox speech, µs per 20 ms =
two frames, best of 7): bcg729 via ctypes 10.6, PyAV 21.9. bcg729 is twice as fast and the only
one of the two that decodes Annex B SID frames, so it is the default.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import weakref
from typing import Literal

import numpy as np

from .base import PCM, CodecError, PyAVDecoder, UnsupportedCodec, silence

__all__ = ["BCG729_AVAILABLE", "Bcg729Encoder", "G729Decoder"]

FRAME_BYTES = 10
SID_BYTES = 2
FRAME_SAMPLES = 80
#: Concealment frames run through the decoder before switching to plain silence (5 s), so a
#: long DTX period still gets comfort noise while a pathological gap costs bounded CPU.
_MAX_CONCEAL_FRAMES = 500


def _load_bcg729() -> ctypes.CDLL | None:
    path = ctypes.util.find_library("bcg729")
    for candidate in (path, "libbcg729.so.0"):
        if not candidate:
            continue
        try:
            lib = ctypes.CDLL(candidate)
        except OSError:
            continue
        u8 = ctypes.c_uint8
        lib.initBcg729DecoderChannel.argtypes = []
        lib.initBcg729DecoderChannel.restype = ctypes.c_void_p
        lib.closeBcg729DecoderChannel.argtypes = [ctypes.c_void_p]
        lib.closeBcg729DecoderChannel.restype = None
        lib.bcg729Decoder.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            u8,
            u8,
            u8,
            u8,
            ctypes.POINTER(ctypes.c_int16),
        ]
        lib.bcg729Decoder.restype = None
        lib.initBcg729EncoderChannel.argtypes = [u8]
        lib.initBcg729EncoderChannel.restype = ctypes.c_void_p
        lib.closeBcg729EncoderChannel.argtypes = [ctypes.c_void_p]
        lib.closeBcg729EncoderChannel.restype = None
        lib.bcg729Encoder.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_int16),
            ctypes.c_char_p,
            ctypes.POINTER(u8),
        ]
        lib.bcg729Encoder.restype = None
        return lib
    return None


_LIB = _load_bcg729()
#: True when the system bcg729 was found (the backend with Annex B and PLC).
BCG729_AVAILABLE = _LIB is not None

Backend = Literal["bcg729", "pyav"]


def split_frames(payload: bytes) -> tuple[list[bytes], bytes | None]:
    """Split a payload into its 10-byte speech frames and optional trailing SID frame."""
    speech, rest = divmod(len(payload), FRAME_BYTES)
    if rest not in (0, SID_BYTES):
        raise CodecError(
            f"G.729 payload length {len(payload)} is not 10-byte frames plus an optional"
            " 2-byte SID frame"
        )
    frames = [payload[i * FRAME_BYTES : (i + 1) * FRAME_BYTES] for i in range(speech)]
    return frames, (payload[-SID_BYTES:] if rest else None)


class G729Decoder:
    """G729/8000 (and G729A) → 8 kHz mono int16."""

    clock_rate = 8000
    sample_rate = 8000

    def __init__(self, name: str = "G729", *, backend: Backend | None = None) -> None:
        self.name = name
        if backend is None:
            backend = "bcg729" if BCG729_AVAILABLE else "pyav"
        self.backend: Backend = backend
        self._pyav: PyAVDecoder | None = None
        if backend == "bcg729":
            if _LIB is None:
                raise UnsupportedCodec("G.729: the system bcg729 (libbcg729-0) is not installed")
            context = _LIB.initBcg729DecoderChannel()
            if not context:
                raise UnsupportedCodec("G.729 decoder could not be created")
            self._context = context
            self._finalizer = weakref.finalize(self, _LIB.closeBcg729DecoderChannel, context)
            self._frame = np.zeros(FRAME_SAMPLES, dtype=np.int16)
            self._pointer = self._frame.ctypes.data_as(ctypes.POINTER(ctypes.c_int16))
        elif backend == "pyav":
            self._pyav = PyAVDecoder("g729", 8000, "G.729")
        else:
            raise UnsupportedCodec(f"G.729 backend {backend!r} is unknown")

    def decode(self, payload: bytes) -> PCM:
        """80 samples per speech frame and per SID frame; raises `CodecError` for a payload
        that is not 10-byte frames plus an optional SID frame."""
        frames, sid = split_frames(bytes(payload))
        if self._pyav is not None:
            parts = [self._pyav.decode(b"".join(frames))] if frames else []
            if sid is not None:
                parts.append(silence(FRAME_SAMPLES))  # FFmpeg cannot decode SID frames
            return np.concatenate(parts) if parts else silence(0)
        out = np.empty(FRAME_SAMPLES * (len(frames) + (sid is not None)), dtype=np.int16)
        for i, frame in enumerate(frames):
            out[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES] = self._run(frame, 0, 0)
        if sid is not None:
            out[-FRAME_SAMPLES:] = self._run(sid, 0, 1)
        return out

    def conceal(self, samples: int) -> PCM:
        """bcg729: frame-erasure concealment, or comfort noise after a SID frame; pyav: silence."""
        if samples <= 0 or self._pyav is not None:
            return silence(samples)
        count = min(-(-samples // FRAME_SAMPLES), _MAX_CONCEAL_FRAMES)
        out = np.zeros(max(samples, count * FRAME_SAMPLES), dtype=np.int16)
        for i in range(count):
            # No bitstream + erasure flag: bcg729 conceals after speech and keeps generating
            # comfort noise after a SID frame (a zeroed 10-byte "erased" frame would not).
            out[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES] = self._run(None, 1, 0)
        return out[:samples]

    def _run(self, data: bytes | None, erased: int, sid: int) -> PCM:
        assert _LIB is not None
        length = len(data) if data is not None else 0
        _LIB.bcg729Decoder(self._context, data, length, erased, sid, 0, self._pointer)
        return self._frame


class Bcg729Encoder:
    """8 kHz int16 → G.729A frames via bcg729; with ``vad`` on, silence becomes SID or nothing.

    Used by the tests (there is no G.729 encoder in FFmpeg) and by dialling out.
    """

    def __init__(self, *, vad: bool = False) -> None:
        if _LIB is None:
            raise UnsupportedCodec("G.729: the system bcg729 (libbcg729-0) is not installed")
        context = _LIB.initBcg729EncoderChannel(1 if vad else 0)
        if not context:
            raise UnsupportedCodec("G.729 encoder could not be created")
        self._context = context
        self._finalizer = weakref.finalize(self, _LIB.closeBcg729EncoderChannel, context)

    def encode_frame(self, pcm: np.ndarray) -> bytes:
        """One 80-sample frame → 10 bytes (speech), 2 bytes (SID) or b"" (untransmitted)."""
        assert _LIB is not None
        frame = np.ascontiguousarray(pcm, dtype=np.int16)
        if frame.shape != (FRAME_SAMPLES,):
            raise CodecError(f"G.729 encoder needs {FRAME_SAMPLES} samples, got {frame.size}")
        out = ctypes.create_string_buffer(FRAME_BYTES)
        length = ctypes.c_uint8(0)
        _LIB.bcg729Encoder(
            self._context,
            frame.ctypes.data_as(ctypes.POINTER(ctypes.c_int16)),
            out,
            ctypes.byref(length),
        )
        return out.raw[: length.value]

    def encode(self, pcm: np.ndarray) -> list[bytes]:
        """Whole 80-sample frames of ``pcm`` (a trailing partial frame is dropped)."""
        samples = np.asarray(pcm, dtype=np.int16).reshape(-1)
        return [
            self.encode_frame(samples[i : i + FRAME_SAMPLES])
            for i in range(0, len(samples) - FRAME_SAMPLES + 1, FRAME_SAMPLES)
        ]
