"""Silence (or tone) the redacted words in stored recordings.

Live calls: ``RecordingRedactor`` subscribes to the public bus, collects the time spans
of every redacted utterance per stream and, when the stream stops, rewrites its WAV with
those spans replaced. Times line up because the pipeline's recording and its utterance
clock both count from the stream's first sample.

Uploads: the file holds every party, one channel each, in any format. The upload flow
collects the call's spans per channel with ``CallSpans`` and, *before* it announces the
call's end (so before any bundle or "stored" state can point at the file), replaces the
file with ``redact_recording``: a 16-bit WAV at the original rate and channel count,
silenced over the spans. Lossless, so nothing but the masked words changes. A call with
nothing masked (or in "unredacted" mode, where nothing is) keeps its file as uploaded.

Every rewrite goes to a temporary file renamed over the target, so a crash never leaves
a half-redacted file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
import wave
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from sipscribe.intelligence.redaction import TimeSpan, redact_audio
from sipscribe.media.audiofile import MAX_CHANNELS, AudioFileError, probe
from sipscribe.pipeline.bus import EventBus, Subscription
from sipscribe.pipeline.events import PipelineEvent, StreamStopped, UtteranceEvent

log = logging.getLogger(__name__)


#: Word times from recognition can be a few hundred ms off; silence this much more on
#: each side so no edge of a masked word stays audible.
PAD_MS = 400

AudioMode = Literal["silence", "tone"]


def pad_spans(spans: Iterable[TimeSpan], pad_ms: int) -> list[TimeSpan]:
    return [TimeSpan(max(0, sp.start_ms - pad_ms), sp.end_ms + pad_ms, sp.kind) for sp in spans]


class RecordingRedactor:
    def __init__(self, *, mode: AudioMode = "silence", pad_ms: int = PAD_MS) -> None:
        self.mode = mode
        self.pad_ms = pad_ms
        self._spans: dict[str, list[TimeSpan]] = defaultdict(list)
        self.redacted_files = 0

    async def run(self, subscription: Subscription) -> None:
        async for event in subscription:
            await self.publish(event)

    async def publish(self, event: PipelineEvent) -> None:
        if isinstance(event, UtteranceEvent):
            spans = getattr(event, "redactions", ())
            if spans:
                self._spans[event.utterance.stream_id].extend(spans)
        elif isinstance(event, StreamStopped):
            spans = self._spans.pop(event.stream_id, [])
            path = (event.stats or {}).get("recording")
            if spans and path:
                padded = pad_spans(spans, self.pad_ms)
                try:
                    await asyncio.to_thread(redact_wav, Path(path), padded, self.mode)
                    self.redacted_files += 1
                except Exception:
                    log.exception("could not redact recording %s", path)


def redact_wav(path: Path, spans: list[TimeSpan], mode: AudioMode) -> None:
    with wave.open(str(path), "rb") as src:
        params = src.getparams()
        pcm = np.frombuffer(src.readframes(params.nframes), dtype=np.int16)
    if params.nchannels != 1 or params.sampwidth != 2:
        raise ValueError(f"{path}: expected 16-bit mono, the pipeline's recording format")
    out = redact_audio(pcm, params.framerate, spans, mode=mode)
    tmp = path.with_suffix(".redacting.wav")
    with wave.open(str(tmp), "wb") as dst:
        dst.setparams(params)
        dst.writeframes(np.asarray(out, dtype=np.int16).tobytes())
    os.replace(tmp, path)


# -- uploads ------------------------------------------------------------------------------


class CallSpans:
    """One call's redacted time spans per channel, read off the public bus.

    Subscribe (enter the context) before the call's first event is published; ``wait``
    returns once every stream in ``stream_ids`` has stopped. The redaction sink keeps a
    call's events in order and a stopped stream releases its held utterances, so by then
    every utterance of the call has come out, with its spans. The subscription is dropped
    as soon as that happens: a reliable subscriber nobody reads would stall the bus.
    """

    def __init__(self, bus: EventBus, call_id: str, stream_ids: Iterable[str]) -> None:
        self.call_id = call_id
        self._bus = bus
        self._waiting = set(stream_ids)
        self._name = f"call-spans:{call_id}:{uuid.uuid4().hex[:8]}"
        self._spans: dict[int, list[TimeSpan]] = defaultdict(list)
        self._task: asyncio.Task[dict[int, list[TimeSpan]]] | None = None
        self._subscription: Subscription | None = None

    async def __aenter__(self) -> CallSpans:
        self._subscription = self._bus.subscribe(self._name, reliable=True)
        self._task = asyncio.get_running_loop().create_task(
            self._collect(self._subscription), name=self._name
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.wait([self._task])
        if not self._task.cancelled():
            self._task.exception()  # reported by ``wait`` already, if anyone waited
        self._unsubscribe()  # a task cancelled before it ran never reached its ``finally``

    async def wait(self, timeout: float | None = None) -> dict[int, list[TimeSpan]]:
        """The spans per channel (stream ms), once all the call's streams have stopped."""
        if self._task is None:
            raise RuntimeError("CallSpans.wait outside its context")
        return await asyncio.wait_for(asyncio.shield(self._task), timeout)

    async def _collect(self, subscription: Subscription) -> dict[int, list[TimeSpan]]:
        try:
            while self._waiting:
                event = await subscription.get()
                if event is None:
                    raise RuntimeError(f"the event bus closed before call {self.call_id} ended")
                if event.call_id != self.call_id:
                    continue
                if isinstance(event, UtteranceEvent):
                    spans = getattr(event, "redactions", ())
                    if spans:
                        self._spans[event.utterance.channel].extend(spans)
                elif isinstance(event, StreamStopped):
                    self._waiting.discard(event.stream_id)
            return dict(self._spans)
        finally:
            self._unsubscribe()

    def _unsubscribe(self) -> None:
        self._bus.unsubscribe(self._name)
        subscription = self._subscription
        while subscription is not None and not subscription.queue.empty():
            subscription.queue.get_nowait()  # wakes a publisher waiting for room


