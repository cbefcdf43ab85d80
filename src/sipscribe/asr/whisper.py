"""faster-whisper (CTranslate2) engine, int8 on CPU by default.

Whisper always encodes a 30 s window, so a 3 s utterance costs nearly what a 25 s one
does. ``transcribe_many`` therefore *packs* several utterances into one window with a
silence gap between them and hands each word back to the utterance whose time span holds
its midpoint (measured: ~1.9x throughput at equal WER, see ``bench/asr.py``). Words are
never shared across utterances: each word lands in exactly one piece or is dropped when
it falls wholly inside a gap (Whisper's occasional filler there).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sipscribe.asr.base import ASR_SAMPLE_RATE, AsrError, Transcript, Word, as_asr_audio
from sipscribe.asr.models import ResolvedModel, resolve_model

log = logging.getLogger(__name__)

#: Longest packed window; Whisper's own window is 30 s, keep a margin for the tail.
PACK_WINDOW_S = 28.0
#: Silence between packed utterances, so words do not run across a boundary.
PACK_GAP_S = 1.0

_MODEL_CACHE: dict[tuple[str, str, int, int], Any] = {}
_MODEL_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class WhisperOptions:
    """Decoding options; the defaults are the real-time ones from the foundation issue."""

    beam_size: int = 1
    language: str | None = "en"
    condition_on_previous_text: bool = False
    word_timestamps: bool = True
    pack: bool = True


class WhisperEngine:
    """A loaded faster-whisper model. One instance per process; thread-safe.

    Concurrency: CTranslate2 runs up to ``workers`` transcriptions in parallel, each
    with ``threads`` intra-op threads; further callers queue inside CTranslate2.
    """

    def __init__(
        self,
        model: ResolvedModel,
        *,
        compute_type: str = "int8",
        threads: int = 2,
        workers: int = 1,
        options: WhisperOptions | None = None,
        download_root: Path | None = None,
    ) -> None:
        self.model_info = model
        self.name = f"faster-whisper:{model.name}"
        self.options = options or WhisperOptions()
        if model.english_only and self.options.language not in (None, "en"):
            raise AsrError(f"model {model.name} is English-only; language must be 'en'")
        started = time.perf_counter()
        self._model = _load(model, compute_type, threads, workers, download_root)
        self.load_seconds = time.perf_counter() - started

    @classmethod
    def from_settings(cls, settings: Any) -> WhisperEngine:
        """Build the engine the process settings describe (``asr_*`` fields)."""
        model = resolve_model(settings.asr_model, cache_dir=settings.resolved_model_cache_dir)
        opts = WhisperOptions(beam_size=settings.asr_beam_size, language=settings.asr_language)
        return cls(
            model,
            compute_type=settings.asr_compute_type,
            threads=settings.asr_threads,
            workers=settings.asr_workers,
            options=opts,
            download_root=settings.resolved_model_cache_dir,
        )

    # -- one utterance ---------------------------------------------------------------
    def transcribe(self, audio: np.ndarray, *, language: str | None = None) -> Transcript:
        audio = as_asr_audio(audio)
        if audio.size == 0:
            return Transcript(text="", language=language or self.options.language)
        words, lang, text = self._run(audio, language)
        if words or not self.options.word_timestamps:
            return Transcript(
                text=text,
                words=tuple(words),
                language=lang,
                confidence=_mean_prob(words),
            )
        return Transcript(text=text, language=lang)

    # -- several utterances, packed ---------------------------------------------------
    def transcribe_many(
        self, audios: Sequence[np.ndarray], *, language: str | None = None
    ) -> list[Transcript]:
        arrays = [as_asr_audio(a) for a in audios]
        if not self.options.pack or len(arrays) <= 1:
            return [self.transcribe(a, language=language) for a in arrays]
        results: list[Transcript | None] = [None] * len(arrays)
        for group in plan_packs([a.size for a in arrays]):
            if len(group) == 1:
                i = group[0]
                results[i] = self.transcribe(arrays[i], language=language)
                continue
            window, spans = pack_window([arrays[i] for i in group])
            words, lang, _ = self._run(window, language)
            for i, piece_words in zip(group, assign_words(words, spans), strict=True):
                results[i] = Transcript.from_words(piece_words, language=lang)
        return [r for r in results if r is not None]

    # -- internals ----------------------------------------------------------------------
    def _run(self, audio: np.ndarray, language: str | None) -> tuple[list[Word], str, str]:
        opts = self.options
        try:
            segments, info = self._model.transcribe(
                audio,
                language=language or opts.language,
                beam_size=opts.beam_size,
                condition_on_previous_text=opts.condition_on_previous_text,
                word_timestamps=opts.word_timestamps,
                vad_filter=False,
                without_timestamps=False,
            )
            segments = list(segments)
        except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError variants
            raise AsrError(f"transcription failed: {exc}") from exc
        words: list[Word] = []
        texts: list[str] = []
        for seg in segments:
            texts.append(seg.text)
            for w in seg.words or ():
                words.append(
                    Word(
                        text=w.word,
                        start=float(w.start),
                        end=float(w.end),
                        probability=float(w.probability),
                    )
                )
        return words, info.language, "".join(texts).strip()


def _mean_prob(words: Sequence[Word]) -> float | None:
    return float(np.mean([w.probability for w in words])) if words else None


def plan_packs(
    lengths: Sequence[int],
    *,
    window_s: float = PACK_WINDOW_S,
    gap_s: float = PACK_GAP_S,
    rate: int = ASR_SAMPLE_RATE,
) -> list[list[int]]:
    """Group utterance indices, in order, into windows of at most ``window_s`` seconds."""
    limit = int(window_s * rate)
    gap = int(gap_s * rate)
    groups: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i, n in enumerate(lengths):
        need = n if not current else used + gap + n
        if current and need > limit:
            groups.append(current)
            current, used = [i], n
        else:
            current.append(i)
            used = need
    if current:
        groups.append(current)
    return groups


def pack_window(
    pieces: Sequence[np.ndarray], *, gap_s: float = PACK_GAP_S, rate: int = ASR_SAMPLE_RATE
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Concatenate pieces with silence between them; return the audio and each span (s)."""
    gap = np.zeros(int(gap_s * rate), dtype=np.float32)
    parts: list[np.ndarray] = []
    spans: list[tuple[float, float]] = []
    pos = 0
    for k, piece in enumerate(pieces):
        if k:
            parts.append(gap)
            pos += gap.size
        parts.append(piece)
        spans.append((pos / rate, (pos + piece.size) / rate))
        pos += piece.size
    return np.concatenate(parts), spans


