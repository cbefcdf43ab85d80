"""Decode a call recording (any format FFmpeg reads) into per-channel 16 kHz float32.

Decoding streams frame by frame, so a long file is resampled without holding its
original form in memory; callers get chunks per channel as they are decoded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_CHANNELS = 2


class AudioFileError(ValueError):
    """The file cannot be used as a call recording; the message says why."""


@dataclass(frozen=True, slots=True)
class AudioInfo:
    path: Path
    format_name: str
    codec: str
    channels: int
    source_rate: int
    duration_s: float | None


def probe(path: Path | str) -> AudioInfo:
    """Open the file and describe its first audio stream, or raise ``AudioFileError``."""
    import av

    p = Path(path)
    _check_file(p)
    try:
        with av.open(str(p)) as container:
            stream = _audio_stream(container, p)
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            ctx = stream.codec_context
            channels = ctx.channels or len(getattr(ctx.layout, "channels", ()) or ())
            return AudioInfo(
                path=p,
                format_name=container.format.name,
                codec=ctx.name,
                channels=channels,
                source_rate=ctx.sample_rate,
                duration_s=duration,
            )
    except AudioFileError:
        raise
    except av.FFmpegError as exc:
        raise AudioFileError(f"{p}: not a readable audio file ({_ffmpeg_reason(exc)})") from exc


def iter_channels(
    path: Path | str, *, rate: int = 16000, chunk_ms: int = 200
) -> Iterator[tuple[list[np.ndarray], float]]:
    """Yield ``(per-channel chunks, seconds decoded so far)`` at ``rate`` Hz float32.

    Chunks come in ``chunk_ms`` pieces (the last may be shorter). Raises
    ``AudioFileError`` for unreadable, corrupt, empty or non-audio files and for more
    than two channels (a call recording has one channel per party).
    """
    import av

    p = Path(path)
    info = probe(p)
    if info.channels < 1 or info.channels > MAX_CHANNELS:
        raise AudioFileError(
            f"{p}: {info.channels} audio channels; a call recording has 1 (mono) or "
            f"2 (one per party)"
        )
    layout = "stereo" if info.channels == 2 else "mono"
    resampler = av.AudioResampler(format="flt", layout=layout, rate=rate)
    chunk = rate * chunk_ms // 1000
    pending: np.ndarray = np.zeros((0, info.channels), dtype=np.float32)
    decoded = 0
    try:
        with av.open(str(p)) as container:
            stream = _audio_stream(container, p)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    pending = np.concatenate((pending, _interleaved(out, info.channels)))
                while pending.shape[0] >= chunk:
                    piece, pending = pending[:chunk], pending[chunk:]
                    decoded += piece.shape[0]
                    yield (
                        [np.ascontiguousarray(piece[:, c]) for c in range(info.channels)],
                        (decoded / rate),
                    )
            for out in resampler.resample(None):
                pending = np.concatenate((pending, _interleaved(out, info.channels)))
    except av.FFmpegError as exc:
        raise AudioFileError(f"{p}: corrupt audio data ({_ffmpeg_reason(exc)})") from exc
    if pending.shape[0]:
        decoded += pending.shape[0]
        yield [np.ascontiguousarray(pending[:, c]) for c in range(info.channels)], decoded / rate
    if decoded == 0:
        raise AudioFileError(f"{p}: contains no audio samples")


def read_channels(path: Path | str, *, rate: int = 16000) -> list[np.ndarray]:
    """The whole file, one float32 array per channel."""
    parts: list[list[np.ndarray]] = []
    for chunks, _ in iter_channels(path, rate=rate):
        parts.append(chunks)
    return [np.concatenate([c[i] for c in parts]) for i in range(len(parts[0]))]


def _interleaved(frame: object, channels: int) -> np.ndarray:
    arr = frame.to_ndarray()  # type: ignore[attr-defined]  # packed flt: (1, samples*channels)
    return arr.reshape(-1, channels).astype(np.float32, copy=False)


def _check_file(p: Path) -> None:
    if not p.exists():
        raise AudioFileError(f"{p}: no such file")
    if not p.is_file():
        raise AudioFileError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise AudioFileError(f"{p}: file is empty")


def _audio_stream(container: object, p: Path) -> object:
    streams = [s for s in container.streams if s.type == "audio"]  # type: ignore[attr-defined]
    if not streams:
        raise AudioFileError(f"{p}: has no audio stream")
    return streams[0]


def _ffmpeg_reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc).split(":")[0] or type(exc).__name__


#: Container format and codec for the file types we write (tests, recordings, exports).
WRITE_FORMATS: dict[str, tuple[str, str]] = {
    "wav": ("wav", "pcm_s16le"),
    "wav-ulaw": ("wav", "pcm_mulaw"),
    "wav-alaw": ("wav", "pcm_alaw"),
    "mp3": ("mp3", "libmp3lame"),
    "flac": ("flac", "flac"),
    "ogg-opus": ("ogg", "libopus"),
}


def write_audio(
    path: Path | str, channels: list[np.ndarray], *, rate: int, kind: str = "wav"
) -> Path:
    """Encode equal-length float32/int16 channels into ``path`` as ``kind``."""
    import av

    if kind not in WRITE_FORMATS:
        raise AudioFileError(f"cannot write {kind!r}; choose from {', '.join(WRITE_FORMATS)}")
    if not 1 <= len(channels) <= MAX_CHANNELS:
        raise AudioFileError(f"can write 1 or 2 channels, not {len(channels)}")
    n = min(c.size for c in channels)
    data = np.stack([_to_int16(c[:n]) for c in channels], axis=1)  # (n, ch)
    fmt, codec = WRITE_FORMATS[kind]
    layout = "stereo" if len(channels) == 2 else "mono"
    out_rate = (
        48000 if codec == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000) else rate
    )
    p = Path(path)
    with av.open(str(p), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=out_rate, layout=layout)
        frame_len = 960 if codec == "libopus" else 1152 if codec == "libmp3lame" else 4096
        if codec == "libopus":
            frame_len = out_rate // 50
        resampler = av.AudioResampler(
            format=stream.codec_context.format.name, layout=layout, rate=out_rate
        )
        for i in range(0, n, frame_len):
            piece = np.ascontiguousarray(data[i : i + frame_len].reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(piece, format="s16", layout=layout)
            frame.sample_rate = rate
            for rf in resampler.resample(frame):
                for packet in stream.encode(rf):
                    container.mux(packet)
        for rf in resampler.resample(None):
            for packet in stream.encode(rf):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return p


def _to_int16(samples: np.ndarray) -> np.ndarray:
    arr = np.asarray(samples)
    if arr.dtype == np.int16:
        return arr
    return (np.clip(arr, -1.0, 1.0) * 32767).astype(np.int16)
