"""Summaries without a language model: an extractive engine, the fallback until the LLM lands.

``ExtractiveSummaryEngine`` picks sentences that were actually said, it never writes new ones:
the headline is the lead sentence of the customer's first turn (what they called about, in most
calls), and the summary is the lead sentence of each turn (its first one of three words or
more), in order. It is deterministic and cheap, and honest about its limits: free-form
``instructions`` are recorded but cannot be followed, and the result says so
(``instructions_applied: false``). A real ``SummaryEngine`` (intelligence layer)
replaces it through the same Protocol.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

ENGINE_NAME = "extractive"
MAX_TURNS_IN_SUMMARY = 12
MAX_QUESTIONS = 5
MAX_HEADLINE_CHARS = 160
MIN_LEAD_WORDS = 3

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def first_sentence(text: str) -> str:
    """The text up to and including its first sentence end (the whole text if none)."""
    text = " ".join(text.split())
    if not text:
        return ""
    return _SENTENCE_END.split(text, maxsplit=1)[0]


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(" ".join(text.split())) if s]


def lead_sentence(text: str) -> str:
    """The first sentence with some content (three words or more), else the first sentence.

    Turns often open with "Sure." or "OK." which say nothing about the call.
    """
    found = sentences(text)
    for sentence in found:
        if len(sentence.split()) >= MIN_LEAD_WORDS:
            return sentence
    return found[0] if found else ""


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def speaker_of(segment: dict[str, Any]) -> str:
    """ "agent"/"customer" when the role is known, else "channel N"."""
    role = segment.get("role")
    if role:
        return str(role)
    return f"channel {segment.get('channel', 0)}"


def group_turns(transcript: Sequence[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """Consecutive segments by the same speaker, as (speaker, texts); empty texts dropped."""
    turns: list[tuple[str, list[str]]] = []
    for segment in transcript:
        text = " ".join(str(segment.get("text", "")).split())
        if not text:
            continue
        speaker = speaker_of(segment)
        if turns and turns[-1][0] == speaker:
            turns[-1][1].append(text)
        else:
            turns.append((speaker, [text]))
    return turns


class ExtractiveSummaryEngine:
    """``SummaryEngine`` that extracts sentences; see the module docstring."""

    name = ENGINE_NAME

    async def summarize(
        self, transcript: list[dict[str, Any]], instructions: str | None
    ) -> dict[str, Any]:
        """Summarise segments ``{"channel", "start", "end", "text", "role"?}`` in time order."""
        return summarize_extractive(transcript, instructions)


def summarize_extractive(
    transcript: Sequence[dict[str, Any]], instructions: str | None
) -> dict[str, Any]:
    """The pure function behind ``ExtractiveSummaryEngine``."""
    ordered = sorted(
        transcript, key=lambda s: (float(s.get("start", 0.0)), int(s.get("channel", 0)))
    )
    turns = group_turns(ordered)
    customer_turns = [texts for speaker, texts in turns if speaker == "customer"]
    # What the customer said first is, in most calls, why they called.
    headline_turn = customer_turns[0] if customer_turns else (turns[0][1] if turns else [])
    headline = _clip(lead_sentence(" ".join(headline_turn)), MAX_HEADLINE_CHARS)
    lines = [
        f"{speaker.capitalize()}: {lead_sentence(' '.join(texts))}"
        for speaker, texts in turns[:MAX_TURNS_IN_SUMMARY]
    ]
    asked_by_customer = [
        s
        for speaker, texts in turns
        if speaker == "customer" or not customer_turns
        for text in texts
        for s in sentences(text)
        if s.endswith("?")
    ]
    talk_time: dict[str, float] = {}
    for segment in ordered:
        if not str(segment.get("text", "")).strip():
            continue
        spoken = max(0.0, float(segment.get("end", 0.0)) - float(segment.get("start", 0.0)))
        speaker = speaker_of(segment)
        talk_time[speaker] = round(talk_time.get(speaker, 0.0) + spoken, 3)
    result: dict[str, Any] = {
        "engine": ENGINE_NAME,
        "headline": headline,
        "summary": "\n".join(lines),
        "turns": len(turns),
        "truncated": len(turns) > MAX_TURNS_IN_SUMMARY,
        "questions": asked_by_customer[:MAX_QUESTIONS],
        "talk_time_sec": dict(sorted(talk_time.items())),
        "instructions_applied": False,
    }
    if instructions:
        result["note"] = (
            "The extractive engine selects sentences from the transcript and cannot follow "
            "instructions; they are kept and will apply once a language-model engine is configured."
        )
    return result
