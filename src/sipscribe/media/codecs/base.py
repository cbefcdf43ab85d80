"""The `Decoder` interface every codec module implements.

A decoder belongs to one RTP stream (decoders with state — G.722, G.729, Opus — must not be
shared) and turns RTP payloads into mono int16 PCM at ``sample_rate``. The RTP clock
(``clock_rate``) and the PCM rate differ for G.722 (8000 vs 16000, RFC 3551 §4.5.2) and Opus
(48000 vs whatever we ask libopus for), so gap sizes from the jitter buffer, which are in RTP
clock units, are scaled by ``sample_rate / clock_rate`` before `Decoder.conceal`.

Decoders raise `CodecError` (never a foreign exception) for a payload they cannot decode; the
caller counts it and conceals that packet's duration instead.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..errors import CodecError, UnsupportedCodec

__all__ = ["PCM", "CodecError", "Decoder", "UnsupportedCodec", "silence"]

#: Mono 16-bit PCM, the currency of the media layer.
PCM = npt.NDArray[np.int16]


@runtime_checkable
class Decoder(Protocol):
    """RTP payloads of one codec in, mono int16 PCM at ``sample_rate`` out."""

    #: SDP encoding name as we report it ("PCMU", "G722", "opus", ...).
    name: str
    #: RTP timestamp rate (the rtpmap clock rate).
    clock_rate: int
    #: Rate of the PCM that `decode` and `conceal` return.
    sample_rate: int

    def decode(self, payload: bytes) -> PCM:
        """Decode one RTP payload (one or more codec frames); raises `CodecError`."""
        ...

    def conceal(self, samples: int) -> PCM:
        """``samples`` of stand-in audio for a gap: the codec's PLC where it has one, else
        comfort noise or silence. Returns an empty array for ``samples <= 0``."""
        ...


def silence(samples: int) -> PCM:
    """``samples`` zeros (an empty array for a non-positive count)."""
    return np.zeros(max(samples, 0), dtype=np.int16)


class PyAVDecoder:
    """Decode through an FFmpeg decoder via PyAV, to mono int16; the shared PyAV plumbing.

    FFmpeg treats an empty packet as end of stream and refuses all input after it, so an
    empty payload is refused here before it reaches FFmpeg. Every error PyAV raises becomes a
    `CodecError`.
    """

    def __init__(self, codec: str, sample_rate: int, what: str) -> None:
        import av  # deferred: importing PyAV costs ~100 ms and G.711-only servers skip it

        self._av = av
        self._what = what
        try:
            self._context = av.CodecContext.create(codec, "r")
            self._context.sample_rate = sample_rate  # type: ignore[attr-defined]
            self._context.layout = "mono"  # type: ignore[attr-defined]
        except Exception as exc:  # PyAV raises several unrelated types here
            raise UnsupportedCodec(f"{what} decoder is not available in PyAV: {exc}") from None

    def decode(self, payload: bytes) -> PCM:
        """Decode one FFmpeg packet's worth of payload."""
        if not payload:
            raise CodecError(f"{self._what} payload is empty")
        try:
            frames = self._context.decode(self._av.Packet(bytes(payload)))
            arrays = [_frame_to_mono(frame) for frame in frames]
        except Exception as exc:  # any FFmpeg failure is a bad payload to us
            raise CodecError(f"{self._what} payload rejected by FFmpeg: {exc}") from None
        if not arrays:
            return silence(0)
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _frame_to_mono(frame: object) -> PCM:
    """An `av.AudioFrame` of any sample format and channel count → mono int16."""
    data = frame.to_ndarray()  # type: ignore[attr-defined]
    fmt = frame.format  # type: ignore[attr-defined]
    channels = len(frame.layout.channels)  # type: ignore[attr-defined]
    if not fmt.is_planar and channels > 1:
        data = data.reshape(-1, channels).T
    if data.ndim == 2 and data.shape[0] > 1:
        data = data.astype(np.float64).mean(axis=0)
    data = data.reshape(-1)
    if data.dtype.kind == "f":
        data = np.clip(np.round(data * 32768.0), -32768, 32767)
    elif data.dtype != np.int16:
        data = np.clip(data, -32768, 32767)
    return data.astype(np.int16, copy=False)


def pyav_encode(pcm: np.ndarray, codec: str, rate: int, step: int) -> list[bytes]:
    """Encode int16 mono PCM with FFmpeg's ``codec`` into one payload per ``step`` samples.

    The send side (silence frames for dial-out) and the test RTP sender use it; the
    encoder's look-ahead means the first payloads may come out later than their input.
    """
    import av

    ctx = av.CodecContext.create(codec, "w")
    ctx.sample_rate = rate
    ctx.layout = "mono"
    ctx.format = "s16"
    if codec == "libopus":
        ctx.bit_rate = 32000
    ctx.open()
    out: list[bytes] = []
    for i in range(0, pcm.size, step):
        frame = av.AudioFrame.from_ndarray(
            pcm[i : i + step].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = rate
        frame.pts = i
        out.extend(bytes(p) for p in ctx.encode(frame))
    out.extend(bytes(p) for p in ctx.encode(None))
    return out[: pcm.size // step]
