"""Long calls in pieces: turns, token budgets, and merging partial analyses.

A small local model has a small context (4,096 tokens by default) and reads slowly, so a
20-minute call cannot go to it in one prompt. The analyzer maps each *chunk* of whole
turns to a partial analysis and then reduces them (``analyzer.py``). This module holds the
pure parts: turning transcript segments into speaker turns, cutting turns into chunks
that fit a token budget, and merging the partial analyses' item lists without repeats.

Token counts here are *estimates* (``estimate_tokens``): exact counts need the model's
tokenizer, which the OpenAI-compatible backend does not expose. The estimate errs high
for English (about 3.6 characters a token; Qwen2.5's tokenizer averages over 4 on call
transcripts), and a backend that still overflows says so with ``ContextOverflow``, on
which the analyzer halves the budget and tries again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sipscribe.intelligence.schema import ActionItem, Mood, Sentiment, SmallTalkItem, SmartAnswer

CHARS_PER_TOKEN = 3.6


class ChunkingError(ValueError):
    """A transcript or budget the chunker cannot work with."""


@dataclass(frozen=True, slots=True)
class Turn:
    """Consecutive speech of one party; ``speaker`` is "Agent", "Customer" or "Channel N"."""

    speaker: str
    text: str
    start: float = 0.0
    end: float = 0.0

    def render(self) -> str:
        return f"{self.speaker}: {self.text}"


def estimate_tokens(text: str) -> int:
    """A high estimate of the tokens ``text`` takes (see the module docstring)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def speaker_name(segment: dict[str, Any]) -> str:
    role = segment.get("role")
    if role in ("agent", "customer"):
        return str(role).capitalize()
    return f"Channel {segment.get('channel', 0)}"


def turns_from_transcript(transcript: Iterable[dict[str, Any]]) -> list[Turn]:
    """Segments ``{"channel", "start", "end", "text", "role"}`` as speaker turns in time order.

    Consecutive segments of one speaker join into one turn; empty texts are dropped.
    """
    try:
        ordered = sorted(
            transcript, key=lambda s: (float(s.get("start", 0.0)), int(s.get("channel", 0)))
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise ChunkingError(f"transcript segment is not valid: {exc}") from None
    turns: list[Turn] = []
    for segment in ordered:
        text = " ".join(str(segment.get("text", "")).split())
        if not text:
            continue
        speaker = speaker_name(segment)
        start, end = float(segment.get("start", 0.0)), float(segment.get("end", 0.0))
        if turns and turns[-1].speaker == speaker:
            last = turns[-1]
            turns[-1] = Turn(speaker, f"{last.text} {text}", last.start, max(last.end, end))
        else:
            turns.append(Turn(speaker, text, start, end))
    return turns


def render(turns: Sequence[Turn]) -> str:
    """The transcript as the model reads it: one "Speaker: text" line per turn."""
    return "\n".join(t.render() for t in turns)


def _split_long_turn(turn: Turn, budget: int, count: Callable[[str], int]) -> list[Turn]:
    """Cut a turn longer than ``budget`` at sentence ends, else at word boundaries."""
    pieces = re.split(r"(?<=[.!?])\s+", turn.text)
    words_needed = any(count(f"{turn.speaker}: {p}") > budget for p in pieces)
    if words_needed:
        pieces = turn.text.split()
    out: list[Turn] = []
    current: list[str] = []
    for piece in pieces:
        candidate = " ".join([*current, piece])
        if current and count(f"{turn.speaker}: {candidate}") > budget:
            out.append(Turn(turn.speaker, " ".join(current), turn.start, turn.end))
            current = [piece]
        else:
            current.append(piece)
        if count(f"{turn.speaker}: {' '.join(current)}") > budget:
            raise ChunkingError(f"a single word of {turn.speaker} exceeds {budget} tokens")
    if current:
        out.append(Turn(turn.speaker, " ".join(current), turn.start, turn.end))
    return out


def chunk_turns(
    turns: Sequence[Turn],
    budget: int,
    *,
    count: Callable[[str], int] = estimate_tokens,
) -> list[list[Turn]]:
    """Greedy chunks of whole turns, each rendering to at most ``budget`` tokens.

    Turns stay whole and in order; only a turn that alone exceeds the budget is cut
    (at sentence ends, else between words). An empty transcript gives no chunks.
    """
    if budget < 16:
        raise ChunkingError(f"chunk budget of {budget} tokens is too small (minimum 16)")
    chunks: list[list[Turn]] = []
    current: list[Turn] = []
    used = 0
    for turn in turns:
        cost = count(turn.render()) + 1  # the newline
        pieces = [turn] if cost <= budget else _split_long_turn(turn, budget - 1, count)
        for piece in pieces:
            piece_cost = count(piece.render()) + 1
            if current and used + piece_cost > budget:
                chunks.append(current)
                current, used = [], 0
            current.append(piece)
            used += piece_cost
    if current:
        chunks.append(current)
    return chunks


# -- merging partial analyses --------------------------------------------------------------

_WORDS = re.compile(r"[a-z0-9]+")
SIMILAR = 0.7


def _words(text: str) -> frozenset[str]:
    return frozenset(_WORDS.findall(text.lower()))


def similar(a: str, b: str, *, threshold: float = SIMILAR) -> bool:
    """Same item said twice: word-set Jaccard similarity at or above ``threshold``."""
    wa, wb = _words(a), _words(b)
    if not wa or not wb:
        return wa == wb
    return len(wa & wb) / len(wa | wb) >= threshold


def merge_actions(parts: Iterable[Iterable[ActionItem]]) -> list[ActionItem]:
    """All action items in order; a repeat of an earlier one keeps the first (filling in a
    due date the first lacked)."""
    merged: list[ActionItem] = []
    for items in parts:
        for item in items:
            for i, kept in enumerate(merged):
                if kept.owner == item.owner and similar(kept.text, item.text):
                    if kept.due_date is None and item.due_date is not None:
                        merged[i] = ActionItem(kept.text, kept.owner, item.due_date, kept.id)
                    break
            else:
                merged.append(item)
    return merged


def merge_answers(parts: Iterable[Iterable[SmartAnswer]]) -> list[SmartAnswer]:
    merged: list[SmartAnswer] = []
    for items in parts:
        for item in items:
            if not any(similar(kept.question, item.question) for kept in merged):
                merged.append(item)
    return merged


def merge_small_talk(parts: Iterable[Iterable[SmallTalkItem]]) -> list[SmallTalkItem]:
    merged: list[SmallTalkItem] = []
    for items in parts:
        for item in items:
            if not any(
                similar(kept.topic, item.topic, threshold=0.99)
                or similar(kept.description, item.description)
                for kept in merged
            ):
                merged.append(item)
    return merged


def merge_mood(moods: Sequence[Mood]) -> Mood:
    """One party's mood over chunks: the same throughout, "mixed" when it swung between
    positive and negative, else the last one that was not neutral (how the call ended)."""
    if not moods:
        return "neutral"
    distinct = set(moods)
    if len(distinct) == 1:
        return moods[0]
    if "mixed" in distinct or {"positive", "negative"} <= distinct:
        return "mixed"
    for mood in reversed(moods):
        if mood != "neutral":
            return mood
    return "neutral"


def merge_sentiment(parts: Sequence[Sentiment]) -> Sentiment:
    return Sentiment(
        agent=merge_mood([p.agent for p in parts]),
        customer=merge_mood([p.customer for p in parts]),
    )
