from __future__ import annotations

import json

from sipscribe.delivery.payloads import (
    CallContext,
    event_payload,
    idempotency_key,
    live_message,
    message_key,
    summary_payload,
)
from sipscribe.pipeline.events import CallEnded, CallStarted, DtmfReceived, UtteranceEvent

from .helpers import call_events


def events(**kw):
    return list(call_events("c1", "ten", utterances=2, dtmf_after=1, **kw))


def context(evts) -> CallContext:
    ctx = CallContext("c1")
    for e in evts:
        if isinstance(e, CallStarted):
            ctx.external_id = e.external_id
            ctx.metadata = e.metadata
        elif e.type == "stream.started":
            ctx.streams[e.stream_id] = (e.role, e.label)
    return ctx


def test_transcript_payload_is_the_media_gateway_form() -> None:
    evts = events()
    ctx = context(evts)
    utterance = next(e for e in evts if isinstance(e, UtteranceEvent))
    assert event_payload(utterance, ctx) == {
        "type": "transcript",
        "callId": "c1",
        "sequence": 1,
        "externalConversationId": "ext-1",
        "streamId": "c1:1",
        "sender": {"externalId": "sip:+15551230000@pbx.example", "role": "customer"},
        "autotranscribeResponse": {
            "message": "transcript",
            "start": 1000,
            "end": 1800,
            "utterance": [{"text": "utterance number 1"}],
        },
    }


def test_sender_falls_back_to_stream_label_then_id() -> None:
    evts = events()
    ctx = context(evts)
    ctx.metadata = {}
    utterance = next(e for e in evts if isinstance(e, UtteranceEvent))
    assert event_payload(utterance, ctx)["sender"]["externalId"] == "2"
    ctx.streams.clear()
    assert event_payload(utterance, ctx)["sender"]["externalId"] == "c1:1"
    ctx.external_id = None
    assert event_payload(utterance, ctx)["externalConversationId"] == "c1"


def test_raw_text_never_reaches_a_payload_or_live_message() -> None:
    evts = events(redacted=True)
    ctx = context(evts)
    for event in evts:
        if isinstance(event, UtteranceEvent):
            assert event.raw is not None  # the raw text is there, on .raw
            for out in (event_payload(event, ctx), live_message(event, 0)):
                text = json.dumps(out)
                assert "utterance number 1" not in text and "utterance number 2" not in text
                assert "raw_text" not in text


def test_other_events_keep_pipeline_fields() -> None:
    evts = events()
    ctx = context(evts)
    dtmf = next(e for e in evts if isinstance(e, DtmfReceived))
    body = event_payload(dtmf, ctx)
    assert body["type"] == "dtmf" and body["digit"] == "5" and body["callId"] == "c1"
    assert "call_id" not in body
    ended = event_payload(evts[-1], ctx)
    assert ended["type"] == "call.ended" and ended["utterances"] == 2


def test_idempotency_keys_and_live_keys() -> None:
    evts = events()
    keys = [idempotency_key(e) for e in evts]
    assert keys[0] == "call.started:c1"
    assert "transcript:c1:1" in keys and "dtmf:c1:c1:1:1900" in keys
    assert keys[-1] == "call.ended:c1"
    assert len(set(keys)) == len(keys)
    assert message_key(live_message(evts[-1], 2)) == ("call.ended",)
    dtmf = next(e for e in evts if isinstance(e, DtmfReceived))
    assert live_message(dtmf, 1)["sequence"] == 1
    assert message_key(live_message(dtmf, 1)) == ("dtmf", "c1:1", 1900)
    assert isinstance(evts[-1], CallEnded)


def test_summary_payload() -> None:
    body = summary_payload(call_id="c1", external_id=None, state="failed", result=None, error="x")
    assert body == {
        "type": "summary.ready",
        "callId": "c1",
        "externalConversationId": "c1",
        "state": "failed",
        "summary": None,
        "error": "x",
    }
