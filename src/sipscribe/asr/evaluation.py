"""Word error rate with a small normaliser, for tests and benchmarks.

The normaliser folds what should not count as an error: case, punctuation, hyphens,
digits versus spelled-out numbers and a few spoken abbreviations ("Mr." = "mister").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ABBREV = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint", "ok": "okay"}


def number_to_words(n: int) -> str:
    """English words for 0 ≤ n < 1,000,000 (larger numbers are read digit by digit)."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_to_words(rest)}" if rest else "")
    if n < 1_000_000:
        thousands, rest = divmod(n, 1000)
        return f"{number_to_words(thousands)} thousand" + (
            f" {number_to_words(rest)}" if rest else ""
        )
    return " ".join(_ONES[int(d)] for d in str(n))


def normalize_text(text: str) -> str:
    """Lower-case words without punctuation, numbers spelled out."""
    t = text.lower().replace("-", " ").replace("’", "'")
    t = re.sub(r"(\d),(\d{3})", r"\1\2", t)
    t = re.sub(r"\d+", lambda m: f" {number_to_words(int(m.group()))} ", t)
    t = re.sub(r"[^a-z' ]+", " ", t)
    words = []
    for w in t.split():
        w = w.strip("'")
        if w:
            words.append(_ABBREV.get(w, w))
    return " ".join(words)


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER (errors over reference words) after normalisation."""
    import jiwer

    refs = [normalize_text(r) for r in references]
    hyps = [normalize_text(h) for h in hypotheses]
    pairs = [(r, h) for r, h in zip(refs, hyps, strict=True) if r]
    if not pairs:
        raise ValueError("no non-empty reference to score against")
    out = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs])
    return float(out.wer)
