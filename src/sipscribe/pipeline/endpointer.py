"""Incremental endpointing: audio frames in, utterance segments out (sans-I/O).

Theory of operation. Audio is scored by a ``VoiceDetector`` in fixed windows. Idle, a
window scoring at least ``threshold`` opens an utterance that starts ``preroll_ms``
earlier (never before the previous segment's end, so segments never overlap). Inside an
utterance, windows scoring at least ``threshold - hysteresis`` count as speech; after
``silence_ms`` without speech the utterance closes at the last speech plus
``trailing_ms``. An utterance that grows past ``max_utterance_ms`` is cut at its
lowest-energy window in the latter half, on a window boundary, and continues seamlessly
(the pieces are contiguous, so no audio is lost or doubled). An utterance whose speech
totals less than ``min_speech_ms`` is a click and is dropped.

The same object serves file transcription and the real-time pipeline: nothing here
knows about time except sample counts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from sipscribe.asr.vad import VoiceDetector


@dataclass(frozen=True, slots=True)
class EndpointerConfig:
    threshold: float = 0.5
    hysteresis: float = 0.15
    silence_ms: int = 400
    preroll_ms: int = 200
    trailing_ms: int = 200
    max_utterance_ms: int = 15000
    min_speech_ms: int = 150

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ValueError("threshold must be between 0 and 1")
        if self.max_utterance_ms < 1000:
            raise ValueError("max_utterance_ms must be at least 1000")
        if self.trailing_ms > self.silence_ms:
            raise ValueError("trailing_ms cannot exceed silence_ms")

    @classmethod
    def from_settings(cls, settings: object) -> EndpointerConfig:
        silence = int(getattr(settings, "vad_silence_ms", 400))
        return cls(
            threshold=float(getattr(settings, "vad_threshold", 0.5)),
            silence_ms=silence,
            preroll_ms=int(getattr(settings, "vad_preroll_ms", 200)),
            trailing_ms=min(200, silence),
            max_utterance_ms=int(getattr(settings, "vad_max_utterance_ms", 15000)),
            min_speech_ms=int(getattr(settings, "vad_min_speech_ms", 150)),
        )


@dataclass(frozen=True, slots=True)
class Segment:
    """One utterance's audio and where it sits in the stream (sample indices)."""

    start: int
    end: int
    #: Start of the first speech window (``start`` includes the pre-roll).
    speech_start: int
    #: End of the last speech window (``end`` adds trailing silence).
    speech_end: int
    sample_rate: int
    audio: np.ndarray = field(repr=False)
    #: True when the utterance was cut at ``max_utterance_ms`` rather than by silence.
    forced_split: bool = False

    @property
    def start_ms(self) -> int:
        return self.start * 1000 // self.sample_rate

    @property
    def end_ms(self) -> int:
        return self.end * 1000 // self.sample_rate

    @property
    def speech_start_ms(self) -> int:
        return self.speech_start * 1000 // self.sample_rate

    @property
    def speech_end_ms(self) -> int:
        return self.speech_end * 1000 // self.sample_rate

    @property
    def duration_ms(self) -> int:
        return (self.end - self.start) * 1000 // self.sample_rate


class _AudioBuffer:
    """Audio from ``start`` (absolute sample index) to ``end``, kept as chunks."""

    def __init__(self) -> None:
        self._chunks: deque[np.ndarray] = deque()
        self.start = 0
        self.end = 0

    def append(self, chunk: np.ndarray) -> None:
        if chunk.size:
            self._chunks.append(chunk)
            self.end += chunk.size

    def slice(self, a: int, b: int) -> np.ndarray:
        """Copy of samples [a, b); both must lie inside the buffer."""
        if not self.start <= a <= b <= self.end:
            raise ValueError(f"slice [{a}, {b}) outside buffer [{self.start}, {self.end})")
        out = np.empty(b - a, dtype=np.float32)
        pos = self.start
        filled = 0
        for chunk in self._chunks:
            c_end = pos + chunk.size
            if c_end > a and pos < b:
                lo = max(a, pos) - pos
                hi = min(b, c_end) - pos
                out[filled : filled + hi - lo] = chunk[lo:hi]
                filled += hi - lo
            if c_end >= b:
                break
            pos = c_end
        return out

    def discard_before(self, index: int) -> None:
        index = min(index, self.end)
        while self._chunks and self.start + self._chunks[0].size <= index:
            self.start += self._chunks.popleft().size
        if self._chunks and self.start < index:
            cut = index - self.start
            self._chunks[0] = self._chunks[0][cut:]
            self.start = index
        if not self._chunks:
            self.start = self.end = max(self.end, index)


