from __future__ import annotations

import asyncio
import itertools
import logging
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.intelligence.redacting_sink import (
    DEFAULT_HOLD_S,
    EventRedactor,
    RedactedUtteranceEvent,
    RedactingSink,
)
from sipscribe.intelligence.redaction import (
    RedactionError,
    RedactionPolicy,
    SensitiveKind,
    TimeSpan,
    luhn_ok,
)
from sipscribe.pipeline.bus import EventBus
from sipscribe.pipeline.events import (
    CallEnded,
    CallStarted,
    DtmfReceived,
    PipelineEvent,
    StreamStarted,
    StreamStopped,
    UtteranceEvent,
)
from sipscribe.pipeline.utterance import Utterance, UtteranceWord

K = SensitiveKind


class Sequencer:
    """Makes utterance events of one call with dense sequence numbers and word timings."""

    def __init__(self, call_id: str = "c1") -> None:
        self.call_id = call_id
        self.sequence = 0

    def utt(self, text: str, *, start_ms: int, channel: int = 1, step: int = 300) -> UtteranceEvent:
        self.sequence += 1
        words = tuple(
            UtteranceWord(" " + w, start_ms + i * step, start_ms + (i + 1) * step, 0.9)
            for i, w in enumerate(text.split())
        )
        u = Utterance(
            call_id=self.call_id,
            stream_id=f"s{channel}",
            channel=channel,
            role="customer" if channel else "agent",
            sequence=self.sequence,
            start_ms=start_ms,
            end_ms=start_ms + max(1, len(words)) * step,
            text=text,
            words=words,
        )
        return UtteranceEvent(u)


def texts(events: list[PipelineEvent]) -> list[str]:
    return [e.utterance.text for e in events if isinstance(e, UtteranceEvent)]


def digits(events: list[PipelineEvent]) -> list[str]:
    return [e.digit for e in events if isinstance(e, DtmfReceived)]


def redacted(event: PipelineEvent) -> RedactedUtteranceEvent:
    assert isinstance(event, RedactedUtteranceEvent)
    return event


def test_card_split_across_two_utterances_is_masked_in_both() -> None:
    r = EventRedactor()
    s = Sequencer()
    assert r.receive(CallStarted("c1", "siprec"), 0.0)[0].type == "call.started"
    assert r.receive(s.utt("yes it is 4111 1111", start_ms=0), 1.0) == []
    assert r.held == 1 and r.next_timer() == 1.0 + DEFAULT_HOLD_S
    out = r.receive(s.utt("1111 1111 thanks", start_ms=3000), 3.0)
    assert texts(out) == ["yes it is #### ####", "#### #### thanks"]
    assert r.held == 0 and r.next_timer() is None
    first, second = out
    assert isinstance(first, RedactedUtteranceEvent) and isinstance(first, UtteranceEvent)
    assert [w.text for w in first.utterance.words] == [" yes", " it", " is", " ####", " ####"]
    assert first.redactions == (TimeSpan(900, 1500, K.CARD_NUMBER),)
    assert redacted(second).redactions == (TimeSpan(3000, 3600, K.CARD_NUMBER),)
    assert first.raw is None and first.raw_text is None


def test_a_held_utterance_holds_the_rest_of_its_call_in_order() -> None:
    r = EventRedactor()
    s = Sequencer()
    r.receive(CallStarted("c1", "siprec"), 0.0)
    r.receive(s.utt("it's 4111 1111", start_ms=0), 1.0)
    assert r.receive(s.utt("mm-hmm", start_ms=1500, channel=0), 1.5) == []
    dtmf = DtmfReceived("c1", "s1", 1, "customer", "5", 2000, 80)
    assert r.receive(dtmf, 1.6) == []
    other = r.receive(CallStarted("c2", "siprec"), 1.7)  # another call is not held up
    assert [e.call_id for e in other] == ["c2"]
    out = r.receive(s.utt("1111 1111", start_ms=2500), 3.0)
    assert [e.type for e in out] == ["utterance", "utterance", "dtmf", "utterance"]
    assert texts(out) == ["it's #### ####", "mm-hmm", "#### ####"]
    assert [e.utterance.sequence for e in out if isinstance(e, UtteranceEvent)] == [1, 2, 3]


