"""Transcribe an uploaded recording through the same path as a live call.

Segments are recognised on the process's shared, fair ``AsrPool`` (an upload never
starves live calls), and the results are published on the raw event bus like a live
call's, so redaction, storage, webhooks and the live feed treat both alike. The runner
returns once the store has the call's last utterance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from sipscribe.asr.pool import AsrPool
from sipscribe.asr.vad import VoiceDetector
from sipscribe.pipeline.bus import EventBus
from sipscribe.pipeline.endpointer import EndpointerConfig
from sipscribe.pipeline.events import CallEnded, CallStarted, UtteranceEvent, utcnow
from sipscribe.pipeline.filejob import segment_file
from sipscribe.pipeline.utterance import Utterance, words_from_transcript
from sipscribe.store.sink import StoreSink


class UploadTranscriber:
    """The API's ``TranscriptionRunner`` for uploaded recordings."""

    def __init__(
        self,
        *,
        pool: AsrPool,
        bus: EventBus,
        store: StoreSink,
        endpointer: EndpointerConfig,
        vad_factory: Callable[[], VoiceDetector] | None = None,
        language: str | None = "en",
        store_timeout_s: float = 600.0,
    ) -> None:
        self.pool = pool
        self.bus = bus
        self.store = store
        self.endpointer = endpointer
        self.vad_factory = vad_factory
        self.language = language
        self.store_timeout_s = store_timeout_s

    async def transcribe_call(
        self, call_id: str, tenant_id: str, path: Path, roles: list[str] | None
    ) -> None:
        info, duration, segments = await asyncio.to_thread(
            segment_file, path, vad_factory=self.vad_factory, config=self.endpointer
        )
        await self.bus.publish(
            CallStarted(
                call_id=call_id,
                source="upload",
                tenant_id=tenant_id,
                metadata={"file": path.name, "channels": info.channels},
            )
        )
        futures = [
            self.pool.submit(seg.audio, key=call_id, language=self.language) for _, seg in segments
        ]
        transcripts = await asyncio.gather(*futures)
        seq = 0
        for (ch, seg), tr in zip(segments, transcripts, strict=True):
            if not tr.text:
                continue
            seq += 1
            role = roles[ch] if roles and ch < len(roles) else None
            utt = Utterance(
                call_id=call_id,
                stream_id=f"{call_id}:{ch}",
                channel=ch,
                role=role,  # type: ignore[arg-type]
                sequence=seq,
                start_ms=seg.speech_start_ms,
                end_ms=seg.speech_end_ms,
                text=tr.text,
                words=words_from_transcript(tr, offset_ms=seg.start_ms, limit_ms=seg.end_ms),
                confidence=tr.confidence,
                language=tr.language,
                recognized_at=utcnow(),
            )
            await self.bus.publish(UtteranceEvent(utt))
        await self.bus.publish(
            CallEnded(
                call_id=call_id, reason="upload", utterances=seq, duration_ms=int(duration * 1000)
            )
        )
        await self.store.wait_ended(call_id, timeout=self.store_timeout_s)