class Endpointer:
    """Turns one stream's audio into utterance segments, incrementally."""

    def __init__(self, vad: VoiceDetector, config: EndpointerConfig | None = None) -> None:
        self.vad = vad
        self.config = config or EndpointerConfig()
        self.sample_rate = vad.sample_rate
        self._win = vad.window_samples
        rate = self.sample_rate
        cfg = self.config
        self._silence = cfg.silence_ms * rate // 1000
        self._preroll = cfg.preroll_ms * rate // 1000
        self._trailing = cfg.trailing_ms * rate // 1000
        self._max_len = cfg.max_utterance_ms * rate // 1000
        self._min_speech = cfg.min_speech_ms * rate // 1000
        self._buf = _AudioBuffer()
        self._pending = np.zeros(0, dtype=np.float32)
        self._scored = 0  # absolute index up to which windows were scored
        self._last_end = 0  # end of the last emitted segment
        self._in_speech = False
        self._utt_start = 0
        self._speech_start = 0
        self._last_speech_end = 0
        self._silence_run = 0
        # per window of the open utterance: (start index, rms energy, is speech)
        self._windows: list[tuple[int, float, bool]] = []

    @property
    def position(self) -> int:
        """Samples consumed so far (the stream clock, in samples)."""
        return self._buf.end

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def push(self, samples: np.ndarray) -> list[Segment]:
        """Feed float32 (or int16) mono audio; return the utterances it completed."""
        audio = np.asarray(samples)
        if audio.dtype == np.int16:
            audio = audio.astype(np.float32) / 32768.0
        elif audio.dtype != np.float32:
            audio = audio.astype(np.float32)
        if audio.ndim != 1:
            raise ValueError(f"endpointer takes mono audio, got shape {audio.shape}")
        self._buf.append(audio)
        data = np.concatenate((self._pending, audio)) if self._pending.size else audio
        out: list[Segment] = []
        n_windows = data.size // self._win
        for k in range(n_windows):
            window = data[k * self._win : (k + 1) * self._win]
            out.extend(self._score(window))
        self._pending = data[n_windows * self._win :].copy()
        self._trim()
        return out

    def flush(self) -> list[Segment]:
        """End of stream: close the open utterance, if it holds enough speech."""
        out: list[Segment] = []
        if self._in_speech:
            end = min(self._last_speech_end + self._trailing, self._buf.end)
            seg = self._close(end)
            if seg is not None:
                out.append(seg)
        self._pending = np.zeros(0, dtype=np.float32)
        self._scored = self._buf.end
        self._trim()
        return out

    def skip(self, samples: int) -> list[Segment]:
        """Advance the clock over audio that is not to be transcribed (hold, pause).

        The open utterance is closed first, so nothing said before the gap is lost.
        """
        out = self.flush()
        if samples > 0:
            self._buf.end += samples
            self._buf.discard_before(self._buf.end)
            self._scored = self._last_end = max(self._last_end, self._buf.end)
        self.vad.reset()
        return out

    # -- internals ----------------------------------------------------------------------
    def _score(self, window: np.ndarray) -> list[Segment]:
        w0 = self._scored
        w1 = w0 + self._win
        self._scored = w1
        p = self.vad.probability(window)
        cfg = self.config
        out: list[Segment] = []
        if not self._in_speech:
            if p >= cfg.threshold:
                self._in_speech = True
                self._utt_start = max(w0 - self._preroll, self._last_end, self._buf.start)
                self._speech_start = w0
                self._last_speech_end = w1
                self._silence_run = 0
                self._windows = [(w0, _rms(window), True)]
            return out
        is_speech = p >= cfg.threshold - cfg.hysteresis
        self._windows.append((w0, _rms(window), is_speech))
        if is_speech:
            self._last_speech_end = w1
            self._silence_run = 0
        else:
            self._silence_run += self._win
            if self._silence_run >= self._silence:
                end = min(self._last_speech_end + self._trailing, w1)
                seg = self._close(end)
                if seg is not None:
                    out.append(seg)
                return out
        if w1 - self._utt_start >= self._max_len:
            out.append(self._split(w1))
        return out

    def _close(self, end: int) -> Segment | None:
        start = self._utt_start
        speech = sum(self._win for (s, _, sp) in self._windows if sp and s < end)
        self._in_speech = False
        self._windows = []
        if speech < self._min_speech or end <= start:
            return None
        self._last_end = end
        return Segment(
            start=start,
            end=end,
            speech_start=max(self._speech_start, start),
            speech_end=min(self._last_speech_end, end),
            sample_rate=self.sample_rate,
            audio=self._buf.slice(start, end),
        )

    def _split(self, now: int) -> Segment:
        """Cut the open utterance at its quietest window in the latter half."""
        start = self._utt_start
        half = start + (now - start) // 2
        # Cut on a window boundary: the quiet window opens the next piece, so every
        # scored window belongs wholly to one segment.
        candidates = [(e, s) for (s, e, _) in self._windows if s >= half and s > start]
        cut = min(candidates)[1] if candidates else now
        last_speech = max(
            (s + self._win for (s, _, sp) in self._windows if sp and s + self._win <= cut),
            default=cut,
        )
        seg = Segment(
            start=start,
            end=cut,
            speech_start=max(self._speech_start, start),
            speech_end=last_speech,
            sample_rate=self.sample_rate,
            audio=self._buf.slice(start, cut),
            forced_split=True,
        )
        self._last_end = cut
        self._utt_start = cut
        self._speech_start = cut
        self._windows = [w for w in self._windows if w[0] >= cut]
        return seg

    def _trim(self) -> None:
        """Keep only what a future segment may need: the open utterance or the pre-roll."""
        if self._in_speech:
            keep_from = self._utt_start
        else:
            keep_from = max(self._scored - self._preroll, self._last_end)
        self._buf.discard_before(min(keep_from, self._scored))


def _rms(window: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(window, dtype=np.float64))))
