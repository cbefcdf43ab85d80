"""Call analysis with the embedded model: quality on the test-call set, time, and its cost to
live transcription.

    .venv/bin/python bench/intelligence.py                     # quality, then load (~15 min)
    .venv/bin/python bench/intelligence.py --quality-only [--cases short_call,order_new]
    .venv/bin/python bench/intelligence.py --load-only --streams 8 --baseline-s 60
    .venv/bin/python bench/intelligence.py ... --json bench/results/intelligence.json

**Quality.** Every case in ``tests/data/calls`` goes through ``Analyzer`` over the
embedded model (``LlamaProcessBackend``: Qwen2.5-Coder-1.5B-Instruct Q4, llama.cpp,
worker process at ``--nice``, ``--threads`` generating / ``--batch-threads`` reading the
prompt). Per case: seconds, chunks, model calls, number repairs and removals; fact recall
(the case's facts found in the output, ``quality.score``), action-item precision and
recall (one-to-one matches of owner and key words), and invented numbers (numbers in
the output the transcript never said, counted *after* the analyzer's own repair; the
repairs and removals it needed show how often the model invented one). Totals are
micro-averaged over all facts and items.

**Load.** ``--streams`` live streams recognise real speech (Debian
``pocketsphinx-testdata``) through one ``AsrPool`` over the real tiny.en
``WhisperEngine`` (threads=2, as served): each stream "speaks" a corpus recording in
real time, submits it when the speech ends, and waits ``--gap-s`` before the next one, as
two parties take turns. Utterance latency is submit → transcript (queue wait plus
Whisper; the endpointer's silence wait, a constant, is not included). A baseline of
``--baseline-s`` seconds, then the same load while the 5-minute call
(``cancellation_retention``) is summarised (its wall time, and the p50/p95 latency of
the utterances recognised while it ran), then another baseline; the two baselines are
pooled, so drift in the machine's other load shows in neither direction alone. The
worker process is started and used once before, as in a server that has summarised a
call already (model loaded, fixed prompt prefix evaluated).

The machine is shared: the report prints the load average before each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sipscribe.intelligence.analyzer import Analyzer
from sipscribe.intelligence.llama import LlamaConfig, LlamaProcessBackend
from sipscribe.intelligence.models import assemble_gguf
from sipscribe.intelligence.quality import CallCase, load_cases, score

ROOT = Path(__file__).resolve().parent.parent
CALLS = ROOT / "tests" / "data" / "calls"
MODEL_CACHE = Path(os.environ.get("SIPSCRIBE_TEST_MODEL_CACHE", ROOT / ".cache" / "models"))
LOAD_CASE = "cancellation_retention"
SUMMARY_TARGET_S = 60.0
P95_RISE_TARGET = 0.20


@dataclass
class CaseRow:
    name: str
    minutes: float
    seconds: float
    chunks: int
    llm_calls: int
    repairs: int
    removed: int
    facts_found: int
    facts_total: int
    actions_matched: int
    actions_expected: int
    actions_produced: int
    invented: list[str]
    prompt_tokens: int
    completion_tokens: int
    missing_facts: list[str]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def run_quality(
    analyzer: Analyzer, cases: list[CallCase], dump: Path | None
) -> list[CaseRow]:
    rows: list[CaseRow] = []
    for case in cases:
        started = time.perf_counter()
        result = await analyzer.summarize(case.transcript(), case.instructions)
        seconds = time.perf_counter() - started
        s = score(case, result)
        meta = result["metadata"]
        rows.append(
            CaseRow(
                name=case.name,
                minutes=round(case.duration_s / 60, 1),
                seconds=round(seconds, 1),
                chunks=meta["chunks"],
                llm_calls=meta["llm_calls"],
                repairs=meta["repairs"],
                removed=len(meta["removed"]),
                facts_found=s.facts_found,
                facts_total=s.facts_total,
                actions_matched=s.actions_matched,
                actions_expected=s.actions_expected,
                actions_produced=s.actions_produced,
                invented=list(s.invented_numbers),
                prompt_tokens=meta["prompt_tokens"],
                completion_tokens=meta["completion_tokens"],
                missing_facts=list(s.missing_facts),
            )
        )
        row = rows[-1]
        print(
            f"{row.name:28} {row.minutes:5.1f} min {row.seconds:6.1f} s  chunks {row.chunks}"
            f"  calls {row.llm_calls}  repairs {row.repairs}  removed {row.removed}"
            f"  facts {row.facts_found}/{row.facts_total}"
            f"  actions {row.actions_matched}/{row.actions_expected} of {row.actions_produced}"
            f"  invented {len(row.invented)}  (load {load_average()})",
            flush=True,
        )
        if dump is not None:
            dump.mkdir(parents=True, exist_ok=True)
            (dump / f"{case.name}.json").write_text(json.dumps(result, indent=1))
    return rows


def quality_totals(rows: list[CaseRow]) -> dict[str, float]:
    facts = sum(r.facts_found for r in rows) / max(1, sum(r.facts_total for r in rows))
    matched = sum(r.actions_matched for r in rows)
    recall = matched / max(1, sum(r.actions_expected for r in rows))
    precision = matched / max(1, sum(r.actions_produced for r in rows))
    return {
        "fact_recall": round(facts, 3),
        "action_precision": round(precision, 3),
        "action_recall": round(recall, 3),
        "invented_numbers": sum(len(r.invented) for r in rows),
        "repairs": sum(r.repairs for r in rows),
        "removed": sum(r.removed for r in rows),
    }


# -- load ---------------------------------------------------------------------------------


@dataclass
class Latencies:
    values: list[float]

    def p(self, q: float) -> float:
        if not self.values:
            return float("nan")
        ordered = sorted(self.values)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def live_streams(
    pool: Any,
    recordings: list[Any],
    *,
    streams: int,
    gap_s: float,
    stop: asyncio.Event,
    window: list[tuple[float, float]],
) -> None:
    """Each stream speaks recordings in real time and submits them; ``window`` collects
    (finished at, latency)."""

    async def stream(index: int) -> None:
        rng = random.Random(index)
        await asyncio.sleep(rng.uniform(0, 3))
        while not stop.is_set():
            rec = rng.choice(recordings)
            await asyncio.sleep(rec.duration_s)  # the speaker talks
            submitted = time.perf_counter()
            await pool.transcribe(rec.audio, key=f"call-{index}", language="en")
            done = time.perf_counter()
            window.append((done, done - submitted))
            await asyncio.sleep(gap_s * rng.uniform(0.5, 1.5))

    await asyncio.gather(*(stream(i) for i in range(streams)))


async def run_load(args: argparse.Namespace, backend: LlamaProcessBackend) -> dict[str, Any]:
    from sipscribe.asr.pool import AsrPool
    from sipscribe.asr.whisper import WhisperEngine
    from sipscribe.config import Settings
    from sipscribe.testing.corpus import load_corpus, telephony

    recordings = [r for r in load_corpus(sets=("librivox",)) if r.duration_s < 12]
    recordings = [type(r)(r.name, r.text, telephony(r.audio)) for r in recordings]
    engine = WhisperEngine.from_settings(Settings())
    engine.transcribe(np.zeros(16000, dtype=np.float32))  # warm up
    case = CallCase.load(CALLS / f"{LOAD_CASE}.json")
    analyzer = Analyzer(backend)
    report: dict[str, Any] = {"streams": args.streams}
    async with AsrPool(engine, workers=1) as pool:
        window: list[tuple[float, float]] = []
        stop = asyncio.Event()
        print(
            f"baseline: {args.streams} streams for {args.baseline_s:g} s (load {load_average()})",
            flush=True,
        )
        task = asyncio.create_task(
            live_streams(
                pool, recordings, streams=args.streams, gap_s=args.gap_s, stop=stop, window=window
            )
        )
        t0 = time.perf_counter()
        await asyncio.sleep(args.baseline_s)
        print(
            f"summarising {LOAD_CASE} ({case.duration_s / 60:.1f} min) under the same load "
            f"(load {load_average()})",
            flush=True,
        )
        started = time.perf_counter()
        result = await analyzer.summarize(case.transcript(), None)
        summary_s = time.perf_counter() - started
        ended = time.perf_counter()
        print(f"baseline again for {args.baseline_s:g} s (load {load_average()})", flush=True)
        await asyncio.sleep(args.baseline_s)
        stop.set()
        await task
        # Baseline: before the summary (after a 5 s ramp-up) and after it.
        before = [lat for at, lat in window if t0 + 5 < at < started]
        after = [lat for at, lat in window if at > ended]
        baseline = Latencies(before + after)
        during = Latencies([lat for at, lat in window if started <= at <= ended])
    rise = during.p(0.95) / baseline.p(0.95) - 1 if baseline.values else float("nan")
    s = score(case, result)
    report.update(
        {
            "baseline_before_p95_s": round(Latencies(before).p(0.95), 3),
            "baseline_after_p95_s": round(Latencies(after).p(0.95), 3),
            "baseline_utterances": len(baseline.values),
            "baseline_p50_s": round(baseline.p(0.5), 3),
            "baseline_p95_s": round(baseline.p(0.95), 3),
            "during_utterances": len(during.values),
            "during_p50_s": round(during.p(0.5), 3),
            "during_p95_s": round(during.p(0.95), 3),
            "p95_rise": round(rise, 3),
            "summary_s": round(summary_s, 1),
            "summary_prompt_tokens": result["metadata"]["prompt_tokens"],
            "summary_completion_tokens": result["metadata"]["completion_tokens"],
            "summary_facts": f"{s.facts_found}/{s.facts_total}",
            "summary_invented": len(s.invented_numbers),
            "load_average_after": load_average(),
        }
    )
    return report


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    model = assemble_gguf(MODEL_CACHE)
    config = LlamaConfig(
        model_path=model, threads=args.threads, batch_threads=args.batch_threads, nice=args.nice
    )
    backend = LlamaProcessBackend(config, request_timeout_s=1800)
    out: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "config": {k: str(v) for k, v in asdict(config).items()},
    }
    try:
        started = time.perf_counter()
        await backend.start()
        out["model_load_s"] = round(time.perf_counter() - started, 2)
        print(f"worker ready in {out['model_load_s']} s: {backend.info}", flush=True)
        if not args.load_only:
            names = args.cases.split(",") if args.cases else None
            cases = load_cases(CALLS, names)
            dump = Path(args.dump) if args.dump else None
            rows = await run_quality(Analyzer(backend), cases, dump)
            out["cases"] = [asdict(r) for r in rows]
            out["quality"] = quality_totals(rows)
            print("quality:", json.dumps(out["quality"]), flush=True)
        if not args.quality_only:
            if args.load_only:  # prime the worker as a serving process would be
                await Analyzer(backend).summarize(
                    CallCase.load(CALLS / "short_call.json").transcript(), None
                )
            out["load"] = await run_load(args, backend)
            load = out["load"]
            print(
                f"load: summary {load['summary_s']} s (target ≤ {SUMMARY_TARGET_S:g}); "
                f"p95 {load['baseline_p95_s']} s → {load['during_p95_s']} s "
                f"({load['p95_rise'] * 100:+.0f} %, target ≤ +{P95_RISE_TARGET * 100:.0f} %); "
                f"p50 {load['baseline_p50_s']} → {load['during_p50_s']} s; "
                f"{load['baseline_utterances']}/{load['during_utterances']} utterances",
                flush=True,
            )
    finally:
        await backend.aclose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--quality-only", action="store_true")
    parser.add_argument("--load-only", action="store_true")
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--baseline-s", type=float, default=60.0)
    parser.add_argument("--gap-s", type=float, default=2.0)
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-threads", type=int, default=2)
    parser.add_argument("--dump", help="folder for each case's analysis JSON")
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
