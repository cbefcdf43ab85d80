"""faster-whisper (CTranslate2) engine, int8 on CPU by default.

Whisper always encodes a 30 s window, so a 3 s utterance costs nearly what a 25 s one
does. ``transcribe_many`` therefore *packs* several utterances into one window with a
silence gap between them and hands each word back to the utterance whose time span holds
its midpoint (measured: ~1.9x throughput at equal WER, see ``bench/asr.py``). Words are
never shared across utterances: each word lands in exactly one piece or is dropped when
it falls wholly inside a gap (Whisper's occasional filler there).

Two failure modes of packing are caught and repaired by recognising the affected
pieces again on their own (``pack_retries`` counts them):
- Whisper stops decoding early (it predicts the end of speech at a gap): a piece with
  no words, or whose words span less than half of it, lost speech.
- Whisper decodes two pieces as one segment running across the silence between them
  (likeliest when neighbours sound alike): word times inside such a segment cannot be
  trusted to fall on the right side of the gap, so every piece it touches is redone.
- A piece gets more words than it can hold: faster than anyone speaks
  (``MAX_WORDS_PER_S``) or a run of words repeated back to back, Whisper's signature
  when a neighbour's words are pulled in (or hallucinated).
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
#: A packed piece whose words span less than this share of it is recognised alone.
MIN_PACK_COVERAGE = 0.5
#: Faster than this (words per second of speech), a packed piece holds foreign words.
MAX_WORDS_PER_S = 5.0
#: Pre-roll plus trailing pad the endpointer adds around speech (no words expected there).
_PAD_S = 0.4
#: Speech left after the last recognised word (seconds) that makes us suspect Whisper
#: stopped early at a pause, and the level (RMS of a 30 ms frame) that counts as speech.
EARLY_STOP_S = 1.0
EARLY_STOP_LEVEL = 0.02
#: Longer than any one spoken word (seconds); a last word longer than this is suspect.
MAX_WORD_S = 0.8

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
        self.pack_retries = 0
        self.early_stop_retries = 0

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
        words, text = self._recover_early_stop(audio, words, text, lang)
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
            words, lang, _, segments = self._run_segments(window, language)
            merged = pieces_spanned_together(segments, spans)
            for k, (i, piece_words) in enumerate(
                zip(group, assign_words(words, spans), strict=True)
            ):
                if k not in merged and covers(piece_words, arrays[i].size / ASR_SAMPLE_RATE):
                    results[i] = Transcript.from_words(piece_words, language=lang)
                else:
                    self.pack_retries += 1
                    results[i] = self.transcribe(arrays[i], language=language)
        return [r for r in results if r is not None]

    # -- internals ----------------------------------------------------------------------
    def _recover_early_stop(
        self, audio: np.ndarray, words: list[Word], text: str, language: str
    ) -> tuple[list[Word], str]:
        """Whisper sometimes ends its output at a pause mid-utterance and drops the rest
        (seen on narrowband calls). If clearly audible speech follows the last word,
        recognise that tail alone once and append it."""
        if not words or not self.options.word_timestamps:
            return words, text
        duration = audio.size / ASR_SAMPLE_RATE
        # An early stop often shows as a last word stretched over the unrecognised rest:
        # then that word is recognised again with the rest.
        stretched = words[-1].end - words[-1].start > MAX_WORD_S
        last = words[-1].start if stretched else words[-1].end
        if duration - last < EARLY_STOP_S:
            return words, text
        kept = words[:-1] if stretched else words
        start = int(max(0.0, last - 0.1) * ASR_SAMPLE_RATE)
        tail = audio[start:]
        frame = int(0.03 * ASR_SAMPLE_RATE)
        n = tail.size // frame
        if n == 0:
            return words, text
        levels = np.sqrt(np.mean(np.square(tail[: n * frame].reshape(n, frame)), axis=1))
        if np.count_nonzero(levels > EARLY_STOP_LEVEL) < 10:  # under 0.3 s of speech
            return words, text
        self.early_stop_retries += 1
        more, _, _ = self._run(tail, language)
        offset = start / ASR_SAMPLE_RATE
        shifted = [
            Word(w.text, w.start + offset, w.end + offset, w.probability)
            for w in more
            if w.start + offset >= last - 0.05  # never repeat what we have
        ]
        if not shifted:
            return words, text
        merged = kept + shifted
        return merged, "".join(w.text for w in merged).strip()

    def _run(self, audio: np.ndarray, language: str | None) -> tuple[list[Word], str, str]:
        words, lang, text, _ = self._run_segments(audio, language)
        return words, lang, text

    def _run_segments(
        self, audio: np.ndarray, language: str | None
    ) -> tuple[list[Word], str, str, list[tuple[float, float]]]:
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
        bounds = [(float(seg.start), float(seg.end)) for seg in segments]
        return words, info.language, "".join(texts).strip(), bounds


def _mean_prob(words: Sequence[Word]) -> float | None:
    return float(np.mean([w.probability for w in words])) if words else None


def pieces_spanned_together(
    segments: Sequence[tuple[float, float]],
    spans: Sequence[tuple[float, float]],
    *,
    tolerance_s: float = 0.25,
) -> set[int]:
    """Indices of pieces that share a Whisper segment with another piece."""
    out: set[int] = set()
    for s_start, s_end in segments:
        touched = [
            k for k, (a, b) in enumerate(spans) if min(s_end, b) - max(s_start, a) > tolerance_s
        ]
        if len(touched) > 1:
            out.update(touched)
    return out


def covers(words: Sequence[Word], duration_s: float) -> bool:
    """Whether a packed piece's words plausibly account for its speech."""
    speech = duration_s - _PAD_S
    if words and (len(words) > MAX_WORDS_PER_S * max(speech, 1.0) or repeats(words)):
        return False
    if speech < 0.5:  # too short to judge; a click or a single short word
        return True
    if not words:
        return False
    return (words[-1].end - words[0].start) >= MIN_PACK_COVERAGE * speech


def repeats(words: Sequence[Word], *, min_run: int = 4) -> bool:
    """Whether some run of ``min_run`` or more words is immediately repeated."""
    toks = [w.text.strip().lower().strip(".,!?;:") for w in words]
    n = len(toks)
    for size in range(min_run, n // 2 + 1):
        for i in range(n - 2 * size + 1):
            if toks[i : i + size] == toks[i + size : i + 2 * size]:
                return True
    return False


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
