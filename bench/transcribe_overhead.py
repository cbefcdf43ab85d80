"""Our file-transcription overhead versus calling faster-whisper directly.

    .venv/bin/python bench/transcribe_overhead.py [--minutes 3]

Builds a multi-minute stereo 8 kHz μ-law call from real speech, then times
(a) ``transcribe_file`` as ``sipscribe transcribe`` runs it (decode, resample, VAD,
endpointing, packed recognition), and (b) faster-whisper's ``WhisperModel.transcribe``
called directly, one call per segment, on the *same* VAD segments with the same options.
The ratio a/b must be ≤ 1.10. Also reported: our pipeline with packing off (pure
overhead of our code) and the CLI end to end in a fresh process (includes start-up).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0)
    args = ap.parse_args()

    from sipscribe.asr.models import resolve_model
    from sipscribe.asr.whisper import WhisperEngine, WhisperOptions
    from sipscribe.media.audiofile import write_audio
    from sipscribe.media.resample import resample
    from sipscribe.pipeline.filejob import segment_file, transcribe_file
    from sipscribe.testing.corpus import build_conversation, load_corpus, telephony

    recs = load_corpus()
    turns = []
    while sum(r.duration_s + 1.0 for r in turns) < args.minutes * 60:
        turns.extend(recs)
    tracks, _ = build_conversation(turns, gap_s=1.0)
    tmp = Path(tempfile.mkdtemp())
    path = write_audio(
        tmp / "call.wav",
        [resample(telephony(t), 16000, 8000) for t in tracks],
        rate=8000,
        kind="wav-ulaw",
    )
    duration = tracks[0].size / 16000

    model = resolve_model("tiny.en", cache_dir=tmp)
    packed = WhisperEngine(model, threads=2)
    unpacked = WhisperEngine(model, threads=2, options=WhisperOptions(pack=False))
    raw = packed._model  # the same loaded faster-whisper model
    packed.transcribe(np.zeros(16000, np.float32))  # warm-up

    t = time.perf_counter()
    ours = transcribe_file(path, packed)
    ours_s = time.perf_counter() - t
    t = time.perf_counter()
    transcribe_file(path, unpacked)
    ours_unpacked_s = time.perf_counter() - t

    _, _, segments = segment_file(path)
    t = time.perf_counter()
    for _, seg in segments:
        segs, _ = raw.transcribe(
            seg.audio,
            language="en",
            beam_size=1,
            condition_on_previous_text=False,
            word_timestamps=True,
            vad_filter=False,
        )
        list(segs)
    direct_s = time.perf_counter() - t

    t = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "sipscribe",
            "transcribe",
            str(path),
            "-q",
            "-o",
            str(tmp / "out.json"),
        ],
        check=True,
        timeout=1800,
    )
    cli_s = time.perf_counter() - t

    print(
        f"file: {duration / 60:.1f} min stereo 8 kHz mu-law, {len(segments)} VAD segments, "
        f"{len(ours.utterances)} utterances"
    )
    print("measure | seconds | ratio to direct")
    print("--- | --- | ---")
    print(f"faster-whisper direct, same segments | {direct_s:.2f} | 1.00")
    print(f"sipscribe transcribe (packed, default) | {ours_s:.2f} | {ours_s / direct_s:.2f}")
    print(
        f"sipscribe transcribe (packing off) | {ours_unpacked_s:.2f} | "
        f"{ours_unpacked_s / direct_s:.2f}"
    )
    print(f"CLI end to end, fresh process | {cli_s:.2f} | {cli_s / direct_s:.2f}")
    ok = ours_s / direct_s <= 1.10
    print("target ratio <= 1.10:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
