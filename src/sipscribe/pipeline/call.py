"""Per-call and per-stream real-time pipelines: PCM in, ordered events out.

Theory of operation. The media edge calls ``StreamPipeline.feed`` with decoded PCM for
each participant stream; that call is synchronous and cheap (resample, VAD, endpoint)
and never waits on recognition: finished segments are *submitted* to the shared
``AsrPool`` and their futures queued in order. One consumer task per stream awaits
them in order and turns each into an ``Utterance``. Everything a call emits goes
through one ordered outbox per call, drained by one publisher task onto the bus, so
events of a call keep their order and the sequence numbers are dense. ``end`` flushes
every stream, waits for the last recognition and only then publishes ``call.ended``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from sipscribe.asr.base import ASR_SAMPLE_RATE, Transcript
from sipscribe.asr.pool import AsrPool
from sipscribe.asr.vad import SileroVad, VoiceDetector
from sipscribe.media.resample import StreamResampler
from sipscribe.pipeline.bus import EventBus
from sipscribe.pipeline.endpointer import Endpointer, EndpointerConfig, Segment
from sipscribe.pipeline.events import (
    CallEnded,
    CallStarted,
    DtmfReceived,
    PipelineEvent,
    StreamStarted,
    StreamStopped,
    UtteranceEvent,
    utcnow,
)
from sipscribe.pipeline.speakers import SpeakerTimeline
from sipscribe.pipeline.utterance import Role, Utterance, words_from_transcript

log = logging.getLogger(__name__)


@dataclass
class PipelineContext:
    """What every call pipeline of the process shares."""

    #: The shared recogniser; None in media-only mode (record and count, no ASR).
    pool: AsrPool | None
    bus: EventBus
    endpointer: EndpointerConfig = field(default_factory=EndpointerConfig)
    vad_factory: Callable[[], VoiceDetector] = field(default=lambda: SileroVad(ASR_SAMPLE_RATE))
    language: str | None = "en"
    #: Where per-stream WAV recordings go; None disables recording.
    recordings_dir: Path | None = None
    #: Called with (seconds from end of speech to recognised) for each utterance.
    on_latency: Callable[[float], None] | None = None


class StreamPipeline:
    """One participant's audio: resample → endpoint → recognise, in order."""

    def __init__(
        self,
        call: CallPipeline,
        *,
        stream_id: str,
        channel: int,
        role: Role | None,
        input_rate: int,
        codec: str | None = None,
        label: str | None = None,
    ) -> None:
        self.call = call
        self.stream_id = stream_id
        self.channel = channel
        self.role = role
        self.input_rate = input_rate
        self.codec = codec
        self.label = label
        #: Names the speakers of a mixed stream (dial-out with speaker events).
        self.speakers: SpeakerTimeline | None = None
        ctx = call.ctx
        self.transcribing = ctx.pool is not None
        self._resampler = StreamResampler(input_rate, ASR_SAMPLE_RATE)
        self._endpointer = (
            Endpointer(ctx.vad_factory(), ctx.endpointer) if self.transcribing else None
        )
        self._pending: asyncio.Queue[tuple[Segment, asyncio.Future[Transcript], Any] | None] = (
            asyncio.Queue()
        )
        self._consumer = asyncio.create_task(self._consume(), name=f"stream-{stream_id}")
        self._paused = False
        self._closed = False
        self._inflight = 0
        self._settled = asyncio.Event()
        self._settled.set()
        self.input_samples = 0
        self.paused_samples = 0
        self.utterances = 0
        self.failed_utterances = 0
        self._wav: wave.Wave_write | None = None
        self.recording_path: Path | None = None
        if ctx.recordings_dir is not None:
            self._open_recording(ctx.recordings_dir)

    # -- feeding (synchronous, called by the media edge) ---------------------------------
    def feed(self, pcm: np.ndarray) -> None:
        """Decoded mono int16 PCM at ``input_rate``; never blocks."""
        if self._closed or pcm.size == 0:
            return
        self.input_samples += pcm.size
        if self._wav is not None:
            self._wav.writeframes(np.asarray(pcm, dtype=np.int16).tobytes())
        if self._endpointer is None:
            return
        audio = self._resampler.process(pcm)
        if self._paused:
            self.paused_samples += pcm.size
            self._submit(self._endpointer.skip(audio.size))
            return
        self._submit(self._endpointer.push(audio))

    def feed_silence(self, samples: int) -> None:
        """Keep timestamps aligned over a gap with no packets (hold, late start)."""
        if samples > 0:
            self.feed(np.zeros(samples, dtype=np.int16))

    def dtmf(self, digit: str, *, start_ms: int, duration_ms: int) -> None:
        self.call.emit(
            DtmfReceived(
                call_id=self.call.call_id,
                stream_id=self.stream_id,
                channel=self.channel,
                role=self.role,
                digit=digit,
                start_ms=start_ms,
                duration_ms=duration_ms,
            )
        )

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Stop transcribing (hold, stop-streaming); what was said so far is kept."""
        if not self._paused:
            self._paused = True
            if self._endpointer is not None:
                self._submit(self._endpointer.flush())

    def resume(self) -> None:
        self._paused = False

    @property
    def position_ms(self) -> int:
        return self.input_samples * 1000 // self.input_rate

    def stats(self) -> dict[str, Any]:
        return {
            "audio_ms": self.position_ms,
            "paused_ms": self.paused_samples * 1000 // self.input_rate,
            "utterances": self.utterances,
            "failed_utterances": self.failed_utterances,
            "codec": self.codec,
            "recording": str(self.recording_path) if self.recording_path else None,
        }

    async def close(self) -> None:
        """Flush the endpointer and wait until every utterance of this stream is out."""
        if self._closed:
            await self._consumer
            return
        self._closed = True
        if self._endpointer is not None and not self._paused:
            segs = self._endpointer.push(self._resampler.flush())
            self._submit(segs + self._endpointer.flush())
        self._pending.put_nowait(None)
        await self._consumer
        if self._wav is not None:
            self._wav.close()
            self._wav = None

    # -- internals ---------------------------------------------------------------------
    def _submit(self, segments: list[Segment]) -> None:
        pool = self.call.ctx.pool
        if not segments or pool is None or self._endpointer is None:
            return
        now = utcnow()
        for seg in segments:
            lag_s = (self._endpointer.position - seg.speech_end) / ASR_SAMPLE_RATE
            fut = pool.submit(seg.audio, key=self.call.call_id, language=self.call.language)
            self._inflight += 1
            self._settled.clear()
            self._pending.put_nowait((seg, fut, now - timedelta(seconds=lag_s)))

    async def settle(self) -> None:
        """Wait until every utterance submitted so far has been recognised and emitted."""
        await self._settled.wait()

    async def _consume(self) -> None:
        while (item := await self._pending.get()) is not None:
            seg, fut, speech_ended_at = item
            try:
                transcript = await fut
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failed_utterances += 1
                log.error(
                    "call %s stream %s: recognition failed: %s",
                    self.call.call_id,
                    self.stream_id,
                    exc,
                )
                transcript = None
            if transcript is not None and transcript.text:
                self.utterances += 1
                self.call.emit_utterance(self, seg, transcript, speech_ended_at)
            self._inflight -= 1
            if self._inflight == 0:
                self._settled.set()

    def _open_recording(self, root: Path) -> None:
        folder = root / _safe(self.call.call_id)
        folder.mkdir(parents=True, exist_ok=True)
        self.recording_path = folder / f"{self.channel}-{_safe(self.stream_id)}.wav"
        wav = wave.open(str(self.recording_path), "wb")  # noqa: SIM115 - open for the call
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(self.input_rate)
        self._wav = wav


class CallPipeline:
    """All streams of one call and the ordered events they produce."""

    def __init__(
        self,
        ctx: PipelineContext,
        call_id: str,
        *,
        source: str = "siprec",
        external_id: str | None = None,
        tenant_id: str | None = None,
        language: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.ctx = ctx
        self.call_id = call_id
        self.source = source
        self.external_id = external_id
        self.tenant_id = tenant_id
        self.language = language or ctx.language
        self.metadata = metadata or {}
        self.streams: dict[str, StreamPipeline] = {}
        self._sequence = 0
        self._outbox: asyncio.Queue[PipelineEvent | None] = asyncio.Queue()
        self._publisher: asyncio.Task[None] | None = None
        self._started_at = utcnow()
        self.ended = False

    async def start(self) -> None:
        self._publisher = asyncio.create_task(self._publish(), name=f"call-{self.call_id}")
        self.emit(
            CallStarted(
                call_id=self.call_id,
                source=self.source,
                external_id=self.external_id,
                tenant_id=self.tenant_id,
                metadata=self.metadata,
                at=self._started_at,
            )
        )

    def add_stream(
        self,
        stream_id: str,
        *,
        channel: int,
        role: Role | None,
        input_rate: int,
        codec: str | None = None,
        label: str | None = None,
        paused: bool = False,
    ) -> StreamPipeline:
        if stream_id in self.streams:
            raise ValueError(f"call {self.call_id} already has stream {stream_id}")
        stream = StreamPipeline(
            self,
            stream_id=stream_id,
            channel=channel,
            role=role,
            input_rate=input_rate,
            codec=codec,
            label=label,
        )
        if paused:
            stream.pause()
        self.streams[stream_id] = stream
        self.emit(
            StreamStarted(
                call_id=self.call_id,
                stream_id=stream_id,
                channel=channel,
                role=role,
                codec=codec,
                label=label,
            )
        )
        return stream

    async def remove_stream(self, stream_id: str) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return
        await stream.close()
        self.emit(StreamStopped(self.call_id, stream_id, stream.stats()))

    def pause(self, stream_ids: list[str] | None = None) -> None:
        for sid in stream_ids or list(self.streams):
            self.streams[sid].pause()

    def resume(self, stream_ids: list[str] | None = None) -> None:
        for sid in stream_ids or list(self.streams):
            self.streams[sid].resume()

    def emit(self, event: PipelineEvent) -> None:
        self._outbox.put_nowait(event)

    def emit_utterance(
        self, stream: StreamPipeline, seg: Segment, tr: Transcript, speech_ended_at: Any
    ) -> None:
        self._sequence += 1
        recognized_at = utcnow()
        speaker = None
        if stream.speakers is not None:
            found = stream.speakers.speaker_for(seg.speech_start_ms, seg.speech_end_ms)
            speaker = found.to_dict() if found is not None else None
        utt = Utterance(
            call_id=self.call_id,
            stream_id=stream.stream_id,
            channel=stream.channel,
            role=stream.role,
            sequence=self._sequence,
            start_ms=seg.speech_start_ms,
            end_ms=seg.speech_end_ms,
            text=tr.text,
            words=words_from_transcript(tr, offset_ms=seg.start_ms, limit_ms=seg.end_ms),
            confidence=tr.confidence,
            language=tr.language,
            speech_ended_at=speech_ended_at,
            recognized_at=recognized_at,
            speaker=speaker,
        )
        if self.ctx.on_latency is not None:
            self.ctx.on_latency((recognized_at - speech_ended_at).total_seconds())
        self.emit(UtteranceEvent(utt, at=recognized_at))

    @property
    def utterance_count(self) -> int:
        return self._sequence

    async def end(self, reason: str = "bye") -> None:
        """Flush every stream, wait for its last utterance, then publish ``call.ended``."""
        if self.ended:
            return
        self.ended = True
        streams = list(self.streams.values())
        self.streams.clear()
        # Streams flush in parallel; their stream.stopped events follow every utterance.
        await asyncio.gather(*(stream.close() for stream in streams))
        for stream in streams:
            self.emit(StreamStopped(self.call_id, stream.stream_id, stream.stats()))
        duration = int((utcnow() - self._started_at).total_seconds() * 1000)
        self.emit(CallEnded(self.call_id, reason, self._sequence, duration))
        self._outbox.put_nowait(None)
        if self._publisher is not None:
            await self._publisher

    async def _publish(self) -> None:
        while (event := await self._outbox.get()) is not None:
            try:
                await self.ctx.bus.publish(event)
            except Exception:  # a broken subscriber must not stop the call's events
                log.exception("call %s: publishing %s failed", self.call_id, event.type)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:120] or "x"
