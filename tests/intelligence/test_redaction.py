from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.intelligence.redaction import (
    ALL_KINDS,
    IBAN_LENGTHS,
    RedactionError,
    RedactionPolicy,
    SensitiveKind,
    Span,
    TimeSpan,
    digit_edges,
    find_cards_across,
    find_sensitive,
    iban_ok,
    luhn_ok,
    redact,
    redact_audio,
    redact_utterance,
)
from sipscribe.pipeline.utterance import Utterance, UtteranceWord

CASES_PATH = Path(__file__).resolve().parents[1] / "data" / "redaction_cases.json"
CASES: list[dict[str, Any]] = json.loads(CASES_PATH.read_text())["cases"]
K = SensitiveKind


def _param(case: dict[str, Any]) -> Any:
    marks = []
    if "limitation" in case:
        marks.append(pytest.mark.xfail(reason=case["limitation"], strict=True))
    return pytest.param(case, id=case["id"], marks=marks)


# -- the table (h11 SIMPLE_CASES style) ------------------------------------------------


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_case(case: dict[str, Any]) -> None:
    text = case["text"]
    spans = find_sensitive(text, context=case.get("context", ""))
    assert sorted({s.kind.value for s in spans}) == sorted(case["kinds"])
    assert redact(text, spans) == case.get("redacted", text)


def _confusion() -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = {k.value: Counter() for k in SensitiveKind}
    for case in CASES:
        spans = find_sensitive(case["text"], context=case.get("context", ""))
        found = {s.kind.value for s in spans}
        expected = set(case["kinds"])
        for kind in found & expected:
            counts[kind]["tp"] += 1
        for kind in found - expected:
            counts[kind]["fp"] += 1
        for kind in expected - found:
            counts[kind]["fn"] += 1
    return counts


def test_table_is_big_enough_and_ids_are_unique() -> None:
    positives = [c for c in CASES if c["kinds"]]
    negatives = [c for c in CASES if not c["kinds"]]
    assert len(positives) >= 50 and len(negatives) >= 50
    assert len({c["id"] for c in CASES}) == len(CASES)
    assert {k for c in CASES for k in c["kinds"]} == {k.value for k in SensitiveKind}


def test_precision_and_recall_over_the_table() -> None:
    counts = _confusion()
    total = sum(counts.values(), Counter())
    precision = total["tp"] / (total["tp"] + total["fp"])
    recall = total["tp"] / (total["tp"] + total["fn"])
    assert precision >= 0.95
    assert recall >= 0.95
    for kind in ("card_number", "ssn", "iban"):
        c = counts[kind]
        assert c["fn"] == 0, kind  # recall 1.0
        assert c["tp"] >= 6, kind
    for kind, c in counts.items():
        assert c["tp"] / (c["tp"] + c["fn"]) >= 0.85, kind


# -- validation and errors -------------------------------------------------------------


def test_span_and_time_span_validate() -> None:
    with pytest.raises(RedactionError, match=r"^span 5\.\.5 is empty or negative$"):
        Span(5, 5, K.PIN)
    with pytest.raises(RedactionError, match=r"^unknown redaction kind 'passport'$"):
        Span(0, 1, "passport")  # type: ignore[arg-type]
    assert Span(0, 1, "pin").kind is K.PIN  # type: ignore[arg-type]
    with pytest.raises(RedactionError, match=r"^time span 500\.\.400 ms ends before it starts$"):
        TimeSpan(500, 400, K.PIN)
    assert TimeSpan(1, 2, K.CVV).to_dict() == {"start_ms": 1, "end_ms": 2, "kind": "cvv"}