def test_hold_runs_out_and_a_late_second_half_is_still_masked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = EventRedactor(hold_s=5.0)
    s = Sequencer()
    r.receive(CallStarted("c1", "siprec"), 0.0)
    r.receive(s.utt("it's 4111 1111", start_ms=0), 10.0)
    assert r.next_timer() == 15.0
    assert r.handle_timer(14.9) == []
    out = r.handle_timer(15.0)
    assert texts(out) == ["it's 4111 1111"]  # nothing said yet makes it a card
    assert r.next_timer() is None
    with caplog.at_level(logging.WARNING, logger="sipscribe.intelligence.redacting_sink"):
        out = r.receive(s.utt("1111 1111", start_ms=4000), 16.0)
    assert texts(out) == ["#### ####"]
    assert "call c1: channel 1 continued a card number after its first part was released" in (
        caplog.text
    )


def test_a_long_pause_or_another_sentence_ends_the_number() -> None:
    r = EventRedactor(max_gap_ms=6000)
    s = Sequencer()
    r.receive(s.utt("4111 1111", start_ms=0), 0.0)
    # 20 s of stream time later: a different number, not the rest of this one
    out = r.receive(s.utt("1111 1111", start_ms=20_600), 1.0)
    assert texts(out) == ["4111 1111"]
    assert r.held == 1  # the new one ends in digits too
    out = r.receive(s.utt("okay thanks", start_ms=22_000), 2.0)
    assert texts(out) == ["1111 1111", "okay thanks"]
    # an utterance that does not start with digits ends the chain as well
    r.receive(s.utt("the reference is 4111 1111", start_ms=30_000), 3.0)
    out = r.receive(s.utt("sorry, 1111 1111 1111 1111", start_ms=31_000), 4.0)
    assert texts(out) == ["the reference is 4111 1111"]


def test_other_channels_do_not_continue_a_number() -> None:
    r = EventRedactor()
    s = Sequencer()
    r.receive(s.utt("4111 1111", start_ms=0, channel=1), 0.0)
    out = r.receive(s.utt("1111 1111 1111 1111", start_ms=500, channel=0), 0.5)
    assert out == []  # queued behind the held utterance; the agent's text is its own
    out = r.receive(CallEnded("c1"), 1.0)
    assert texts(out) == ["4111 1111", "1111 1111 1111 1111"]  # 1111… fails Luhn


def test_a_number_spread_over_many_short_utterances() -> None:
    r = EventRedactor()
    s = Sequencer()
    parts = ["four one", "one one double", "one one one one", "one one one one one one one"]
    outs = [r.receive(s.utt(p, start_ms=1000 * i), float(i)) for i, p in enumerate(parts)]
    assert outs[:3] == [[], [], []] and r.held == 0
    assert texts(outs[3]) == [
        "#### ###",
        "### ### ######",
        "### ### ### ###",
        "### ### ### ### ### ### ###",
    ]


def test_once_eighteen_digits_follow_an_utterance_it_is_released() -> None:
    r = EventRedactor()
    s = Sequencer()
    r.receive(s.utt("ref 12", start_ms=0), 0.0)
    r.receive(s.utt("3456 7890", start_ms=1000), 1.0)
    out = r.receive(s.utt("2345 6789 0123", start_ms=2000), 2.0)
    # 20 digits follow "12": no card (≤ 19 digits) can include it any more
    assert texts(out) == ["ref 12"]
    assert r.held == 2


def test_stream_stopped_and_call_ended_release_everything() -> None:
    r = EventRedactor()
    s = Sequencer()
    assert [e.type for e in r.receive(StreamStarted("c1", "s1", 1, "customer"), 0.0)] == [
        "stream.started"
    ]
    assert r.receive(s.utt("4111 1111", start_ms=0), 0.0) == []
    out = r.receive(StreamStopped("c1", "s1"), 1.0)
    assert [e.type for e in out] == ["utterance", "stream.stopped"]
    r.receive(s.utt("4111 1111", start_ms=0, channel=2), 2.0)
    out = r.receive(CallEnded("c1", utterances=2), 3.0)
    assert [e.type for e in out] == ["utterance", "call.ended"]
    assert r.held == 0 and r.next_timer() is None
    # the call is forgotten: a new event starts afresh with the default policy
    assert texts(r.receive(s.utt("PIN 4321 please", start_ms=0), 4.0)) == ["PIN #### please"]


