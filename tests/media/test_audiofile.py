from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sipscribe.media.audiofile import (
    AudioFileError,
    iter_channels,
    probe,
    read_channels,
    write_audio,
)
from sipscribe.media.resample import StreamResampler, resample


def _speechlike(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 300 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(
        np.float32
    )


@pytest.mark.parametrize(
    ("kind", "rate", "codec", "min_corr"),
    [
        ("wav", 16000, "pcm_s16le", 0.999),
        ("wav-ulaw", 8000, "pcm_mulaw", 0.99),
        ("wav-alaw", 8000, "pcm_alaw", 0.99),
        ("mp3", 22050, "mp3", 0.95),
        ("flac", 48000, "flac", 0.999),
        ("ogg-opus", 48000, "opus", 0.95),
    ],
)
def test_round_trip_every_format(
    tmp_path: Path, kind: str, rate: int, codec: str, min_corr: float
) -> None:
    left = _speechlike(2.0, rate)
    right = -left
    path = write_audio(tmp_path / f"x.{kind}", [left, right], rate=rate, kind=kind)
    info = probe(path)
    assert info.channels == 2 and info.codec.startswith(codec[:4])
    chans = read_channels(path)
    ref = resample(left, rate, 16000)
    n = min(ref.size, chans[0].size) - 2000
    # codecs with encoder delay shift the signal; align by cross-correlation peak
    lag = int(
        np.argmax(np.correlate(chans[0][1000 : 1000 + 4000], ref[1000 : 1000 + 2000], "valid"))
    )
    got = chans[0][lag + 1000 : lag + n]
    want = ref[1000 : n - lag]
    m = min(got.size, want.size)
    assert np.corrcoef(got[:m], want[:m])[0, 1] >= min_corr
    assert np.corrcoef(chans[0][:m], -chans[1][:m])[0, 1] > 0.99, "channels stay apart"


def test_chunks_are_sized_and_progress_grows(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "m.wav", [_speechlike(1.05, 8000)], rate=8000)
    chunks = list(iter_channels(path, rate=16000, chunk_ms=200))
    assert all(len(c) == 1 for c, _ in chunks)
    assert [c[0].size for c, _ in chunks[:-1]] == [3200] * (len(chunks) - 1)
    done = [d for _, d in chunks]
    assert done == sorted(done) and done[-1] == pytest.approx(1.05, abs=0.01)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "file is empty"),
        (b"\x00" * 1000, "not a readable"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff" * 40, "not a readable"),
    ],
)
def test_unusable_files(tmp_path: Path, content: bytes | None, message: str) -> None:
    p = tmp_path / "f.mp3"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(AudioFileError, match=message):
        read_channels(p)


def test_video_only_or_text_file_is_not_audio(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(AudioFileError):
        probe(p)


def test_stream_resampler_matches_whole_buffer() -> None:
    x = _speechlike(1.0, 8000)
    rs = StreamResampler(8000, 16000)
    pieces = [rs.process(x[i : i + 160]) for i in range(0, x.size, 160)] + [rs.flush()]
    streamed = np.concatenate(pieces)
    whole = resample(x, 8000, 16000)
    assert abs(streamed.size - whole.size) <= 2
    m = min(streamed.size, whole.size)
    assert np.max(np.abs(streamed[:m] - whole[:m])) < 0.02


def test_stream_resampler_accepts_int16_and_same_rate() -> None:
    rs = StreamResampler(16000, 16000)
    out = rs.process(np.array([0, 16384, -32768], dtype=np.int16))
    assert out.dtype == np.float32 and out.tolist() == [0.0, 0.5, -1.0]
    with pytest.raises(ValueError):
        StreamResampler(0, 16000)
