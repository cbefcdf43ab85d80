"""Decode cost per 20 ms frame of each codec backend, on real speech.

    .venv/bin/python bench/codecs.py [--seconds 20] [--repeat 5]

Encodes speech (the pocketsphinx LibriVox clips when installed, else a synthetic vowel-like
signal) with FFmpeg (Opus, G.722) and bcg729 (G.729), then times decoding the whole stream
with each backend `sipscribe.media.codecs` can use, and prints µs per 20 ms of audio (best of
``--repeat`` runs, fresh decoder each run). The numbers quoted in the codec modules'
docstrings come from this script.
"""

from __future__ import annotations

import argparse
import glob
import time
import wave
from collections.abc import Callable

import av
import numpy as np
import soxr

from sipscribe.media.codecs import (
    G722Decoder,
    G729Decoder,
    OpusDecoder,
    PcmuDecoder,
    encode_ulaw,
)
from sipscribe.media.codecs.g729 import BCG729_AVAILABLE, Bcg729Encoder
from sipscribe.media.codecs.opus import LIBOPUS_AVAILABLE

SPEECH = "/usr/share/pocketsphinx/test/data/librivox/*.wav"


def load_speech(seconds: float) -> np.ndarray:
    """16 kHz int16 speech, the LibriVox clips looped to ``seconds``."""
    clips = []
    for path in sorted(glob.glob(SPEECH)):
        with wave.open(path) as w:
            clips.append(np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16))
    if clips:
        audio = np.concatenate(clips)
    else:
        t = np.arange(16000 * 3) / 16000
        audio = (
            (np.sin(2 * np.pi * 150 * t) + 0.5 * np.sin(2 * np.pi * 900 * t))
            * 6000
            * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
        ).astype(np.int16)
    need = int(seconds * 16000)
    return np.resize(audio, need)


def ffmpeg_encode(
    codec: str, pcm: np.ndarray, rate: int, frame: int, **options: str
) -> list[bytes]:
    ctx = av.CodecContext.create(codec, "w")
    ctx.sample_rate = rate
    ctx.format = "s16"
    ctx.layout = "mono"
    if options:
        ctx.options = options
    ctx.open()
    out = []
    for i in range(0, len(pcm) - frame + 1, frame):
        f = av.AudioFrame.from_ndarray(
            pcm[i : i + frame].reshape(1, -1), format="s16", layout="mono"
        )
        f.sample_rate = rate
        out.extend(bytes(p) for p in ctx.encode(f))
    out.extend(bytes(p) for p in ctx.encode(None))
    return out


def bench(make: Callable[[], object], payloads: list[bytes], repeat: int) -> float:
    """Best-of-``repeat`` µs per payload."""
    best = float("inf")
    for _ in range(repeat):
        decoder = make()
        decode = decoder.decode  # type: ignore[attr-defined]
        start = time.perf_counter_ns()
        for payload in payloads:
            decode(payload)
        best = min(best, (time.perf_counter_ns() - start) / len(payloads) / 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    speech16 = load_speech(args.seconds)
    speech8 = soxr.resample(speech16, 16000, 8000).astype(np.int16)
    speech48 = soxr.resample(speech16, 16000, 48000).astype(np.int16)

    rows: list[tuple[str, str, float]] = []
    ulaw = [encode_ulaw(speech8[i : i + 160]) for i in range(0, len(speech8) - 159, 160)]
    rows.append(("PCMU", "numpy table", bench(PcmuDecoder, ulaw, args.repeat)))

    g722 = ffmpeg_encode("g722", speech16, 16000, 320)
    rows.append(("G.722", "PyAV (FFmpeg g722)", bench(G722Decoder, g722, args.repeat)))

    if BCG729_AVAILABLE:
        frames = Bcg729Encoder().encode(speech8)
        g729 = [frames[i] + frames[i + 1] for i in range(0, len(frames) - 1, 2)]
        rows.append(
            (
                "G.729",
                "bcg729 (ctypes)",
                bench(lambda: G729Decoder(backend="bcg729"), g729, args.repeat),
            )
        )
        rows.append(
            (
                "G.729",
                "PyAV (FFmpeg g729)",
                bench(lambda: G729Decoder(backend="pyav"), g729, args.repeat),
            )
        )
    else:
        print("bcg729 not installed (apt-get install libbcg729-0): G.729 skipped")

    opus = ffmpeg_encode("libopus", speech48, 48000, 960, b="24000", application="voip")
    if LIBOPUS_AVAILABLE:
        rows.append(
            (
                "Opus",
                "libopus (ctypes) → 16 kHz",
                bench(lambda: OpusDecoder(16000, backend="libopus"), opus, args.repeat),
            )
        )
        rows.append(
            (
                "Opus",
                "libopus (ctypes) → 48 kHz",
                bench(lambda: OpusDecoder(48000, backend="libopus"), opus, args.repeat),
            )
        )
    else:
        print("libopus not installed (apt-get install libopus0): ctypes Opus skipped")
    rows.append(
        (
            "Opus",
            "PyAV (FFmpeg libopus) → 48 kHz",
            bench(lambda: OpusDecoder(backend="pyav"), opus, args.repeat),
        )
    )

    def native_opus() -> object:
        from sipscribe.media.codecs.base import PyAVDecoder

        return PyAVDecoder("opus", 48000, "Opus")

    rows.append(
        ("Opus", "PyAV (FFmpeg native opus) → 48 kHz", bench(native_opus, opus, args.repeat))
    )

    print(f"{len(ulaw)} frames of 20 ms speech, best of {args.repeat}\n")
    print(f"{'codec':<7} {'backend':<38} {'µs / 20 ms frame':>17}")
    print("-" * 64)
    for codec, backend, micros in rows:
        print(f"{codec:<7} {backend:<38} {micros:>17.1f}")


if __name__ == "__main__":
    main()