def test_policy_validates_and_converts_kinds() -> None:
    assert RedactionPolicy().kinds == ALL_KINDS
    policy = RedactionPolicy(kinds=frozenset({"pin", "cvv"}))  # type: ignore[arg-type]
    assert policy.kinds == {K.PIN, K.CVV} and policy.enabled(K.PIN)
    assert not policy.enabled(K.EMAIL)
    with pytest.raises(RedactionError, match=r"^unknown redaction kind 'dob'$"):
        RedactionPolicy(kinds=frozenset({"dob"}))  # type: ignore[arg-type]
    with pytest.raises(RedactionError, match=r"^redaction kinds must be a collection, not 'pin'$"):
        RedactionPolicy(kinds="pin")  # type: ignore[arg-type]
    with pytest.raises(
        RedactionError,
        match=r"^redaction output mode 'all' is not one of redacted, unredacted, "
        r"redacted_and_unredacted$",
    ):
        RedactionPolicy(output="all")  # type: ignore[arg-type]


def test_redact_rejects_bad_masks_and_spans() -> None:
    with pytest.raises(RedactionError, match=r"^redaction mask must be one visible character"):
        redact("1234", [Span(0, 4, K.PIN)], mask="##")
    with pytest.raises(RedactionError, match=r"got ' '$"):
        redact("1234", [Span(0, 4, K.PIN)], mask=" ")
    with pytest.raises(RedactionError, match=r"^span 2\.\.9 is outside the text \(length 4\)$"):
        redact("1234", [Span(2, 9, K.PIN)])


# -- redact ------------------------------------------------------------------------------


def test_redact_masks_letters_and_digits_only_one_char_each() -> None:
    text = "mail john.smith@gmail.com or call 555-123-4567!"
    spans = [Span(5, 25, K.EMAIL), Span(34, 46, K.PHONE)]
    assert redact(text, spans) == "mail ####.#####@#####.### or call ###-###-####!"
    assert redact(text, spans, mask="*") == "mail ****.*****@*****.*** or call ***-***-****!"
    assert redact(text, []) is text
    # overlapping spans are fine
    assert redact("my PIN is 4321", [Span(10, 14, K.PIN), Span(11, 13, K.CVV)]) == "my PIN is ####"


@given(st.text(max_size=80), st.data())
@settings(max_examples=300)
def test_redact_keeps_length_and_everything_outside_spans(text: str, data: st.DataObject) -> None:
    spans = []
    if text:
        for _ in range(data.draw(st.integers(0, 3))):
            a = data.draw(st.integers(0, len(text) - 1))
            b = data.draw(st.integers(a + 1, len(text)))
            spans.append(Span(a, b, K.PIN))
    out = redact(text, spans)
    assert len(out) == len(text)
    for i, (before, after) in enumerate(zip(text, out, strict=True)):
        inside = any(s.start <= i < s.end for s in spans)
        if inside and before.isalnum():
            assert after == "#"
        else:
            assert after == before


_NUMBERISH = st.text(alphabet=st.sampled_from(list("0123456789 -.,/@$:abcdeo+()")), max_size=120)


@given(_NUMBERISH | st.text(max_size=120))
@settings(max_examples=300)
def test_find_sensitive_returns_sorted_disjoint_spans_inside_the_text(text: str) -> None:
    spans = find_sensitive(text, context="my PIN and security code and email")
    for s in spans:
        assert 0 <= s.start < s.end <= len(text)
        assert any(ch.isalnum() for ch in text[s.start : s.end])
    for a, b in itertools.pairwise(spans):
        assert a.end <= b.start


# -- detection details --------------------------------------------------------------------


def test_luhn_and_iban_checks() -> None:
    assert luhn_ok("4111111111111111") and luhn_ok("378282246310005")
    assert not luhn_ok("4111111111111112") and not luhn_ok("") and not luhn_ok("41x1")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and iban_ok("de89370400440532013000")
    assert not iban_ok("GB82 WEST 1234 5698 7654 33")  # check digits
    assert not iban_ok("GB82 WEST 1234 5698 7654 3")  # GB is 22 long
    assert not iban_ok("ZZ82 WEST 1234 5698 7654 32")  # no such country
    assert IBAN_LENGTHS["NO"] == 15 and IBAN_LENGTHS["LC"] == 32


