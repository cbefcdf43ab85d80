"""Transcribe an uploaded recording through the same path as a live call.

Segments are recognised on the process's shared, fair ``AsrPool`` (an upload never
starves live calls), and the results are published on the raw event bus like a live
call's, so redaction, storage, webhooks and the live feed treat both alike. The runner
returns once the store has the call's last utterance.

The uploaded file must not keep what the transcript masks. Each channel is a stream
(``{call_id}:{channel}``); after the last utterance every stream is stopped, which
releases utterances the redaction sink holds. Once all of them have come out on the
public bus with their spans, the file is replaced by its redacted WAV, and only then is
``call.ended`` published and the runner returns (the API then marks it "stored"). So a
completion bundle, and anything that waits for "stored", never sees the original.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from sipscribe.asr.pool import AsrPool
from sipscribe.asr.vad import VoiceDetector
from sipscribe.intelligence.recording_redactor import AudioMode, CallSpans, redact_recording
from sipscribe.intelligence.redaction import TimeSpan
from sipscribe.pipeline.bus import EventBus
from sipscribe.pipeline.endpointer import EndpointerConfig, Segment
from sipscribe.pipeline.events import (
    CallEnded,
    CallStarted,
    StreamStopped,
    UtteranceEvent,
    utcnow,
)
from sipscribe.pipeline.filejob import segment_file
from sipscribe.pipeline.utterance import Utterance, words_from_transcript
from sipscribe.store import calls as calls_q
from sipscribe.store.sink import StoreSink

log = logging.getLogger(__name__)


class UploadTranscriber:
    """The API's ``TranscriptionRunner`` for uploaded recordings.

    ``public_bus`` is the bus behind the redaction sink; without it the uploaded file is
    kept as is (nothing tells which spans were masked).
    """

    def __init__(
        self,
        *,
        pool: AsrPool,
        bus: EventBus,
        store: StoreSink,
        endpointer: EndpointerConfig,
        public_bus: EventBus | None = None,
        vad_factory: Callable[[], VoiceDetector] | None = None,
        language: str | None = "en",
        store_timeout_s: float = 600.0,
        audio_redaction: AudioMode = "silence",
    ) -> None:
        self.pool = pool
        self.bus = bus
        self.store = store
        self.endpointer = endpointer
        self.public_bus = public_bus
        self.vad_factory = vad_factory
        self.language = language
        self.store_timeout_s = store_timeout_s
        self.audio_redaction: AudioMode = audio_redaction

    async def transcribe_call(
        self, call_id: str, tenant_id: str, path: Path, roles: list[str] | None
    ) -> None:
        info, duration, segments = await asyncio.to_thread(
            segment_file, path, vad_factory=self.vad_factory, config=self.endpointer
        )
        streams = [f"{call_id}:{ch}" for ch in range(info.channels)]
        if self.public_bus is None:
            seq = await self._publish(call_id, tenant_id, path, info.channels, segments, roles)
        else:
            async with CallSpans(self.public_bus, call_id, streams) as spans:
                seq = await self._publish(call_id, tenant_id, path, info.channels, segments, roles)
                masked = await spans.wait(self.store_timeout_s)
            await self._redact_recording(call_id, tenant_id, path, masked)
        await self.bus.publish(
            CallEnded(
                call_id=call_id, reason="upload", utterances=seq, duration_ms=int(duration * 1000)
            )
        )
        await self.store.wait_ended(call_id, timeout=self.store_timeout_s)

    async def _publish(
        self,
        call_id: str,
        tenant_id: str,
        path: Path,
        channels: int,
        segments: list[tuple[int, Segment]],
        roles: list[str] | None,
    ) -> int:
        """Recognise and publish the call up to its streams' end; the utterance count."""
        await self.bus.publish(
            CallStarted(
                call_id=call_id,
                source="upload",
                tenant_id=tenant_id,
                metadata={"file": path.name, "channels": channels},
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
        for ch in range(channels):
            await self.bus.publish(StreamStopped(call_id=call_id, stream_id=f"{call_id}:{ch}"))
        return seq

    async def _redact_recording(
        self, call_id: str, tenant_id: str, path: Path, spans: dict[int, list[TimeSpan]]
    ) -> None:
        """Replace the upload by its redacted WAV; if that fails, delete it rather than keep
        audio the transcript masks."""
        if not any(spans.values()):
            return  # nothing masked, or an "unredacted" call: the upload stays as it came
        try:
            redacted: Path | None = await asyncio.to_thread(
                redact_recording, path, spans, mode=self.audio_redaction
            )
        except Exception:
            log.exception(
                "could not redact the uploaded recording; deleting it", extra={"call_id": call_id}
            )
            await asyncio.to_thread(path.unlink, missing_ok=True)
            redacted = None
        if redacted == path:
            return
        async with self.store.database.session() as session:
            await calls_q.update_call(
                session,
                call_id=call_id,
                tenant_id=tenant_id,
                changes={"recording_path": None if redacted is None else str(redacted)},
            )