def test_flush_releases_every_call() -> None:
    r = EventRedactor()
    a, b = Sequencer("a"), Sequencer("b")
    r.receive(a.utt("1234", start_ms=0), 0.0)
    r.receive(b.utt("5678", start_ms=0), 0.0)
    assert r.held == 2
    assert sorted(texts(r.flush())) == ["1234", "5678"]
    assert r.held == 0 and r.flush() == []


def test_context_comes_from_the_other_party() -> None:
    r = EventRedactor()
    s = Sequencer()
    out = r.receive(s.utt("and the three digit code on the back?", start_ms=0, channel=0), 0.0)
    assert texts(out) == ["and the three digit code on the back?"]
    assert r.receive(s.utt("four five six", start_ms=3000), 1.0) == []  # ends in digits: held
    out = r.receive(CallEnded("c1"), 2.0)
    assert texts(out) == ["#### #### ###"]
    assert redacted(out[0]).redactions == (TimeSpan(3000, 3900, K.CVV),)


def test_policy_per_call_from_call_started() -> None:
    policies = {
        "bank": RedactionPolicy(kinds=frozenset({K.CARD_NUMBER}), dtmf_digits_allowed=True),
        "shop": RedactionPolicy(),
    }
    seen: list[str | None] = []

    def policy_for(started: CallStarted) -> RedactionPolicy:
        seen.append(started.tenant_id)
        return policies[started.tenant_id or "shop"]

    r = EventRedactor(policy_for=policy_for)
    r.receive(CallStarted("c1", "siprec", tenant_id="bank"), 0.0)
    r.receive(CallStarted("c2", "siprec", tenant_id="shop"), 0.0)
    bank, shop = Sequencer("c1"), Sequencer("c2")
    assert texts(r.receive(bank.utt("my PIN is 4321 ok", start_ms=0), 1.0)) == ["my PIN is 4321 ok"]
    assert texts(r.receive(shop.utt("my PIN is 4321 ok", start_ms=0), 1.0)) == ["my PIN is #### ok"]
    dtmf = [DtmfReceived(c, "s1", 1, "customer", "7", 0, 90) for c in ("c1", "c2")]
    assert digits([e for d in dtmf for e in r.receive(d, 2.0)]) == ["7", "#"]
    assert seen == ["bank", "shop"]


def test_unredacted_mode_passes_events_through() -> None:
    r = EventRedactor(policy=RedactionPolicy(output="unredacted"))
    s = Sequencer()
    event = s.utt("card 4111 1111", start_ms=0)
    out = r.receive(event, 0.0)
    assert out == [event] and type(out[0]) is UtteranceEvent and r.held == 0
    dtmf = r.receive(DtmfReceived("c1", "s1", 1, "customer", "9", 0, 90), 0.0)
    assert digits(dtmf) == ["#"]  # DTMF follows its own flag


def test_redacted_and_unredacted_mode_keeps_the_raw_text_apart() -> None:
    r = EventRedactor(policy=RedactionPolicy(output="redacted_and_unredacted"))
    s = Sequencer()
    (event,) = r.receive(s.utt("my PIN is 4321 ok", start_ms=1000), 0.0)
    assert isinstance(event, RedactedUtteranceEvent)
    assert event.utterance.text == "my PIN is #### ok"
    assert event.raw_text == "my PIN is 4321 ok"
    assert [w.text for w in event.raw_words or ()] == [" my", " PIN", " is", " 4321", " ok"]
    plain = event.to_json()
    assert plain["text"] == "my PIN is #### ok" and "raw_text" not in plain
    assert plain["redactions"] == [{"start_ms": 1900, "end_ms": 2200, "kind": "pin"}]
    assert plain["type"] == "utterance" and plain["words"][3]["word"] == "####"
    full = event.to_json(include_raw=True)
    assert full["raw_text"] == "my PIN is 4321 ok" and full["raw_words"][3]["word"] == "4321"