def test_policy_chooses_the_kinds() -> None:
    text = "card 4111 1111 1111 1111, email john@example.com, PIN 4321"
    only_cards = RedactionPolicy(kinds=frozenset({K.CARD_NUMBER}))
    assert redact(text, find_sensitive(text, policy=only_cards)) == (
        "card #### #### #### ####, email john@example.com, PIN 4321"
    )
    nothing = RedactionPolicy(kinds=frozenset())
    assert find_sensitive(text, policy=nothing) == []
    assert [s.kind for s in find_sensitive(text)] == [K.CARD_NUMBER, K.EMAIL, K.PIN]


def test_context_supplies_triggers_but_is_never_redacted() -> None:
    assert find_sensitive("It's 2 5 8 0.") == []
    spans = find_sensitive("It's 2 5 8 0.", context="Could you say your PIN for me?")
    assert [(s.start, s.end, s.kind) for s in spans] == [(5, 12, K.PIN)]
    # a trigger too far back in the context does not count
    far = "what is the PIN " + "and so on " * 6
    assert find_sensitive("2 5 8 0", context=far) == []


def test_numbers_do_not_run_from_the_context_into_the_text() -> None:
    # the halves of a split card are joined by find_cards_across, for one speaker only
    assert find_sensitive("1111 1111 thanks", context="my card is 4111 1111") == []
    assert find_sensitive("4567", context="call me at 555 123") == []


def test_iban_outranks_a_card_window_inside_its_digits() -> None:
    text = (
        "IBAN G B eight two W E S T one two three four five six nine eight seven six five four "
        "three two"
    )
    assert [s.kind for s in find_sensitive(text)] == [K.IBAN]
    # with IBANs off, the Luhn window inside is still a card number (never under-mask)
    policy = RedactionPolicy(kinds=frozenset({K.CARD_NUMBER}))
    assert {s.kind for s in find_sensitive(text, policy=policy)} == {K.CARD_NUMBER}


def test_this_one_is_a_pronoun_unless_digits_follow() -> None:
    assert digit_edges("I'll take this one") == digit_edges("I'll take this")
    assert digit_edges("it's this one one").trailing == 2
    card = _luhn_complete("100000000000000")  # 16 digits, the first a "one"
    said = " ".join(_WORDS[d] for d in card)
    text = f"I'll pay with this {said}"
    assert redact(text, find_sensitive(text)) == "I'll pay with this " + re.sub(r"\w", "#", said)


def _luhn_complete(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


_WORDS = dict(
    zip("0123456789", "zero one two three four five six seven eight nine".split(), strict=True)
)


@st.composite
def spoken_cards(draw: st.DrawFn) -> tuple[str, str]:
    length = draw(st.integers(13, 19))
    body = str(draw(st.integers(1, 9))) + "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=length - 2, max_size=length - 2))
    )
    digits = _luhn_complete(body)
    parts: list[str] = []
    i = 0
    while i < len(digits):
        d = digits[i]
        if draw(st.booleans()):  # a written group
            n = draw(st.integers(1, 6))
            parts.append(digits[i : i + n])
            i += n
            continue
        run = 1
        while i + run < len(digits) and digits[i + run] == d and run < 3:
            run += 1
        word = draw(st.sampled_from(["zero", "oh", "o"])) if d == "0" else _WORDS[d]
        if run > 1 and draw(st.booleans()):
            parts.append(("double " if run == 2 else "triple ") + word)
            i += run
        else:
            parts.append(word)
            i += 1
    sep = draw(st.sampled_from([" ", ", ", " - ", " um "]))
    return digits, sep.join(parts)


@given(spoken_cards(), st.lists(st.sampled_from("my card is the so okay yes".split()), max_size=4))
@settings(max_examples=300)
def test_any_luhn_valid_card_is_masked_whole(card: tuple[str, str], filler: list[str]) -> None:
    _, said = card
    text = " ".join([*filler, said, "thanks"])
    out = redact(text, find_sensitive(text))
    assert not re.search(r"\d", out)
    assert not set(re.findall(r"[a-z]+", out)) & {*_WORDS.values(), "oh", "o", "double", "triple"}


# -- cards across utterances ----------------------------------------------------------


