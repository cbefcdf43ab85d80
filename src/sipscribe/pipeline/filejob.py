"""Transcribe a call recording: one channel per party, utterances merged in time order.

Decode and endpointing stream through the file; recognition runs afterwards in packed
batches (see ``asr/whisper.py``), which is the cheap way to use Whisper on CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sipscribe.asr.base import ASR_SAMPLE_RATE, AsrEngine
from sipscribe.asr.vad import SileroVad, VoiceDetector
from sipscribe.media.audiofile import AudioInfo, iter_channels, probe
from sipscribe.pipeline.endpointer import Endpointer, EndpointerConfig, Segment
from sipscribe.pipeline.utterance import Role, Utterance, words_from_transcript

#: Utterances handed to the engine per call of ``transcribe_many``.
ASR_BATCH = 8

ProgressFn = Callable[[str, float, float | None], None]


@dataclass(frozen=True, slots=True)
class FileTranscription:
    info: AudioInfo
    duration_s: float
    utterances: list[Utterance]


def segment_file(
    path: Path | str,
    *,
    vad_factory: Callable[[], VoiceDetector] | None = None,
    config: EndpointerConfig | None = None,
    progress: ProgressFn | None = None,
) -> tuple[AudioInfo, float, list[tuple[int, Segment]]]:
    """Decode and endpoint every channel; return ``(info, duration, (channel, segment)…)``."""
    info = probe(path)
    make_vad = vad_factory or (lambda: SileroVad(ASR_SAMPLE_RATE))
    endpointers: list[Endpointer] = []
    found: list[tuple[int, Segment]] = []
    decoded = 0.0
    for chunks, decoded in iter_channels(path, rate=ASR_SAMPLE_RATE):
        if not endpointers:
            endpointers = [Endpointer(make_vad(), config) for _ in chunks]
        for ch, chunk in enumerate(chunks):
            found.extend((ch, seg) for seg in endpointers[ch].push(chunk))
        if progress:
            progress("decode", decoded, info.duration_s)
    for ch, ep in enumerate(endpointers):
        found.extend((ch, seg) for seg in ep.flush())
    found.sort(key=lambda cs: (cs[1].start, cs[0]))
    return info, decoded, found


def transcribe_segments(
    segments: Sequence[tuple[int, Segment]],
    engine: AsrEngine,
    *,
    call_id: str,
    roles: Sequence[Role] | None = None,
    language: str | None = None,
    progress: ProgressFn | None = None,
) -> list[Utterance]:
    """Recognise segments in packed batches and turn them into utterances."""
    utterances: list[Utterance] = []
    for b in range(0, len(segments), ASR_BATCH):
        batch = segments[b : b + ASR_BATCH]
        transcripts = engine.transcribe_many([seg.audio for _, seg in batch], language=language)
        for (ch, seg), tr in zip(batch, transcripts, strict=True):
            if not tr.text:
                continue
            words = words_from_transcript(tr, offset_ms=seg.start_ms, limit_ms=seg.end_ms)
            # The VAD places speech to a window (32 ms); Whisper's word times can be
            # several hundred ms off at the edges, so the utterance bounds are the VAD's.
            start, end = seg.speech_start_ms, seg.speech_end_ms
            utterances.append(
                Utterance(
                    call_id=call_id,
                    stream_id=f"{call_id}:{ch}",
                    channel=ch,
                    role=roles[ch] if roles and ch < len(roles) else None,
                    sequence=len(utterances) + 1,
                    start_ms=start,
                    end_ms=max(start, end),
                    text=tr.text,
                    words=words,
                    confidence=tr.confidence,
                    language=tr.language,
                )
            )
        if progress:
            progress("recognise", float(min(b + ASR_BATCH, len(segments))), float(len(segments)))
    return utterances


def transcribe_file(
    path: Path | str,
    engine: AsrEngine,
    *,
    call_id: str = "file",
    roles: Sequence[Role] | None = None,
    language: str | None = None,
    config: EndpointerConfig | None = None,
    vad_factory: Callable[[], VoiceDetector] | None = None,
    progress: ProgressFn | None = None,
) -> FileTranscription:
    """Transcribe each channel of a recording independently."""
    info, duration, segments = segment_file(
        path, vad_factory=vad_factory, config=config, progress=progress
    )
    if roles is not None and len(roles) < info.channels:
        raise ValueError(
            f"{len(roles)} role(s) given for a recording with {info.channels} channels"
        )
    utterances = transcribe_segments(
        segments, engine, call_id=call_id, roles=roles, language=language, progress=progress
    )
    return FileTranscription(info=info, duration_s=duration, utterances=utterances)
