"""Transcript renderings: the transcription payload (JSON), plain text, WebVTT, SRT.

Shared by the ``transcribe`` command and the per-call transcript downloads, so a file
transcribed offline and a live call read the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sipscribe.pipeline.utterance import Utterance

FORMATS = ("json", "text", "vtt", "srt")


def speaker_label(u: Utterance) -> str:
    return u.role.capitalize() if u.role else f"Channel {u.channel}"


def transcription_payload(
    utterances: Iterable[Utterance],
    *,
    state: str = "speech_recognized",
    include_words: bool = False,
) -> dict[str, Any]:
    """``{"speech_state": …, "payload": [{"channel", "start", "end", "text", …}]}``; seconds."""
    payload = []
    for u in sorted(utterances, key=lambda x: (x.start_ms, x.channel)):
        item: dict[str, Any] = {
            "channel": u.channel,
            "start": round(u.start_ms / 1000, 3),
            "end": round(u.end_ms / 1000, 3),
            "text": u.text,
        }
        if u.role:
            item["role"] = u.role
        if include_words:
            item["words"] = [
                {
                    "word": w.text.strip(),
                    "start": round(w.start_ms / 1000, 3),
                    "end": round(w.end_ms / 1000, 3),
                    "probability": round(w.probability, 4),
                }
                for w in u.words
            ]
        payload.append(item)
    return {"speech_state": state, "payload": payload}


def render(utterances: Sequence[Utterance], fmt: str, *, include_words: bool = False) -> str:
    ordered = sorted(utterances, key=lambda x: (x.start_ms, x.channel))
    if fmt == "json":
        body = transcription_payload(ordered, include_words=include_words)
        return json.dumps(body, ensure_ascii=False, indent=2) + "\n"
    if fmt == "text":
        return "".join(
            f"[{_mmss(u.start_ms)}] {speaker_label(u).upper()}: {u.text}\n" for u in ordered
        )
    if fmt == "vtt":
        cues = [
            f"{_ts(u.start_ms, '.')} --> {_ts(u.end_ms, '.')}\n<v {speaker_label(u)}>"
            f"{_cue_text(u.text)}\n"
            for u in ordered
        ]
        return "WEBVTT\n\n" + "\n".join(cues)
    if fmt == "srt":
        cues = [
            f"{i}\n{_ts(u.start_ms, ',')} --> {_ts(u.end_ms, ',')}\n{speaker_label(u)}: {u.text}\n"
            for i, u in enumerate(ordered, start=1)
        ]
        return "\n".join(cues)
    raise ValueError(f"unknown transcript format {fmt!r}; choose from {', '.join(FORMATS)}")


def _mmss(ms: int) -> str:
    s = ms // 1000
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60:02d}:{s % 60:02d}"


def _ts(ms: int, sep: str) -> str:
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, milli = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{milli:03d}"


def _cue_text(text: str) -> str:
    # WebVTT cue text escapes &, < and >; escaping ">" also rules out a stray "-->".
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
