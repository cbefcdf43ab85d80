"""Scoring call analyses against hand-written expectations, for tests and the benchmark.

A *case* is a call written for testing (``tests/data/calls/*.json``): its turns, the
facts a good summary must contain, and the action items a good analysis must list.
Each fact and each expected action item carries alternative phrasings (``any``): it is
found when one of them occurs in the analysis, compared after
``sipscribe.asr.evaluation.normalize_text`` (so "$64.20" and "sixty four twenty" are
the same) and from the start of a word (so "escalat" finds "escalated").

Timings are synthetic: turns are laid out at ``words_per_second`` with ``gap_s`` between
them (plus any pause a turn names), which is all the analyzer needs of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sipscribe.asr.evaluation import normalize_text
from sipscribe.intelligence.numbercheck import TranscriptNumbers, unsupported_numbers

CHANNELS = {"agent": 0, "customer": 1}


class CaseError(ValueError):
    """A test-call file that does not have the case shape."""


@dataclass(frozen=True, slots=True)
class Fact:
    fact: str
    any: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ExpectedAction:
    owner: str
    text: str
    any: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CallCase:
    name: str
    description: str
    turns: tuple[tuple[str, str, float], ...]  # (role, text, pause before in seconds)
    facts: tuple[Fact, ...]
    action_items: tuple[ExpectedAction, ...]
    small_talk: bool
    instructions: str | None = None
    words_per_second: float = 2.5
    gap_s: float = 0.7

    @classmethod
    def load(cls, path: Path) -> CallCase:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CaseError(f"{path.name} cannot be read as JSON: {exc}") from None
        return cls.parse(data, where=path.name)

    @classmethod
    def parse(cls, data: Any, *, where: str = "case") -> CallCase:
        if not isinstance(data, dict):
            raise CaseError(f"{where} is not an object")
        try:
            turns = []
            for turn in data["turns"]:
                role, text = turn[0], turn[1]
                pause = float(turn[2]) if len(turn) > 2 else 0.0
                if role not in CHANNELS:
                    raise CaseError(f"{where}: turn role {role!r} is not agent or customer")
                turns.append((str(role), str(text), pause))
            facts = tuple(Fact(f["fact"], tuple(f["any"])) for f in data["facts"])
            actions = tuple(
                ExpectedAction(a["owner"], a["text"], tuple(a["any"])) for a in data["action_items"]
            )
            return cls(
                name=str(data["name"]),
                description=str(data.get("description", "")),
                turns=tuple(turns),
                facts=facts,
                action_items=actions,
                small_talk=bool(data["small_talk"]),
                instructions=data.get("instructions"),
                words_per_second=float(data.get("words_per_second", 2.5)),
                gap_s=float(data.get("gap_s", 0.7)),
            )
        except (KeyError, TypeError, IndexError) as exc:
            raise CaseError(f"{where} lacks or misshapes {exc}") from None

    def transcript(self) -> list[dict[str, Any]]:
        """The case as stored utterances (``SummaryEngine`` input), one per turn."""
        segments: list[dict[str, Any]] = []
        now = 0.5
        for role, text, pause in self.turns:
            now += pause
            duration = max(0.6, len(text.split()) / self.words_per_second)
            segments.append(
                {
                    "channel": CHANNELS[role],
                    "start": round(now, 2),
                    "end": round(now + duration, 2),
                    "text": text,
                    "role": role,
                }
            )
            now += duration + self.gap_s
        return segments

    @property
    def duration_s(self) -> float:
        segments = self.transcript()
        return segments[-1]["end"] if segments else 0.0


def load_cases(folder: Path, names: Iterable[str] | None = None) -> list[CallCase]:
    """Every ``*.json`` case in ``folder`` (or the named ones), sorted by duration."""
    paths = [folder / f"{n}.json" for n in names] if names is not None else folder.glob("*.json")
    return sorted((CallCase.load(p) for p in paths), key=lambda c: c.duration_s)


# -- scoring -----------------------------------------------------------------------------


def result_texts(result: dict[str, Any]) -> list[str]:
    """Every text an analysis result states (headline, summary, note, all item fields)."""
    texts = [result.get("callHeadline", ""), result.get("summary", ""), result.get("note", "")]
    for item in result.get("actionItems", []):
        texts += [item.get("text", ""), item.get("dueDate") or ""]
    for item in result.get("smartAnswers", []):
        texts += [item.get("question", ""), item.get("answer", "")]
    for item in result.get("smallTalkItems", []):
        texts += [item.get("topic", ""), item.get("description", "")]
    return [t for t in texts if t]


def _found(alternatives: Sequence[str], text: str) -> bool:
    haystack = f" {normalize_text(text)} "
    return any(f" {normalize_text(alt)}" in haystack for alt in alternatives if alt.strip())


@dataclass(frozen=True, slots=True)
class CaseScore:
    """How one analysis did on its case."""

    facts_found: int
    facts_total: int
    missing_facts: tuple[str, ...]
    actions_matched: int  # expected items found among the produced ones (one to one)
    actions_expected: int
    actions_produced: int
    invented_numbers: tuple[str, ...]

    @property
    def fact_recall(self) -> float:
        return self.facts_found / self.facts_total if self.facts_total else 1.0

    @property
    def action_recall(self) -> float:
        return self.actions_matched / self.actions_expected if self.actions_expected else 1.0

    @property
    def action_precision(self) -> float:
        if not self.actions_produced:
            return 1.0
        return self.actions_matched / self.actions_produced


def match_actions(
    expected: Sequence[ExpectedAction], produced: Sequence[dict[str, Any]]
) -> list[tuple[int, int]]:
    """Pairs (expected index, produced index), one to one, in order, owner and words agreeing."""
    used: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for i, want in enumerate(expected):
        for j, item in enumerate(produced):
            if j in used or item.get("owner") != want.owner:
                continue
            if _found(want.any, str(item.get("text", ""))):
                used.add(j)
                pairs.append((i, j))
                break
    return pairs


def score(case: CallCase, result: dict[str, Any]) -> CaseScore:
    everything = "\n".join(result_texts(result))
    missing = tuple(f.fact for f in case.facts if not _found(f.any, everything))
    produced = list(result.get("actionItems", []))
    pairs = match_actions(case.action_items, produced)
    said = TranscriptNumbers.of(text for _, text, _ in case.turns)
    invented = tuple(
        m.text for text in result_texts(result) for m in unsupported_numbers(text, said)
    )
    return CaseScore(
        facts_found=len(case.facts) - len(missing),
        facts_total=len(case.facts),
        missing_facts=missing,
        actions_matched=len(pairs),
        actions_expected=len(case.action_items),
        actions_produced=len(produced),
        invented_numbers=invented,
    )
