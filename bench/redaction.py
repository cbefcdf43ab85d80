"""Redaction quality per class over the case table, and its cost per utterance.

    .venv/bin/python bench/redaction.py [--repeat 20] [--json bench/results/redaction.json]

Reads ``tests/data/redaction_cases.json`` (the table the tests assert on), runs
``find_sensitive`` on every case (with its context) and prints, per kind, true
positives, false positives, false negatives, precision and recall; a case counts once
per kind found or expected. Cases marked ``limitation`` are included: they are the
known misses. Then it times ``find_sensitive`` on the table's texts and the live
``EventRedactor`` on a synthetic call (µs per utterance, best of ``--repeat`` runs).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sipscribe.intelligence.redacting_sink import EventRedactor
from sipscribe.intelligence.redaction import SensitiveKind, find_sensitive
from sipscribe.pipeline.events import CallEnded, CallStarted, UtteranceEvent
from sipscribe.pipeline.utterance import Utterance, UtteranceWord

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "data" / "redaction_cases.json"


def load_cases(path: Path = CASES) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads(path.read_text())["cases"]
    return cases


def score(cases: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = {k.value: Counter() for k in SensitiveKind}
    for case in cases:
        found = {
            s.kind.value for s in find_sensitive(case["text"], context=case.get("context", ""))
        }
        expected = set(case["kinds"])
        for kind in found & expected:
            counts[kind]["tp"] += 1
        for kind in found - expected:
            counts[kind]["fp"] += 1
        for kind in expected - found:
            counts[kind]["fn"] += 1
    return counts


def _ratio(a: int, b: int) -> float:
    return a / b if b else 1.0


def report(counts: dict[str, Counter[str]]) -> list[dict[str, Any]]:
    rows = []
    total: Counter[str] = Counter()
    for kind, c in counts.items():
        total += c
        rows.append({"kind": kind, **_row(c)})
    rows.append({"kind": "overall", **_row(total)})
    return rows


def _row(c: Counter[str]) -> dict[str, Any]:
    return {
        "tp": c["tp"],
        "fp": c["fp"],
        "fn": c["fn"],
        "precision": round(_ratio(c["tp"], c["tp"] + c["fp"]), 4),
        "recall": round(_ratio(c["tp"], c["tp"] + c["fn"]), 4),
    }


def time_find(cases: list[dict[str, Any]], repeat: int) -> float:
    """Best µs per ``find_sensitive`` call over the table's texts."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for case in cases:
            find_sensitive(case["text"], context=case.get("context", ""))
        best = min(best, time.perf_counter() - t0)
    return best / len(cases) * 1e6


def _call(n: int) -> list[Any]:
    lines = [
        "thanks for calling, how can I help",
        "I'd like to pay my bill with a card",
        "sure, what's the card number",
        "it's 4111 1111",
        "1111 1111",
        "and the expiry date",
        "oh nine twenty seven",
        "and the three digit code on the back",
        "four five six",
        "great, your email is john dot smith at gmail dot com right",
    ]
    events: list[Any] = [CallStarted("bench", "siprec")]
    t = 0
    for i in range(n):
        text = lines[i % len(lines)]
        words = tuple(
            UtteranceWord(" " + w, t + k * 250, t + (k + 1) * 250, 0.9)
            for k, w in enumerate(text.split())
        )
        end = t + 250 * len(words)
        u = Utterance("bench", f"s{i % 2}", i % 2, None, i + 1, t, end, text, words)
        events.append(UtteranceEvent(u))
        t = end + 400
    events.append(CallEnded("bench"))
    return events


def time_sink(n: int, repeat: int) -> float:
    """Best µs per utterance through ``EventRedactor`` (redact, words, holds)."""
    events = _call(n)
    best = float("inf")
    for _ in range(repeat):
        core = EventRedactor()
        t0 = time.perf_counter()
        for i, event in enumerate(events):
            core.receive(event, float(i))
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    cases = load_cases()
    rows = report(score(cases))
    positives = sum(1 for c in cases if c["kinds"])
    print(f"{len(cases)} cases: {positives} positive, {len(cases) - positives} negative")
    print(f"{'kind':<12} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>10} {'recall':>8}")
    for r in rows:
        print(
            f"{r['kind']:<12} {r['tp']:>4} {r['fp']:>4} {r['fn']:>4} "
            f"{r['precision']:>10.3f} {r['recall']:>8.3f}"
        )
    find_us = time_find(cases, args.repeat)
    sink_us = time_sink(200, max(1, args.repeat // 4))
    print(f"find_sensitive: {find_us:.0f} µs per text (table, best of {args.repeat})")
    print(f"EventRedactor: {sink_us:.0f} µs per utterance (synthetic call, 200 utterances)")
    if args.json is not None:
        result = {"cases": len(cases), "classes": rows, "find_us": find_us, "sink_us": sink_us}
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
