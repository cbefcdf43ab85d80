"""Silence (or tone) the redacted words in stored recordings.

Subscribes to the public bus: collects the time spans of every redacted utterance per
stream and, when the stream stops, rewrites its WAV with those spans replaced. Times
line up because the pipeline's recording and its utterance clock both count from the
stream's first sample. The rewrite goes to a temporary file renamed over the original,
so a crash never leaves a half-redacted file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import wave
from collections import defaultdict
from pathlib import Path
from typing import Literal

import numpy as np

from sipscribe.intelligence.redaction import TimeSpan, redact_audio
from sipscribe.pipeline.bus import Subscription
from sipscribe.pipeline.events import PipelineEvent, StreamStopped, UtteranceEvent

log = logging.getLogger(__name__)


#: Word times from recognition can be a few hundred ms off; silence this much more on
#: each side so no edge of a masked word stays audible.
PAD_MS = 400


class RecordingRedactor:
    def __init__(
        self, *, mode: Literal["silence", "tone"] = "silence", pad_ms: int = PAD_MS
    ) -> None:
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
                padded = [
                    TimeSpan(max(0, sp.start_ms - self.pad_ms), sp.end_ms + self.pad_ms, sp.kind)
                    for sp in spans
                ]
                try:
                    await asyncio.to_thread(redact_wav, Path(path), padded, self.mode)
                    self.redacted_files += 1
                except Exception:
                    log.exception("could not redact recording %s", path)


def redact_wav(path: Path, spans: list[TimeSpan], mode: Literal["silence", "tone"]) -> None:
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
