"""The speech-recognition contract every engine fulfils.

Engines are plain and synchronous so they can be tested without an event loop; the
pipeline runs them on a bounded thread pool (see ``asr/pool.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

#: Every engine takes audio at this rate: 16 kHz mono float32 in [-1, 1].
ASR_SAMPLE_RATE = 16000


class AsrError(RuntimeError):
    """The engine could not load its model or transcribe an utterance."""


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word; times in seconds from the start of the utterance audio."""

    text: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True, slots=True)
class Transcript:
    """What an engine recognised in one utterance."""

    text: str
    words: tuple[Word, ...] = field(default_factory=tuple)
    language: str | None = None
    #: Mean word probability, or None when the engine gives no word scores.
    confidence: float | None = None

    @classmethod
    def from_words(cls, words: Sequence[Word], *, language: str | None) -> Transcript:
        text = "".join(w.text for w in words).strip()
        conf = float(np.mean([w.probability for w in words])) if words else None
        return cls(text=text, words=tuple(words), language=language, confidence=conf)


@runtime_checkable
class AsrEngine(Protocol):
    """Transcribes utterances of 16 kHz mono float32 PCM; safe to call from several threads."""

    name: str

    def transcribe(self, audio: np.ndarray, *, language: str | None = None) -> Transcript:
        """Recognise one utterance."""
        ...

    def transcribe_many(
        self, audios: Sequence[np.ndarray], *, language: str | None = None
    ) -> list[Transcript]:
        """Recognise several independent utterances, in order; engines may pack them."""
        ...


def as_asr_audio(audio: np.ndarray) -> np.ndarray:
    """Validate and convert to contiguous float32 mono in [-1, 1]."""
    arr = np.asarray(audio)
    if arr.ndim != 1:
        raise AsrError(f"ASR audio must be mono (1-D), got shape {arr.shape}")
    if arr.dtype == np.int16:
        return np.ascontiguousarray(arr, dtype=np.float32) / 32768.0
    if arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    return np.ascontiguousarray(arr)