def test_card_detection_off_means_no_holding() -> None:
    r = EventRedactor(policy=RedactionPolicy(kinds=frozenset({K.PIN})))
    s = Sequencer()
    assert texts(r.receive(s.utt("it's 4111 1111", start_ms=0), 0.0)) == ["it's 4111 1111"]


def test_constructor_checks_its_numbers() -> None:
    with pytest.raises(RedactionError, match=r"^redaction hold of 0 s is not positive$"):
        EventRedactor(hold_s=0)
    with pytest.raises(RedactionError, match=r"^redaction gap of -1 ms is negative$"):
        EventRedactor(max_gap_ms=-1)


# -- never leaks -------------------------------------------------------------------------

_DIGIT_WORDS = dict(
    zip("0123456789", "zero one two three four five six seven eight nine".split(), strict=True)
)
_NUMBERISH = {*_DIGIT_WORDS.values(), "oh", "o", "double", "triple"}
_FILLER = "my card number is the this that so okay yes please charge it to and um thanks".split()


@st.composite
def card_dictations(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A random Luhn-valid card number and the words a caller (and ASR) might use for it."""
    length = draw(st.integers(13, 19))
    body = str(draw(st.integers(1, 9))) + "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=length - 2, max_size=length - 2))
    )
    digits = next(body + d for d in "0123456789" if luhn_ok(body + d))
    form = draw(st.sampled_from(["digits", "words", "mixed"]))
    words: list[str] = []
    i = 0
    while i < len(digits):
        if form == "digits" or (form == "mixed" and draw(st.booleans())):
            n = draw(st.integers(1, 6))
            group = digits[i : i + n]
            i += len(group)
            words.append(group + draw(st.sampled_from(["", "", ","])))
            continue
        d = digits[i]
        run = 1
        while i + run < len(digits) and digits[i + run] == d and run < 3:
            run += 1
        word = draw(st.sampled_from(["zero", "oh", "o"])) if d == "0" else _DIGIT_WORDS[d]
        if run > 1 and draw(st.booleans()):
            words.extend([{2: "double", 3: "triple"}[run], word])
            i += run
        else:
            words.append(word)
            i += 1
    return digits, words


def _leaks(digits: str, said: list[str], outputs: list[str]) -> list[str]:
    problems = []
    joined = " ".join(outputs)
    if digits in re.sub(r"\D", "", joined):
        problems.append("digit sequence")
    tokens = re.findall(r"[a-z]+", joined.lower())
    spoken = [w for w in said if w.isalpha()]
    if spoken and any(
        tokens[k : k + len(spoken)] == spoken for k in range(len(tokens) - len(spoken) + 1)
    ):
        problems.append("word sequence")
    # stronger: every digit and number word of the card is masked (the filler has none)
    if re.search(r"\d", joined) or set(tokens) & _NUMBERISH:
        problems.append(f"fragment in {joined!r}")
    return problems


def _dictate(words: list[str], cuts: list[int], *, gap_ms: int, agent: bool) -> list[PipelineEvent]:
    """Say ``words`` as utterances cut at ``cuts`` on channel 1, through an EventRedactor."""
    s = Sequencer()
    r = EventRedactor()
    out: list[PipelineEvent] = []
    out += r.receive(CallStarted("c1", "siprec"), 0.0)
    now, start = 1.0, 0
    for a, b in itertools.pairwise([0, *cuts, len(words)]):
        event = s.utt(" ".join(words[a:b]), start_ms=start)
        out += r.receive(event, now)
        start = event.utterance.end_ms + gap_ms
        if agent:
            out += r.receive(s.utt("okay go on", start_ms=start, channel=0), now + 0.1)
        now += 1.0
    out += r.receive(CallEnded("c1"), now)
    return out


@given(
    card_dictations(),
    st.lists(st.sampled_from(_FILLER), max_size=5),
    st.lists(st.sampled_from(_FILLER), max_size=5),
    st.data(),
)
@settings(max_examples=400, deadline=None)
def test_a_card_split_anywhere_between_two_utterances_never_leaks(
    card: tuple[str, list[str]],
    before: list[str],
    after: list[str],
    data: st.DataObject,
) -> None:
    digits, said = card
    words = [*before, *said, *after]
    cut = data.draw(st.integers(1, len(words)), label="cut")  # len(words): not split at all
    cuts = [cut] if cut < len(words) else []
    out = _dictate(
        words,
        cuts,
        gap_ms=data.draw(st.integers(0, 4000), label="gap_ms"),
        agent=data.draw(st.booleans(), label="agent speaks in between"),
    )
    utterances = [e.utterance for e in out if isinstance(e, UtteranceEvent)]
    mine = [u for u in utterances if u.channel == 1]
    assert len(mine) == len(cuts) + 1
    assert [u.sequence for u in utterances] == sorted(u.sequence for u in utterances)
    assert _leaks(digits, said, [u.text for u in mine]) == []
    assert _leaks(digits, said, ["".join(w.text for w in u.words) for u in mine]) == []


@given(card_dictations(), st.data())
@settings(max_examples=200, deadline=None)
def test_a_card_dictated_over_many_utterances_never_leaks(
    card: tuple[str, list[str]], data: st.DataObject
) -> None:
    digits, said = card
    words = ["it's", *said, "thanks"]
    cuts = sorted(data.draw(st.sets(st.integers(1, len(words) - 1), max_size=5), label="cuts"))
    out = _dictate(words, cuts, gap_ms=data.draw(st.integers(0, 3000), label="gap_ms"), agent=False)
    mine = [e.utterance for e in out if isinstance(e, UtteranceEvent)]
    assert len(mine) == len(cuts) + 1
    assert _leaks(digits, said, [u.text for u in mine]) == []


# -- the asyncio edge --------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[PipelineEvent] = []

    async def publish(self, event: PipelineEvent) -> None:
        self.events.append(event)


async def test_sink_between_two_buses() -> None:
    raw, public = EventBus(), EventBus()
    store = public.subscribe("store")
    sink = RedactingSink(public)
    task = asyncio.create_task(sink.run(raw.subscribe("redaction")))
    s = Sequencer()
    events: list[Any] = [
        CallStarted("c1", "siprec"),
        s.utt("the card is 4111 1111", start_ms=0),
        s.utt("1111 1111 and my PIN is 4321", start_ms=2000),
        CallEnded("c1"),
    ]
    for event in events:
        await raw.publish(event)
    await raw.close()
    await asyncio.wait_for(task, 5)
    await public.close()
    got = [e async for e in store]
    assert [e.type for e in got] == ["call.started", "utterance", "utterance", "call.ended"]
    assert texts(got) == ["the card is #### ####", "#### #### and my PIN is ####"]


async def test_sink_timer_releases_a_held_utterance() -> None:
    inner = Recorder()
    sink = RedactingSink(inner, hold_s=0.05)
    s = Sequencer()
    await sink.publish(s.utt("my zip is 90210", start_ms=0))
    assert inner.events == [] and sink.held == 1
    async with asyncio.timeout(5):
        while not inner.events:
            await asyncio.sleep(0.01)
    assert texts(inner.events) == ["my zip is 90210"] and sink.held == 0
    await sink.aclose()


async def test_sink_aclose_flushes_what_is_held() -> None:
    inner = Recorder()
    sink = RedactingSink(inner)  # the default 8 s hold never fires in this test
    s = Sequencer()
    await sink.publish(s.utt("number 4111 1111", start_ms=0))
    await sink.publish(DtmfReceived("c1", "s1", 1, "customer", "3", 0, 90))
    assert inner.events == []
    await sink.aclose()
    assert [e.type for e in inner.events] == ["utterance", "dtmf"]
    assert digits(inner.events) == ["#"]


def test_a_partial_number_after_card_is_masked_at_once() -> None:
    """Recognition drops digits; after "card" a short run is cardholder data, not held."""
    r = EventRedactor()
    s = Sequencer()
    r.receive(CallStarted("c1", "siprec"), 0.0)
    out = r.receive(s.utt("my card number is 4-1-1, 1-1-1 1-1-1-1", start_ms=0), 1.0)
    assert texts(out) == ["my card number is #-#-#, #-#-# #-#-#-#"]
    assert r.held == 0