def assign_words(words: Sequence[Word], spans: Sequence[tuple[float, float]]) -> list[list[Word]]:
    """Give each word to the span holding its midpoint, re-timed relative to that span.

    A word whose midpoint lies in a gap goes to the nearer span only if it overlaps it;
    one wholly inside a gap is dropped (silence cannot have said it).
    """
    out: list[list[Word]] = [[] for _ in spans]
    for w in words:
        mid = (w.start + w.end) / 2
        best: int | None = None
        for k, (s, e) in enumerate(spans):
            if s <= mid <= e:
                best = k
                break
        if best is None:
            overlapping = [
                (min(abs(mid - s), abs(mid - e)), k)
                for k, (s, e) in enumerate(spans)
                if w.end > s and w.start < e
            ]
            if not overlapping:
                continue
            best = min(overlapping)[1]
        s, e = spans[best]
        out[best].append(
            Word(
                text=w.text,
                start=max(0.0, min(w.start, e) - s),
                end=max(0.0, min(w.end, e) - s),
                probability=w.probability,
            )
        )
    return out


def _load(
    model: ResolvedModel,
    compute_type: str,
    threads: int,
    workers: int,
    download_root: Path | None,
) -> Any:
    key = (model.location, compute_type, threads, workers)
    with _MODEL_LOCK:
        cached = _MODEL_CACHE.get(key)
        if cached is not None:
            return cached
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:  # pragma: no cover - a hard dependency
            raise AsrError("faster-whisper is not installed") from exc
        try:
            loaded = WhisperModel(
                model.location,
                device="cpu",
                compute_type=compute_type,
                cpu_threads=threads,
                num_workers=workers,
                download_root=str(download_root) if download_root else None,
                local_files_only=model.source != "hub",
            )
        except Exception as exc:
            raise AsrError(f"cannot load Whisper model {model.location!r}: {exc}") from exc
        log.info("loaded Whisper model %s from %s (%s)", model.name, model.location, model.source)
        _MODEL_CACHE[key] = loaded
        return loaded