def redact_recording(
    path: Path,
    spans: Mapping[int, Sequence[TimeSpan]],
    *,
    mode: AudioMode = "silence",
    pad_ms: int = PAD_MS,
) -> Path:
    """Replace a recording of any format by a 16-bit WAV with each channel's spans silenced.

    ``spans`` maps a channel (0-based) to its spans in ms from the file's first sample;
    each is widened by ``pad_ms``. The WAV keeps the original rate and channel count and
    is ``path`` with the suffix ``.wav``; the original is removed, never kept. Returns the
    new path. Decodes and writes one second at a time, so long files cost little memory.
    """
    info = probe(path)
    channels, rate = info.channels, info.source_rate
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioFileError(f"{path}: {channels} audio channels; can redact 1 or 2")
    padded = [pad_spans(spans.get(ch, ()), pad_ms) for ch in range(channels)]
    target = path if path.suffix.lower() == ".wav" else path.with_suffix(".wav")
    tmp = target.with_suffix(".redacting.wav")
    try:
        with wave.open(str(tmp), "wb") as dst:
            dst.setnchannels(channels)
            dst.setsampwidth(2)
            dst.setframerate(rate)
            for second, block in enumerate(_pcm16_seconds(path, channels, rate)):
                out = block.copy()
                for ch in range(channels):
                    if padded[ch]:
                        out[:, ch] = redact_audio(
                            block[:, ch], rate, padded[ch], mode=mode, offset_ms=second * 1000
                        )
                dst.writeframes(out.tobytes())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if target != path:
        path.unlink(missing_ok=True)
    return target


def _pcm16_seconds(path: Path, channels: int, rate: int) -> Iterator[np.ndarray]:
    """Interleaved int16 blocks (samples × channels) of exactly one second (the last may
    be shorter), at the file's own rate: block *k* starts at *k* × 1000 ms, exactly."""
    import av

    layout = "stereo" if channels == 2 else "mono"
    resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
    pending = np.zeros((0, channels), dtype=np.int16)
    with av.open(str(path)) as container:
        stream = next(s for s in container.streams if s.type == "audio")
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                pending = np.concatenate((pending, out.to_ndarray().reshape(-1, channels)))
            while pending.shape[0] >= rate:
                yield pending[:rate]
                pending = pending[rate:]
        for out in resampler.resample(None):
            pending = np.concatenate((pending, out.to_ndarray().reshape(-1, channels)))
    while pending.shape[0]:
        yield pending[:rate]
        pending = pending[rate:]