def test_digit_edges() -> None:
    assert digit_edges("my card is 4111 1111") == digit_edges("my card is 4111 1111.")
    edges = digit_edges("my card is 4111 1111, um")
    assert (edges.leading, edges.trailing, edges.exposed, edges.whole) == (False, 8, 8, False)
    edges = digit_edges("Um, 1111 one one")
    assert (edges.leading, edges.trailing, edges.whole, edges.digits) == (True, 6, True, 6)
    edges = digit_edges("four one double")  # waits for the digit "double" repeats
    assert (edges.trailing, edges.exposed, edges.whole) == (3, 3, True)
    text = "card 4111 1111 1111 1111"
    assert digit_edges(text, find_sensitive(text)).exposed == 0
    # amounts and clock times end no card number: no hold for them
    assert digit_edges("that'll be $49.99").trailing == 0
    assert digit_edges("see you at 10:30").trailing == 0
    assert digit_edges("card number: 4111 1111").trailing == 8
    assert digit_edges("thanks") == digit_edges("")


def test_find_cards_across_masks_both_halves_only() -> None:
    texts = ["okay my card is 4111 1111", "1111 1111 and", "that's all 1234"]
    found = find_cards_across(texts)
    assert [redact(t, s) for t, s in zip(texts, found, strict=True)] == [
        "okay my card is #### ####",
        "#### #### and",
        "that's all 1234",
    ]
    assert find_cards_across(["4111 1111 1111 1111"]) == [[]]
    # double | four
    found = find_cards_across(
        ["four one one one one one one one one one one one one one double", "one"]
    )
    assert redact("one", found[1]) == "###"


# -- utterances and audio ----------------------------------------------------------------


def _utt(
    words: list[str], *, start: int = 1000, step: int = 250, text: str | None = None
) -> Utterance:
    ws = tuple(
        UtteranceWord(" " + w, start + i * step, start + (i + 1) * step - 20, 0.9)
        for i, w in enumerate(words)
    )
    return Utterance(
        call_id="c",
        stream_id="s",
        channel=1,
        role="customer",
        sequence=1,
        start_ms=start,
        end_ms=start + len(words) * step,
        text=" ".join(words) if text is None else text,
        words=ws,
    )


def test_redact_utterance_masks_words_and_returns_times() -> None:
    u = _utt(["my", "PIN", "is", "4321,", "card", "4111", "1111", "1111", "1111."])
    spans = find_sensitive(u.text)
    red, times = redact_utterance(u, spans)
    assert red.text == "my PIN is ####, card #### #### #### ####."
    assert [w.text for w in red.words] == [
        " my",
        " PIN",
        " is",
        " ####,",
        " card",
        " ####",
        " ####",
        " ####",
        " ####.",
    ]
    assert [(w.start_ms, w.end_ms) for w in red.words] == [(w.start_ms, w.end_ms) for w in u.words]
    assert times == [TimeSpan(1750, 1980, K.PIN), TimeSpan(2250, 3230, K.CARD_NUMBER)]
    assert red.call_id == u.call_id and red.sequence == u.sequence
    same, none = redact_utterance(u, [])
    assert same is u and none == []


def test_redact_utterance_masks_words_the_text_does_not_match() -> None:
    # the engine's words disagree with its text: numeric words are masked anyway
    u = _utt(["my", "PIN", "is", "four", "three", "two", "one"], text="my PIN is 4321")
    red, times = redact_utterance(u, find_sensitive(u.text))
    assert red.text == "my PIN is ####"
    assert [w.text for w in red.words] == [" my", " PIN", " is", " ####", " #####", " ###", " ###"]
    assert times == [TimeSpan(1750, 2730, K.PIN)]


def test_redact_utterance_without_words_redacts_the_whole_time() -> None:
    u = Utterance("c", "s", 0, None, 1, 500, 2500, "CVV 123")
    red, times = redact_utterance(u, find_sensitive(u.text))
    assert red.text == "CVV ###" and red.words == ()
    assert times == [TimeSpan(500, 2500, K.CVV)]


