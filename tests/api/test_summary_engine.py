"""The extractive fallback summary engine."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.api.summary_engine import (
    ExtractiveSummaryEngine,
    first_sentence,
    group_turns,
    lead_sentence,
    summarize_extractive,
)


def seg(channel: int, start: float, end: float, text: str, role: str | None = None) -> dict:
    return {"channel": channel, "start": start, "end": end, "text": text, "role": role}


CALL = [
    seg(0, 0.0, 2.0, "Thanks for calling Acme, this is Dana.", "agent"),
    seg(1, 2.5, 6.0, "Hi. I was charged twice for my March invoice. Why is that?", "customer"),
    seg(1, 6.2, 7.0, "Can you refund it?", "customer"),
    seg(0, 7.5, 10.0, "Sure. I see the duplicate charge and I am refunding it now.", "agent"),
]


async def test_summary_of_a_call() -> None:
    result = await ExtractiveSummaryEngine().summarize(CALL, None)
    assert result == {
        "engine": "extractive",
        "headline": "I was charged twice for my March invoice.",
        "summary": "Agent: Thanks for calling Acme, this is Dana.\n"
        "Customer: I was charged twice for my March invoice.\n"
        "Agent: I see the duplicate charge and I am refunding it now.",
        "turns": 3,
        "truncated": False,
        "questions": ["Why is that?", "Can you refund it?"],
        "talk_time_sec": {"agent": 4.5, "customer": 4.3},
        "instructions_applied": False,
    }


def test_instructions_are_acknowledged_not_followed() -> None:
    result = summarize_extractive(CALL, "Focus on billing.")
    assert result["instructions_applied"] is False
    assert "cannot follow instructions" in result["note"]


def test_unordered_input_and_unknown_roles() -> None:
    transcript = [
        seg(1, 5.0, 6.0, "Second speaker talks later."),
        seg(0, 0.0, 1.0, "First speaker opens the call."),
    ]
    result = summarize_extractive(transcript, None)
    assert result["headline"] == "First speaker opens the call."
    assert result["summary"] == (
        "Channel 0: First speaker opens the call.\nChannel 1: Second speaker talks later."
    )
    assert result["talk_time_sec"] == {"channel 0": 1.0, "channel 1": 1.0}


def test_empty_transcript() -> None:
    result = summarize_extractive([], None)
    assert (result["headline"], result["summary"], result["turns"], result["questions"]) == (
        "",
        "",
        0,
        [],
    )


def test_long_calls_are_truncated_to_twelve_turns() -> None:
    transcript = [
        seg(i % 2, float(i), i + 0.5, f"Turn number {i} here.", ("agent", "customer")[i % 2])
        for i in range(20)
    ]
    result = summarize_extractive(transcript, None)
    assert result["turns"] == 20
    assert result["truncated"] is True
    assert len(result["summary"].splitlines()) == 12


def test_sentence_helpers() -> None:
    assert first_sentence("  One.  Two? ") == "One."
    assert first_sentence("no end") == "no end"
    assert lead_sentence("OK. Sure thing. Let me check that.") == "Let me check that."
    assert lead_sentence("Yes. No.") == "Yes."
    assert lead_sentence("") == ""
    assert group_turns([seg(0, 0, 1, "a", "agent"), seg(0, 1, 2, " ", "agent")]) == [
        ("agent", ["a"])
    ]


segments = st.lists(
    st.builds(
        seg,
        st.integers(min_value=0, max_value=3),
        st.floats(min_value=0, max_value=1000, allow_nan=False),
        st.floats(min_value=0, max_value=1000, allow_nan=False),
        st.text(max_size=80),
        st.sampled_from([None, "agent", "customer"]),
    ),
    max_size=30,
)


@given(segments, st.one_of(st.none(), st.text(max_size=50)))
@settings(max_examples=200)
def test_extracts_only_what_was_said(transcript: list[dict], instructions: str | None) -> None:
    result = summarize_extractive(transcript, instructions)
    in_time_order = sorted(transcript, key=lambda s: (s["start"], s["channel"]))
    spoken = [" ".join(s["text"].split()) for s in in_time_order]
    said = " ".join(text for text in spoken if text)
    headline = result["headline"].rstrip("…")
    assert headline in said
    for line in result["summary"].splitlines():
        assert line.split(": ", 1)[1] in said
    assert all(q.endswith("?") and q in said for q in result["questions"])
    assert all(v >= 0 for v in result["talk_time_sec"].values())
    assert len(result["headline"]) <= 160
