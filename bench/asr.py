"""ASR benchmark: WER on telephony-simulated real speech, real-time factor, load, memory.

    .venv/bin/python bench/asr.py [--models tiny.en,base] [--json bench/results/asr.json]

Each model runs in its own subprocess so that load time and peak memory are its own.
The test set is Debian's pocketsphinx-testdata recordings passed through a G.711 μ-law
phone channel (8 kHz band limit, companding). RTF = processing seconds / audio seconds,
with 2 CTranslate2 threads; "packed" recognises the set with utterances packed into
shared windows (``WhisperEngine.transcribe_many``), "single" one call per utterance.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(model: str) -> dict[str, object]:
    from sipscribe.asr.evaluation import word_error_rate
    from sipscribe.asr.models import resolve_model
    from sipscribe.asr.whisper import WhisperEngine, WhisperOptions
    from sipscribe.testing.corpus import load_corpus, telephony

    recs = load_corpus()
    audios = [telephony(r.audio) for r in recs]
    refs = [r.text for r in recs]
    audio_s = sum(a.size for a in audios) / 16000
    cache = ROOT / "data" / "models"
    started = time.perf_counter()
    eng = WhisperEngine(
        resolve_model(model, cache_dir=cache), threads=2, options=WhisperOptions(language="en")
    )
    load_s = time.perf_counter() - started
    eng.transcribe(audios[0])  # warm-up: first call allocates buffers
    t = time.perf_counter()
    single = [eng.transcribe(a).text for a in audios]
    single_s = time.perf_counter() - t
    t = time.perf_counter()
    packed = [tr.text for tr in eng.transcribe_many(audios)]
    packed_s = time.perf_counter() - t
    return {
        "model": model,
        "utterances": len(audios),
        "audio_s": round(audio_s, 2),
        "wer_single": round(word_error_rate(refs, single), 4),
        "wer_packed": round(word_error_rate(refs, packed), 4),
        "rtf_single": round(single_s / audio_s, 4),
        "rtf_packed": round(packed_s / audio_s, 4),
        "load_s": round(load_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny.en,base")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "asr.json")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return 0
    rows = []
    for model in args.models.split(","):
        proc = subprocess.run(
            [sys.executable, __file__, "--one", model],
            capture_output=True,
            text=True,
            check=False,
            timeout=1800,
        )
        if proc.returncode != 0:
            print(f"{model}: failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    cols = [
        "model",
        "utterances",
        "audio_s",
        "wer_single",
        "wer_packed",
        "rtf_single",
        "rtf_packed",
        "load_s",
        "peak_rss_mb",
    ]
    print(" | ".join(cols))
    print(" | ".join("---" for _ in cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