def test_redact_audio_silence_and_tone() -> None:
    rate = 8000
    pcm = np.full(rate, 1000, dtype=np.int16)  # one second
    out = redact_audio(pcm, rate, [TimeSpan(250, 500, K.PIN)])
    assert out.dtype == np.int16 and pcm[0] == 1000  # a copy
    assert (out[2000:4000] == 0).all() and (out[:2000] == 1000).all() and (out[4000:] == 1000).all()
    tone = redact_audio(pcm, rate, [TimeSpan(0, 1000, K.PIN)], mode="tone", tone_hz=1000)
    spectrum = np.abs(np.fft.rfft(tone.astype(np.float64)))
    assert np.argmax(spectrum) == 1000  # 1 Hz bins over one second
    assert abs(int(tone.max()) - round(0.25 * 32767)) <= 1
    # offset: the array starts 10 s into the stream; spans outside it are ignored
    later = redact_audio(
        pcm, rate, [TimeSpan(10_100, 10_200, K.CVV), TimeSpan(0, 50, K.CVV)], offset_ms=10_000
    )
    assert (later[800:1600] == 0).all() and later[799] == 1000 and later[1600] == 1000
    stereo = np.ones((rate, 2), dtype=np.float32)
    out2 = redact_audio(stereo, rate, [TimeSpan(0, 100, K.PIN)], mode="tone")
    assert out2.shape == (rate, 2) and np.allclose(out2[:800, 0], out2[:800, 1])
    assert float(np.abs(out2[:800]).max()) <= 0.25 + 1e-6 and (out2[800:] == 1).all()


def test_redact_audio_tone_phase_follows_the_stream_clock() -> None:
    rate = 16000
    pcm = np.zeros(rate, dtype=np.float64)
    whole = redact_audio(pcm, rate, [TimeSpan(0, 1000, K.PIN)], mode="tone", tone_hz=440)
    second_half = redact_audio(
        pcm[8000:], rate, [TimeSpan(500, 1000, K.PIN)], mode="tone", tone_hz=440, offset_ms=500
    )
    assert np.allclose(whole[8000:], second_half)


def test_redact_audio_errors() -> None:
    pcm = np.zeros(10, dtype=np.int16)
    with pytest.raises(RedactionError, match=r"^sample rate 0 is not positive$"):
        redact_audio(pcm, 0, [])
    with pytest.raises(
        RedactionError, match=r"^audio redaction mode 'beep' is not 'silence' or 'tone'$"
    ):
        redact_audio(pcm, 8000, [], mode="beep")  # type: ignore[arg-type]
    with pytest.raises(
        RedactionError, match=r"^tone of 5000 Hz is not between 0 and 4000 Hz \(Nyquist\)$"
    ):
        redact_audio(pcm, 8000, [], mode="tone", tone_hz=5000)
    with pytest.raises(
        RedactionError, match=r"^PCM sample type uint8 is not signed integer or float$"
    ):
        redact_audio(np.zeros(4, dtype=np.uint8), 8000, [])
    with pytest.raises(
        RedactionError, match=r"^PCM must be samples or samples × channels, not 3-D$"
    ):
        redact_audio(np.zeros((2, 2, 2)), 8000, [])


@pytest.mark.parametrize(
    "text",
    [
        # a hesitation after "the one" does not turn the first digit into a pronoun
        "the one um 0 um 0 um 000000 um triple zero um nine thanks",
        # speech recognition inserted extra digits: the whole run goes, not a window of it
        "My card number is four one one one one one one one one one one one one one one one"
        " one one one one one one",
        # recognised with thousands separators, longer than any card
        "My card number is 4,111,111,111,111,111,111,111,111,111,111 ok",
        # recognised without spaces, longer than any card
        "call me at 4111111111111111111111",
    ],
)
def test_card_runs_leave_no_digit_behind(text: str) -> None:
    out = redact(text, find_sensitive(text))
    assert not re.search(r"\d", out), out
    assert not re.search(r"\b(one|zero|nine)\b", out.split("is")[-1]), out


def test_long_reference_numbers_stay_readable() -> None:
    text = "order 12345678901234567890123 shipped"
    assert redact(text, find_sensitive(text)) == text
