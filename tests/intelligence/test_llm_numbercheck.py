"""``sipscribe.intelligence.numbercheck``: what counts as said, what counts as invented."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipscribe.asr.evaluation import number_to_words
from sipscribe.intelligence.numbercheck import (
    NumberMention,
    TranscriptNumbers,
    canonical,
    find_numbers,
    remove_sentences_with,
    split_sentences,
    spoken_numbers,
    unsupported_numbers,
)

# (transcript text, values it must be taken to have said)
SAID_CASES = [
    ("The refund is $45.50.", {"45.5", "45", "50"}),
    ("It was 1,299.99 all in.", {"1299.99", "1299", "99"}),
    ("Call me at 3:30.", {"3", "30"}),
    ("Order 58213 please", {"58213"}),
    ("forty five", {"45", "40", "5"}),
    ("one hundred and twenty items", {"120"}),
    ("twenty five hundred dollars", {"2500"}),
    ("a hundred and five", {"105"}),
    ("two hundred thousand", {"200000"}),
    ("nineteen ninety nine", {"1999", "19.99", "19", "99"}),
    ("it costs two fifty", {"250", "2.5"}),
    ("my zip is nine four one oh seven", {"94107"}),
    ("double four", {"44"}),
    ("triple one two", {"1112"}),
    ("four point five stars", {"4.5"}),
    ("March third, twenty twenty four", {"3", "2024"}),
    ("the 15th of June", {"15"}),
    ("twenty-first of May", {"21"}),
]


@pytest.mark.parametrize(("text", "values"), SAID_CASES)
def test_spoken_numbers_reads_digits_and_words(text: str, values: set[str]) -> None:
    assert values <= spoken_numbers(text)


@pytest.mark.parametrize(
    ("text", "absent"),
    [
        # Sums of unrelated words are not numbers anybody said.
        ("nine four one oh seven", "21"),
        ("two fifty", "52"),
        ("twenty twenty four", "44"),
        # A comma ends a spoken number: "third, twenty…" is not 32024.
        ("March third, twenty twenty four", "32024"),
        # Masked digits are nothing.
        ("my card is #### #### #### ####", "0"),
    ],
)
def test_spoken_numbers_does_not_invent_readings(text: str, absent: str) -> None:
    assert absent not in spoken_numbers(text)


def test_masked_text_has_no_numbers() -> None:
    assert spoken_numbers("card #### #### #### #### expiring ##/##") == frozenset()
    assert find_numbers("card ####, PIN ####") == []


def test_canonical_forms() -> None:
    assert canonical("045.50") == "45.5"
    assert canonical("1,299") == "1299"
    assert canonical("100") == "100"
    assert canonical(7) == "7"
    with pytest.raises(ValueError, match=r"number 'x1' is not a decimal number"):
        canonical("x1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Refund of $45.50 on order 58213.", [("45.50", "45.5"), ("58213", "58213")]),
        ("Due on the 15th, 10% off", [("15th", "15"), ("10", "10")]),
        ("$1,299.99 total", [("1,299.99", "1299.99")]),
        ("items 3,4 and 5", [("3", "3"), ("4", "4"), ("5", "5")]),
        ("forty-five shirts", [("forty-five", "45")]),
        ("twenty twenty four", [("twenty twenty four", "2024")]),
        ("four point five", [("four point five", "4.5")]),
        # A lone "one" is mostly a pronoun, and ordinal words rarely count things.
        ("the one I ordered, a second charge", []),
        ("no numbers here", []),
    ],
)
def test_find_numbers(text: str, expected: list[tuple[str, str]]) -> None:
    assert [(m.text, m.value) for m in find_numbers(text)] == expected


def test_mentions_carry_their_place() -> None:
    text = "Pay 12 now and 30 later"
    mentions = find_numbers(text)
    assert mentions == [
        NumberMention(4, 6, "12", "12"),
        NumberMention(15, 17, "30", "30"),
    ]
    assert [text[m.start : m.end] for m in mentions] == ["12", "30"]


SAID = TranscriptNumbers.of(
    [
        "Agent: I see order 58213 for $64.20, charged on March 3rd.",
        "Customer: It should arrive in five to seven business days?",
        "Agent: Yes, and the reference is twenty twenty four dash one.",
    ]
)


@pytest.mark.parametrize(
    ("output", "invented"),
    [
        ("Refund of $64.20 for order 58213.", []),
        ("Refund of sixty four twenty.", []),
        ("Arrives in 5 to 7 business days.", []),
        ("Charged on March 3, 2024.", []),  # "twenty twenty four" was said
        ("Refund of $64.00.", ["64.00"]),
        ("Refund within 10 days.", ["10"]),
        ("Order 58231 was refunded.", ["58231"]),
        ("Refund of seventy dollars.", ["seventy"]),
        ("Charged $64.20 twice, total $128.40.", ["128.40"]),
        ("Two charges were made.", ["Two"]),
    ],
)
def test_unsupported_numbers(output: str, invented: list[str]) -> None:
    assert [m.text for m in unsupported_numbers(output, SAID)] == invented


def test_words_that_imply_a_count_support_it() -> None:
    said = TranscriptNumbers.of(["You charged me twice. Both boxes came. A dozen eggs."])
    assert unsupported_numbers("Two charges for 2 boxes and 12 eggs.", said) == []


def test_spelled_out_match_supports_a_number_the_parser_would_miss() -> None:
    said = TranscriptNumbers.of(["it is one thousand and one nights"])
    # "1001" is found by the parser; "1,001" too; spelled-out comparison backs it up.
    assert unsupported_numbers("1001 nights", said) == []
    assert unsupported_numbers("1,001 nights", said) == []


def test_split_sentences_keeps_decimals_inside() -> None:
    text = "It costs $64.20 today. Refund in 5 days! Really? ok"
    spans = split_sentences(text)
    assert [text[a:b].strip() for a, b in spans] == [
        "It costs $64.20 today.",
        "Refund in 5 days!",
        "Really?",
        "ok",
    ]


def test_remove_sentences_with_drops_only_offending_sentences() -> None:
    text = "The refund is $64.20. It takes 10 days. The customer agreed."
    kept, dropped = remove_sentences_with(text, unsupported_numbers(text, SAID))
    assert kept == "The refund is $64.20. The customer agreed."
    assert dropped == ["It takes 10 days."]


def test_remove_sentences_with_nothing_to_remove() -> None:
    text = "All good. Nothing to see."
    assert remove_sentences_with(text, []) == ("All good. Nothing to see.", [])


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=999_999))
def test_a_number_said_in_words_supports_its_digits(n: int) -> None:
    said = TranscriptNumbers.of([f"the amount was {number_to_words(n)} dollars"])
    assert unsupported_numbers(f"Amount: {n}.", said) == []


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=10**9))
def test_a_number_said_in_digits_supports_itself_in_any_layout(n: int) -> None:
    said = TranscriptNumbers.of([f"reference {n}"])
    assert unsupported_numbers(f"Ref {n:,}.", said) == []
    assert unsupported_numbers(f"Ref {n}.", said) == []


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=2, max_value=10**6), st.integers(min_value=2, max_value=10**6))
def test_a_different_number_is_flagged(said_n: int, written: int) -> None:
    if said_n == written:
        return
    said = TranscriptNumbers.of([f"Agent: the total is {said_n}."])
    flagged = unsupported_numbers(f"The total is {written}.", said)
    # Parts of the said number ("1,299.99" → 99) are accepted; whole different ones are not.
    if canonical(written) not in spoken_numbers(f"{said_n}"):
        assert [m.value for m in flagged] == [str(written)]
