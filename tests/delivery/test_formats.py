from __future__ import annotations

import json

import pytest

from sipscribe.delivery.formats import render, transcription_payload
from sipscribe.pipeline.utterance import Utterance, UtteranceWord

U = [
    Utterance(
        "c",
        "c:1",
        1,
        "customer",
        2,
        4200,
        6100,
        "I want a refund.",
        (UtteranceWord(" I", 4200, 4300, 0.9),),
    ),
    Utterance("c", "c:0", 0, "agent", 1, 500, 3250, "Hello, how can I help?"),
    Utterance("c", "c:0", 0, None, 3, 65_000, 66_500, "a <b> & c --> d"),
]


def test_json_payload_shape_and_order() -> None:
    body = json.loads(render(U, "json", include_words=True))
    assert body["speech_state"] == "speech_recognized"
    assert [p["start"] for p in body["payload"]] == [0.5, 4.2, 65.0]
    assert body["payload"][0] == {
        "channel": 0,
        "start": 0.5,
        "end": 3.25,
        "text": "Hello, how can I help?",
        "role": "agent",
        "words": [],
    }
    assert body["payload"][1]["words"] == [
        {"word": "I", "start": 4.2, "end": 4.3, "probability": 0.9}
    ]
    assert "role" not in body["payload"][2]
    assert "words" not in transcription_payload(U)["payload"][0]


def test_text() -> None:
    assert render(U, "text") == (
        "[00:00] AGENT: Hello, how can I help?\n"
        "[00:04] CUSTOMER: I want a refund.\n"
        "[01:05] CHANNEL 0: a <b> & c --> d\n"
    )


def test_vtt_uses_voice_spans_and_escapes() -> None:
    out = render(U, "vtt")
    assert out.startswith("WEBVTT\n\n00:00:00.500 --> 00:00:03.250\n<v Agent>Hello")
    assert "<v Channel 0>a &lt;b&gt; &amp; c --&gt; d" in out


def test_srt_numbering_and_commas() -> None:
    out = render(U, "srt")
    assert out.splitlines()[:3] == [
        "1",
        "00:00:00,500 --> 00:00:03,250",
        "Agent: Hello, how can I help?",
    ]
    assert "\n3\n00:01:05,000 --> 00:01:06,500\n" in out


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown transcript format"):
        render(U, "docx")
