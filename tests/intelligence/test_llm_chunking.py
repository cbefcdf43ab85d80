"""``sipscribe.intelligence.chunking``: turns, token-budget chunks, merging partials."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.intelligence.chunking import (
    ChunkingError,
    Turn,
    chunk_turns,
    estimate_tokens,
    merge_actions,
    merge_answers,
    merge_mood,
    merge_sentiment,
    merge_small_talk,
    render,
    similar,
    turns_from_transcript,
)
from sipscribe.intelligence.schema import ActionItem, Sentiment, SmallTalkItem, SmartAnswer

from .llm_helpers import load_case


def seg(channel: int, start: float, text: str, role: str | None = None) -> dict:
    return {"channel": channel, "start": start, "end": start + 1.0, "text": text, "role": role}


def test_turns_join_consecutive_segments_of_one_speaker_in_time_order() -> None:
    transcript = [
        seg(1, 3.0, "And it came broken.", "customer"),
        seg(0, 0.0, "Hello, Acme.", "agent"),
        seg(1, 1.5, "Hi, I ordered a lamp.", "customer"),
        seg(0, 5.0, "  ", "agent"),  # empty: dropped
        seg(0, 6.0, "Sorry   to hear that.", "agent"),
    ]
    assert turns_from_transcript(transcript) == [
        Turn("Agent", "Hello, Acme.", 0.0, 1.0),
        Turn("Customer", "Hi, I ordered a lamp. And it came broken.", 1.5, 4.0),
        Turn("Agent", "Sorry to hear that.", 6.0, 7.0),
    ]


def test_turns_without_roles_are_named_by_channel() -> None:
    turns = turns_from_transcript([seg(0, 0, "a"), seg(1, 1, "b"), seg(0, 2, "c", "robot")])
    assert [t.speaker for t in turns] == ["Channel 0", "Channel 1", "Channel 0"]


def test_turns_reject_a_segment_with_a_bad_time() -> None:
    with pytest.raises(ChunkingError, match=r"transcript segment is not valid"):
        turns_from_transcript([{"channel": 0, "start": "soon", "text": "x"}])


def test_render_one_line_per_turn() -> None:
    assert render([Turn("Agent", "Hi."), Turn("Customer", "Hello.")]) == (
        "Agent: Hi.\nCustomer: Hello."
    )


def test_estimate_errs_high_for_english() -> None:
    text = " ".join(t for _, t, _ in load_case("cancellation_retention").turns)
    # Qwen2.5's tokenizer averages over 4 characters a token on this text.
    assert estimate_tokens(text) >= len(text) / 4
    assert estimate_tokens("") == 0


def test_chunks_keep_whole_turns_within_budget() -> None:
    turns = turns_from_transcript(load_case("long_billing_review").transcript())
    chunks = chunk_turns(turns, 1500)
    assert len(chunks) > 1
    assert [t for chunk in chunks for t in chunk] == turns  # all of them, in order
    for chunk in chunks:
        assert sum(estimate_tokens(t.render()) + 1 for t in chunk) <= 1500


def test_a_short_call_is_one_chunk() -> None:
    turns = turns_from_transcript(load_case("short_call").transcript())
    assert chunk_turns(turns, 2000) == [turns]
    assert chunk_turns([], 2000) == []


def test_a_turn_over_the_budget_is_cut_at_sentence_ends() -> None:
    long_turn = Turn("Agent", " ".join(f"Sentence number {i} is here." for i in range(40)))
    chunks = chunk_turns([long_turn], 60)
    pieces = [t.text for chunk in chunks for t in chunk]
    assert " ".join(pieces) == long_turn.text
    assert all(p.endswith(".") for p in pieces)
    assert all(estimate_tokens(t.render()) + 1 <= 60 for c in chunks for t in c)


def test_a_sentence_over_the_budget_is_cut_between_words() -> None:
    turn = Turn("Customer", " ".join(["word"] * 200))
    chunks = chunk_turns([turn], 30)
    assert " ".join(t.text for c in chunks for t in c) == turn.text
    assert all(estimate_tokens(t.render()) + 1 <= 30 for c in chunks for t in c)


def test_budget_errors() -> None:
    with pytest.raises(ChunkingError, match=r"chunk budget of 8 tokens is too small"):
        chunk_turns([Turn("Agent", "hi")], 8)
    with pytest.raises(ChunkingError, match=r"a single word of Agent exceeds 19 tokens"):
        chunk_turns([Turn("Agent", "x" * 200)], 20)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["Agent", "Customer"]), st.text("abc .?!", min_size=1)),
        max_size=30,
    ),
    st.integers(min_value=16, max_value=400),
)
def test_chunking_never_loses_or_reorders_words(raw: list, budget: int) -> None:
    turns = [Turn(s, " ".join(t.split())) for s, t in raw if t.split()]
    chunks = chunk_turns(turns, budget)
    words = [w for t in turns for w in t.text.split()]
    assert [w for c in chunks for t in c for w in t.text.split()] == words
    assert all(c for c in chunks)


def test_similar_is_word_set_overlap() -> None:
    assert similar("Send the return label", "send return label")
    assert not similar("Send the return label", "Refund the charge")
    assert similar("", "")


def test_merge_actions_keeps_first_and_fills_a_missing_due_date() -> None:
    first = [ActionItem("Send the return label by email", "agent")]
    second = [
        ActionItem("send the return label by email", "agent", "today"),
        ActionItem("Send the return label by email", "customer"),  # other owner: kept
        ActionItem("Refund the duplicate charge", "agent"),
    ]
    assert merge_actions([first, second]) == [
        ActionItem("Send the return label by email", "agent", "today"),
        ActionItem("Send the return label by email", "customer"),
        ActionItem("Refund the duplicate charge", "agent"),
    ]


def test_merge_answers_and_small_talk_drop_repeats() -> None:
    a = SmartAnswer("How long does the refund take?", "Five days.")
    b = SmartAnswer("how long does the refund take", "About five days.")
    c = SmartAnswer("Can I return it?", "Yes.")
    assert merge_answers([[a], [b, c]]) == [a, c]
    w1 = SmallTalkItem("Weather", "Rain all week in Leeds.")
    w2 = SmallTalkItem("Weather", "Sunny in Brighton.")
    f = SmallTalkItem("Football", "Leeds won on Saturday.")
    assert merge_small_talk([[w1], [w2, f]]) == [w1, f]


@pytest.mark.parametrize(
    ("moods", "merged"),
    [
        ([], "neutral"),
        (["negative"], "negative"),
        (["neutral", "neutral"], "neutral"),
        (["negative", "neutral"], "negative"),
        (["neutral", "positive", "neutral"], "positive"),
        (["negative", "positive"], "mixed"),
        (["neutral", "mixed"], "mixed"),
    ],
)
def test_merge_mood(moods: list, merged: str) -> None:
    assert merge_mood(moods) == merged


def test_merge_sentiment_per_party() -> None:
    parts = [Sentiment("positive", "negative"), Sentiment("positive", "positive")]
    assert merge_sentiment(parts) == Sentiment("positive", "mixed")
