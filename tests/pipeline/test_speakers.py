"""Naming the speakers of a mixed stream from started/stopped_speaking events."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sipscribe.pipeline.speakers import Speaker, SpeakerTimeline

ANN = Speaker("u1", "Ann", "ann@example.com")
BOB = Speaker("u2", "Bob")


def test_most_overlap_wins() -> None:
    t = SpeakerTimeline()
    t.started(ANN, 0)
    t.stopped(ANN, 3000)
    t.started(BOB, 2500)
    t.stopped(BOB, 9000)
    assert t.speaker_for(100, 2900) == ANN
    assert t.speaker_for(2600, 8000) == BOB
    assert t.speaker_for(2000, 4000) == BOB  # 1500 ms of Bob vs 1000 of Ann


def test_open_interval_and_carry() -> None:
    t = SpeakerTimeline(carry_ms=1000)
    t.started(ANN, 1000)
    assert t.speaker_for(1200, 2000) == ANN  # still speaking
    t.stopped(ANN, 2000)
    assert t.speaker_for(2500, 3500) == ANN  # events lag speech: the last speaker, nearby
    assert t.speaker_for(3500, 4000) is None  # too long after
    assert t.speaker_for(0, 500) is None  # before anyone spoke


def test_stop_without_start_and_repeated_start() -> None:
    t = SpeakerTimeline()
    t.stopped(BOB, 500)
    t.started(ANN, 0)
    t.started(ANN, 800)  # a repeated start keeps the first
    t.stopped(ANN, 1000)
    assert t.speaker_for(0, 900) == ANN


@given(
    st.lists(
        st.tuples(st.booleans(), st.sampled_from([ANN, BOB]), st.integers(0, 100_000)),
        max_size=200,
    ),
    st.integers(0, 100_000),
    st.integers(0, 5_000),
)
def test_any_event_order_is_safe(events, start, length) -> None:  # type: ignore[no-untyped-def]
    t = SpeakerTimeline(max_intervals=50)
    for started, who, at in events:
        (t.started if started else t.stopped)(who, at)
    found = t.speaker_for(start, start + length)
    assert found in (None, ANN, BOB)
