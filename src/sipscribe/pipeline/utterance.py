"""The one value that leaves the pipeline: a recognised utterance."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sipscribe.asr.base import Transcript

Role = Literal["agent", "customer"]
ROLES: tuple[str, ...] = ("agent", "customer")


@dataclass(frozen=True, slots=True)
class UtteranceWord:
    """A word; times in ms from the start of its stream."""

    text: str
    start_ms: int
    end_ms: int
    probability: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "word": self.text.strip(),
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "probability": round(self.probability, 4),
        }


@dataclass(frozen=True, slots=True)
class Utterance:
    """What one party said between two pauses.

    ``start_ms``/``end_ms`` are monotonic, from the start of the stream; the two wall
    clock times (UTC) say when the speaker stopped and when we finished recognising,
    whose difference is the latency users see.
    """

    call_id: str
    stream_id: str
    channel: int
    role: Role | None
    sequence: int
    start_ms: int
    end_ms: int
    text: str
    words: tuple[UtteranceWord, ...] = field(default_factory=tuple)
    confidence: float | None = None
    language: str | None = None
    speech_ended_at: datetime | None = None
    recognized_at: datetime | None = None
    #: Who spoke, for a mixed stream with speaker events: {"id", "name", "email"}.
    speaker: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "call_id": self.call_id,
            "stream_id": self.stream_id,
            "channel": self.channel,
            "role": self.role,
            "sequence": self.sequence,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "text": self.text,
            "words": [w.to_dict() for w in self.words],
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "language": self.language,
            "speech_ended_at": _iso(self.speech_ended_at),
            "recognized_at": _iso(self.recognized_at),
        }
        if self.speaker is not None:
            out["speaker"] = dict(self.speaker)
        return out


def words_from_transcript(
    transcript: Transcript, *, offset_ms: int, limit_ms: int | None = None
) -> tuple[UtteranceWord, ...]:
    """Re-time an engine's words (seconds from the utterance start) onto the stream clock."""
    out = []
    for w in transcript.words:
        start = offset_ms + round(w.start * 1000)
        end = offset_ms + round(w.end * 1000)
        if limit_ms is not None:
            start, end = min(start, limit_ms), min(end, limit_ms)
        out.append(UtteranceWord(w.text, start, max(start, end), w.probability))
    return tuple(out)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None
